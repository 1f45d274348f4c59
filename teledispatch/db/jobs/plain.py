"""The ``jobs`` reads of the path without SQLAlchemy (``db/plain.py``): the same rows as
their namesakes in ``statements``."""

from __future__ import annotations

from collections.abc import Sequence

from teledispatch.db.plain import Plain, Row

GET_JOB_SQL = "SELECT * FROM jobs WHERE id = :job_id"
WEIGHTS_SQL = "SELECT id, weight FROM jobs WHERE id IN (:job_ids)"


def get_job(conn: Plain, job_id: str) -> Row | None:
    """The job's whole row, or None."""
    rows = conn.rows(GET_JOB_SQL, {"job_id": job_id})
    return rows[0] if rows else None


def weights(conn: Plain, job_ids: Sequence[str]) -> dict[str, float]:
    """Each job's ``weight`` (its share of its lane); unknown ids are left out."""
    if not job_ids:
        return {}
    return {str(i): float(w) for i, w in conn.rows(WEIGHTS_SQL, {"job_ids": list(job_ids)})}
