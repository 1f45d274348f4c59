"""The Alembic revisions (``env.py``, ``versions/``); the runner is :mod:`teledispatch.db.migrate`.

A regular package only so that the distribution ships this folder."""
