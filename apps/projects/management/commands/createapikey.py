"""`manage.py createapikey --project ID --name NAME --role READ_ONLY|READ_WRITE [--json]`."""

from django.core.management.base import BaseCommand

from apps.core.keys import key_hash_secret
from apps.projects.choices import APIKeyRole
from apps.projects.management.output import add_json_flag, domain_errors_as_command_errors, emit
from apps.projects.principal import system_principal
from apps.projects.services import create_api_key, get_project


class Command(BaseCommand):
    help = "Create an API key for scripts; prints it once as <id>.<secret>."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project ID.")
        parser.add_argument("--name", required=True, help="Key name; the key acts as apikey:<name>.")
        parser.add_argument("--role", required=True, choices=APIKeyRole.values)
        add_json_flag(parser)

    def handle(self, *args, **options):
        with domain_errors_as_command_errors():
            # Before anything is written: without it the key could not be stored.
            key_hash_secret()
            project = get_project(options["project"])
            _, key = create_api_key(
                system_principal(project.id, name="manage.py createapikey"),
                project,
                name=options["name"],
                role=options["role"],
            )
        emit(
            self,
            options,
            {"api_key": key},
            f"API key {options['name']!r} ({options['role']}) in project {project.id}:\n{key}\n"
            "Send it as `Authorization: API-KEY <key>`. It is shown only now.",
        )
