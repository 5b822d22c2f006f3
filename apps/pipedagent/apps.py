"""The piped agent as a Django app only so that `manage.py piped` and `manage.py demo` are found; no models."""

from django.apps import AppConfig


class PipedAgentConfig(AppConfig):
    name = "apps.pipedagent"
    label = "pipedagent"
