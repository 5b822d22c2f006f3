"""Routes of the probes; OpsMiddleware answers them first, these serve reverse() and setups without it."""

from django.urls import path

from .health import healthz, readyz
from .metrics import metrics_view

app_name = "ops"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
