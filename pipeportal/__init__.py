"""The PipePortal Django project: settings, URLs, the control plane's Celery app."""

from .celery import app as celery_app

__all__ = ["celery_app"]
