"""The account's circuit, shared by every worker process through Redis (see
:mod:`teledispatch.circuits` for the key and what an operator is shown).

Its own folder rather than ``ratelimit/``: the limiter paces a healthy provider, the circuit
decides whether the provider is fit to be sent to at all, and its state outlives any window.
"""

from .breaker import Circuit, Gate, Trip

__all__ = ["Circuit", "Gate", "Trip"]
