"""The static admin is the last way in: it cannot be disabled unless a working SSO config is attached."""

import pytest

from apps.core.errors import Conflict
from apps.projects.models import Project
from apps.projects.services import set_static_admin_disabled, update_project
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


def test_with_the_static_admin_disabled_the_sso_config_cannot_become_an_unknown_one(project, admin, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(None, name="corp", issuer="https://sso.example.test")]
    project.shared_sso_config = "corp"
    project.save()
    set_static_admin_disabled(admin, project, True)
    with pytest.raises(Conflict, match="nobody could log in"):
        update_project(admin, project, shared_sso_config="crop")
    assert Project.objects.get(pk=project.pk).shared_sso_config == "corp"
    # A known one (or a list still holding one) is fine.
    update_project(admin, project, shared_sso_config="crop, corp")
    assert Project.objects.get(pk=project.pk).shared_sso_config == "crop, corp"


def test_with_the_static_admin_enabled_any_name_may_be_attached_first(project, admin, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    update_project(admin, project, shared_sso_config="configured-later")
    assert Project.objects.get(pk=project.pk).shared_sso_config == "configured-later"
