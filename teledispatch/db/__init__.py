"""The database: ``tables`` (the models), ``engine``, ``migrate`` (the Alembic runner; the
revisions are in ``migrations/``), and one data-access module per table: every statement on
``jobs`` is in ``jobs``, every statement on ``messages`` and ``batches`` in ``messages``."""
