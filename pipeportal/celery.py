"""The control plane's Celery app (queue `cp`): housekeeping and fan-out, never deployment work."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeportal.settings")

app = Celery("pipeportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
