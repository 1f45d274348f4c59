"""What apps import: the job model, validation, enqueue() and lookup().

from teledispatch.producer import SendJob, enqueue, job_status
from teledispatch.producer import lookup

job_id = enqueue(SendJob(account="nxcloud", recipients=[{"phone": "+8613800138000"}],
                         defaults={"content": "Your code is 1234"}))

# many small jobs from a hot path: validated at the call, stored in shared transactions
with Producer() as producer:
    pending = producer.submit(job)      # pending.job_id now; pending.result() once durable

Every error raised to the app derives from ``teledispatch.Error`` (also exported here).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from teledispatch.lazy import exports

if TYPE_CHECKING:
    from teledispatch.config import ConfigError, load_settings, settings
    from teledispatch.errors import Error
    from teledispatch.producer.cancel import Cancelled, cancel_job
    from teledispatch.producer.group_commit import Pending, Producer, ProducerClosed, StoreTimeout
    from teledispatch.producer.jobs import SendJob
    from teledispatch.producer.lookup import (
        JobNotFound,
        JobStatus,
        MessageView,
        job_messages,
        job_status,
        lookup,
    )
    from teledispatch.producer.submit import Enqueued, IdempotencyConflict, enqueue, enqueue_stream
    from teledispatch.validation import Problem, ValidationFailed

#: Where each export lives, loaded on first use (PEP 562): ``teledispatch status`` and
#: ``lookup`` must not pay for the group-commit producer, Redis and Celery, nor ``send
#: --dry-run`` for ``lookup``'s SQLAlchemy.
_WHERE = {
    "ConfigError": "teledispatch.config",
    "load_settings": "teledispatch.config",
    "settings": "teledispatch.config",
    "Error": "teledispatch.errors",
    "Cancelled": "teledispatch.producer.cancel",
    "cancel_job": "teledispatch.producer.cancel",
    "Pending": "teledispatch.producer.group_commit",
    "Producer": "teledispatch.producer.group_commit",
    "ProducerClosed": "teledispatch.producer.group_commit",
    "StoreTimeout": "teledispatch.producer.group_commit",
    "SendJob": "teledispatch.producer.jobs",
    "Enqueued": "teledispatch.producer.submit",
    "IdempotencyConflict": "teledispatch.producer.submit",
    "enqueue": "teledispatch.producer.submit",
    "enqueue_stream": "teledispatch.producer.submit",
    "JobNotFound": "teledispatch.producer.lookup",
    "JobStatus": "teledispatch.producer.lookup",
    "MessageView": "teledispatch.producer.lookup",
    "job_messages": "teledispatch.producer.lookup",
    "job_status": "teledispatch.producer.lookup",
    "lookup": "teledispatch.producer.lookup",
    "Problem": "teledispatch.validation",
    "ValidationFailed": "teledispatch.validation",
}


__getattr__ = exports(__name__, globals(), _WHERE)


class _Package(types.ModuleType):
    """This package, keeping ``lookup`` the function. ``lookup`` names both the function
    (an export) and its module; importing the module sets the package's attribute of that
    name to the module, whoever imports it and whenever, and this sets the function instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "lookup" and isinstance(value, types.ModuleType):
            value = value.lookup
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Cancelled",
    "ConfigError",
    "Enqueued",
    "Error",
    "IdempotencyConflict",
    "JobNotFound",
    "JobStatus",
    "MessageView",
    "Pending",
    "Problem",
    "Producer",
    "ProducerClosed",
    "SendJob",
    "StoreTimeout",
    "ValidationFailed",
    "cancel_job",
    "enqueue",
    "enqueue_stream",
    "job_messages",
    "job_status",
    "load_settings",
    "lookup",
    "settings",
]
