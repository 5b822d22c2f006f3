from django.apps import AppConfig


class PipedsConfig(AppConfig):
    name = "apps.pipeds"
