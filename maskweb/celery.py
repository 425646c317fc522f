"""The Celery app: `celery -A maskweb.celery worker`. Settings come from Django (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maskweb.settings")

app = Celery("maskweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["maskweb.masking.worker"])
