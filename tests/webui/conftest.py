"""The world the portal tests act on: two projects, pipeds that reported in, apps, deployments, keys."""

from types import SimpleNamespace

import pytest

from apps.applications.services import add_application
from apps.deployments.choices import DeploymentStatus
from apps.pipeds.services import add_piped_key, register_piped
from apps.projects.choices import APIKeyRole, Role
from apps.projects.principal import system_principal
from apps.projects.services import add_user_group, create_api_key
from tests.accounts.helpers import oidc_env_config

from .factories import make_deployment, report_piped, report_suggestions, suggestion


@pytest.fixture
def world(project, other_project, piped, application, clients, settings):
    """Everything an action of the role matrix needs, in project `demo`, and a little in `other`."""
    system = system_principal(project.id)
    # An SSO config the control plane knows, so that the static admin may be disabled.
    settings.PIPEPORTAL_SSO_FROM_ENV = [
        oidc_env_config(None, name="corp-sso", issuer="https://sso.example.test")
    ]
    project.shared_sso_config = "corp-sso"
    project.save(update_fields=["shared_sso_config"])
    report_piped(piped)
    # An app config the piped found in Git that is not registered yet: "add from a suggestion".
    report_suggestions(piped, [suggestion("infra", "services/found", "found-app")])
    rotating, _ = register_piped(system, project, name="piped-rotating")
    add_piped_key(system, rotating)
    report_piped(rotating)
    second_app = add_application(
        system,
        project,
        name="payments",
        piped_id=piped.id,
        platform_provider="ecs-dev",
        repo_id="manifests",
        path="apps/payments",
        labels={"env": "prod", "team": "pay"},
    )
    previous = make_deployment(application, status=DeploymentStatus.SUCCESS, tag="v1.3.0")
    waiting = make_deployment(application, running_index=2, tag="v1.4.0")
    sleeping = make_deployment(
        second_app, running_index=0, stages=[("wait", "WAIT", "5 minutes"), ("sync", "ECS_SYNC", "")]
    )
    group = add_user_group(system, project, sso_group="platform-team", role=Role.EDITOR)
    api_key, _ = create_api_key(system, project, name="ci", role=APIKeyRole.READ_ONLY)

    other_system = system_principal(other_project.id)
    other_piped, _ = register_piped(other_system, other_project, name="other-piped")
    report_piped(other_piped)
    application.refresh_from_db()
    return SimpleNamespace(
        project=project,
        other_project=other_project,
        piped=piped,
        rotating_piped=rotating,
        rotating_key=rotating.keys.order_by("created_at", "id").first(),
        app=application,
        second_app=second_app,
        previous=previous,
        waiting=waiting,
        sleeping=sleeping,
        group=group,
        api_key=api_key,
        other_piped=other_piped,
        suggestion_key=f"{piped.id}:infra:services/found/app.pipecd.yaml",
        clients=clients,
    )
