"""Status webhooks: the outbox drain (:mod:`.drain`), the request signature (:mod:`.signer`),
URL safety (:mod:`.safety`), the retry schedule (:mod:`.schedule`) and the HTTP client
(:mod:`.client`). The Celery tasks in ``worker/tasks.py`` only call :mod:`.drain`."""
