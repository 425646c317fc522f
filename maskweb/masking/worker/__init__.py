"""The Celery edge: the encode job and the periodic clean-up as tasks (stable names, so a
job queued by an older host still runs), and the worker's start-up hooks. Thin: the work is
in maskweb.masking.jobs and the session domain.
"""
