"""The dispatching side: Celery app, thin tasks, and the domain functions they call."""
