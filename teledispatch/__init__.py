"""teledispatch: a queue-backed dispatcher for SMS, voice notifications and privacy numbers.

The import names live under this package while the repository keeps its role folders at the
top: ``teledispatch.producer`` is ``producer/`` (what an app imports), ``teledispatch.worker``
is ``worker/`` (the Celery side), ``teledispatch.simulator`` is ``simulator/``. The modules
directly in this folder are the shared kernel both roles need (config, statuses, errors, the
database and the provider channels) and the operator entry points (``api``, ``cli``, ``dev``).
"""

from teledispatch.errors import Error

__all__ = ["Error"]
