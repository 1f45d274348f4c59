"""The real services this tier uses (see tests/support.py)."""

from tests.support import broker, database_url, make_stack, redis_service  # noqa: F401
