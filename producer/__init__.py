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
