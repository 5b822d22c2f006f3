"""Pipeds: registration, hashed keys (two at most, for rotation), status from heartbeats; the piped API."""

from django.apps import AppConfig
from django.db.models.signals import post_save


class PipedsConfig(AppConfig):
    name = "apps.pipeds"

    def ready(self) -> None:
        from . import piped_services

        # A piped reloads its application list when one of its applications is added or changed.
        post_save.connect(
            piped_services.note_application_saved,
            sender="applications.Application",
            dispatch_uid="pipeds.note_application_saved",
        )
