"""`manage.py createproject ID [--desc TEXT] [--shared-sso NAME] [--json]`: a project and its static admin."""

from django.core.management.base import BaseCommand

from apps.projects.management.output import add_json_flag, domain_errors_as_command_errors, emit
from apps.projects.principal import system_principal
from apps.projects.services import create_project


class Command(BaseCommand):
    help = "Create a project with a generated static admin; prints the username and password once."

    def add_arguments(self, parser):
        parser.add_argument("id", help="Project ID: lowercase letters, digits and dashes.")
        parser.add_argument("--desc", default="", help="Description.")
        parser.add_argument(
            "--shared-sso", default="", help="Name of a sharedSSOConfigs entry of the control-plane config."
        )
        add_json_flag(parser)

    def handle(self, *args, **options):
        with domain_errors_as_command_errors():
            project, username, password = create_project(
                system_principal(name="manage.py createproject"),
                options["id"],
                description=options["desc"],
                shared_sso_config=options["shared_sso"],
            )
        emit(
            self,
            options,
            {"project": project.id, "username": username, "password": password},
            f"Created project {project.id}.\nStatic admin: {username}\nPassword: {password}\n"
            "The password is shown only now.",
        )
