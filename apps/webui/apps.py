from django.apps import AppConfig


class WebuiConfig(AppConfig):
    name = "apps.webui"
