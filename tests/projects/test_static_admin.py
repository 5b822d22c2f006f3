"""The static admin is the last way in: it cannot be disabled unless a working SSO config is attached."""

import pytest

from apps.core.errors import Conflict
from apps.projects.models import Project
from apps.projects.services import set_static_admin_disabled
from tests.accounts.helpers import oidc_env_config


def test_it_refuses_to_disable_the_static_admin_without_sso(project, admin):
    with pytest.raises(Conflict, match="Attach an SSO config"):
        set_static_admin_disabled(admin, project, True)
    assert Project.objects.get(pk=project.pk).static_admin_disabled is False


def test_it_refuses_when_the_attached_sso_config_is_unknown(project, admin, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    project.shared_sso_config = "typo-sso"
    project.save()
    with pytest.raises(Conflict, match="typo-sso"):
        set_static_admin_disabled(admin, project, True)
    assert Project.objects.get(pk=project.pk).static_admin_disabled is False


def test_it_disables_the_static_admin_once_a_known_sso_config_is_attached(project, admin, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(None, name="corp", issuer="https://sso.example.test")]
    project.shared_sso_config = "corp"
    project.save()
    set_static_admin_disabled(admin, project, True)
    assert Project.objects.get(pk=project.pk).static_admin_disabled is True
