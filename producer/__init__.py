"""What apps import: the job model, validation, enqueue() and lookup()."""
