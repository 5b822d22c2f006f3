"""`manage.py addusergroup --project ID --sso-group GROUP --role Admin|Editor|Viewer [--json]`."""

from django.core.management.base import BaseCommand

from apps.projects.choices import Role
from apps.projects.management.output import add_json_flag, domain_errors_as_command_errors, emit
from apps.projects.principal import system_principal
from apps.projects.services import add_user_group, get_project


class Command(BaseCommand):
    help = "Give the members of an SSO group a role in a project."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project ID.")
        parser.add_argument(
            "--sso-group", required=True, help="The group name as the identity provider sends it."
        )
        parser.add_argument("--role", required=True, choices=Role.values)
        add_json_flag(parser)

    def handle(self, *args, **options):
        with domain_errors_as_command_errors():
            project = get_project(options["project"])
            group = add_user_group(
                system_principal(project.id, name="manage.py addusergroup"),
                project,
                sso_group=options["sso_group"],
                role=options["role"],
            )
        emit(
            self,
            options,
            {"project": project.id, "sso_group": group.sso_group, "role": group.role},
            f"Members of {group.sso_group!r} are now {group.role} in project {project.id}.",
        )
