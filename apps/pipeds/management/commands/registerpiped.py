"""`manage.py registerpiped --project ID --name NAME [--desc TEXT] [--json]`: a piped and its first key."""

from django.core.management.base import BaseCommand

from apps.core.keys import key_hash_secret
from apps.pipeds.services import encode_key, register_piped
from apps.projects.management.output import add_json_flag, domain_errors_as_command_errors, emit
from apps.projects.principal import system_principal
from apps.projects.services import get_project


class Command(BaseCommand):
    help = "Register a piped; prints its ID and key once (the key also base64-encoded, for pipedKeyData)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project ID.")
        parser.add_argument("--name", required=True, help="Piped name, unique in the project.")
        parser.add_argument("--desc", default="", help="Description.")
        add_json_flag(parser)

    def handle(self, *args, **options):
        with domain_errors_as_command_errors():
            # Before anything is written: without it the key could not be stored.
            key_hash_secret()
            project = get_project(options["project"])
            piped, key = register_piped(
                system_principal(project.id, name="manage.py registerpiped"),
                project,
                name=options["name"],
                description=options["desc"],
            )
        encoded = encode_key(key)
        emit(
            self,
            options,
            {"piped_id": str(piped.id), "piped_key": key, "piped_key_base64": encoded},
            f"Registered piped {piped.name!r} in project {project.id}.\n"
            f"projectID: {project.id}\npipedID: {piped.id}\npipedKeyData: {encoded}\n"
            "The key is shown only now.",
        )
