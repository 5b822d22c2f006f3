"""`manage.py timeoutcommands [--json]`: commands nobody handled in time become TIMEOUT (also a beat job)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.deployments.services import time_out_stale_commands
from apps.projects.management.output import add_json_flag, domain_errors_as_command_errors, emit


class Command(BaseCommand):
    help = "Mark commands left unhandled for PIPEPORTAL_COMMAND_TIMEOUT_SECONDS as TIMEOUT."

    def add_arguments(self, parser):
        add_json_flag(parser)

    def handle(self, *args, **options):
        with domain_errors_as_command_errors():
            count = time_out_stale_commands()
        hours = settings.PIPEPORTAL_COMMAND_TIMEOUT_SECONDS / 3600
        emit(
            self,
            options,
            {"timed_out": count},
            f"{count} command(s) unhandled for more than {hours:g} h marked TIMEOUT.",
        )
