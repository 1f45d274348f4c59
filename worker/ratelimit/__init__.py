"""Global rate limits per account, enforced in Redis across every worker (see ``limiter``)."""

from .gate import Departure
from .limiter import UNLIMITED, AccountKeys, RateLimiter, Reservation

__all__ = [
    "UNLIMITED",
    "AccountKeys",
    "Departure",
    "RateLimiter",
    "Reservation",
]
