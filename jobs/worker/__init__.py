"""A job worker: a Celery worker (prefork, one child) running registry models, with a
liveness endpoint that tells busy from wedged by the running job's heartbeat."""
