"""SSO test fixtures: the project's user groups and real OpenID Connect providers."""

import shutil
import tempfile
from pathlib import Path

import pytest

from apps.projects.choices import Role
from apps.projects.principal import system_principal
from apps.projects.services import add_user_group
from tests.components import require

from .helpers import OIDCProvider, install_node_modules, node_available


@pytest.fixture
def user_groups(project):
    """The project's mapping of SSO groups to roles."""
    principal = system_principal(project.id)
    add_user_group(principal, project, sso_group="platform-admins", role=Role.ADMIN)
    add_user_group(principal, project, sso_group="deployers", role=Role.EDITOR)
    add_user_group(principal, project, sso_group="watchers", role=Role.VIEWER)
    return project


@pytest.fixture(scope="session")
def oidc_provider_factory():
    """Start providers with the redirect URIs a test module needs; all are stopped at the end."""
    require(node_available(), "Node.js and npm (for the OIDC provider)")
    install_node_modules()
    tmpdir = Path(tempfile.mkdtemp(prefix="pipeportal-oidc-"))
    started: list[OIDCProvider] = []

    def start(redirect_uris: list[str]) -> OIDCProvider:
        provider = OIDCProvider(redirect_uris, tmpdir)
        started.append(provider)
        return provider

    yield start
    for provider in started:
        provider.stop()
    shutil.rmtree(tmpdir, ignore_errors=True)
