from django.apps import AppConfig


class PipelineconfigConfig(AppConfig):
    name = "apps.pipelineconfig"
