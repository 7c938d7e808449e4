"""P2's job platform: a job API (:8005) whose database owns every job, and Celery workers
on Redis that run models from the registry (``jobs.registry``), one per GPU."""
