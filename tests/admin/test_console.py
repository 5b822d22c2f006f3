"""The Django admin as the operators' console: creating a project shows its static admin once, user
groups are managed inline through the services (audited), everything else is read-only, no secret is
ever shown, and PIPEPORTAL_ADMIN_ENABLED=false removes the console."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.accounts.models import PortalSession
from apps.pipeds.models import PipedKey
from apps.projects.models import APIKey, AuditEvent, Project, UserGroup
from apps.projects.services import check_static_admin_password
from tests.webui.factories import make_deployment, report_piped

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def operator(db):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "not-used-here")
    client = Client()
    client.force_login(user)
    return client


def project_add_data(project_id: str, groups: list[tuple[str, str]] = ()) -> dict:
    data = {
        "id": project_id,
        "description": "Payments team",
        "shared_sso_config": "",
        "user_groups-TOTAL_FORMS": str(len(groups)),
        "user_groups-INITIAL_FORMS": "0",
        "user_groups-MIN_NUM_FORMS": "0",
        "user_groups-MAX_NUM_FORMS": "1000",
    }
    for i, (group, role) in enumerate(groups):
        data[f"user_groups-{i}-sso_group"] = group
        data[f"user_groups-{i}-role"] = role
    return data


def test_it_creates_a_project_and_shows_the_static_admin_once(operator):
    response = operator.post(
        reverse("admin:projects_project_add"),
        project_add_data("payments", [("pay-devs", "Editor"), ("pay-leads", "Admin")]),
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    username = re.search(r'id="static-admin-username">([^<]+)<', body).group(1)
    password = re.search(r'id="static-admin-password"[^>]*>([^<]+)<', body).group(1)
    project = Project.objects.get(pk="payments")
    assert check_static_admin_password(project, username, password)
    assert password not in project.static_admin_password
    assert set(UserGroup.objects.filter(project=project).values_list("sso_group", "role")) == {
        ("pay-devs", "Editor"),
        ("pay-leads", "Admin"),
    }
    verbs = list(AuditEvent.objects.filter(project=project, actor="ops:ops").values_list("verb", flat=True))
    assert sorted(verbs) == ["project.create", "user_group.add", "user_group.add"]
    # Shown once: the project's page afterwards has neither the password nor its hash.
    page = operator.get(reverse("admin:projects_project_change", args=["payments"])).content.decode()
    assert password not in page
    assert project.static_admin_password not in page
    assert project.git_webhook_secret not in page
    assert all(password not in str(e.details) for e in AuditEvent.objects.all())


@pytest.mark.parametrize(
    ("project_id", "message"),
    [("Bad_ID", "lowercase letters"), ("-dash", "lowercase letters"), ("", "This field is required")],
)
def test_it_refuses_a_bad_project_id_and_writes_nothing(operator, project_id, message):
    response = operator.post(reverse("admin:projects_project_add"), project_add_data(project_id))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Project.objects.exists()
    assert not AuditEvent.objects.exists()


def test_it_refuses_an_existing_project_id(operator, project):
    response = operator.post(reverse("admin:projects_project_add"), project_add_data(project.id))
    assert "already exists" in response.content.decode()
    assert Project.objects.count() == 1


def test_it_updates_a_project_through_the_service(operator, project):
    url = reverse("admin:projects_project_change", args=[project.id])
    data = {
        "description": "Renamed",
        "shared_sso_config": "corp",
        "allow_stray_as_viewer": "on",
        "user_groups-TOTAL_FORMS": "0",
        "user_groups-INITIAL_FORMS": "0",
        "user_groups-MIN_NUM_FORMS": "0",
        "user_groups-MAX_NUM_FORMS": "1000",
    }
    response = operator.post(url, data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.description, project.shared_sso_config, project.allow_stray_as_viewer) == (
        "Renamed",
        "corp",
        True,
    )
    assert AuditEvent.objects.filter(verb="project.update", actor="ops:ops").count() == 1


def test_it_shows_the_services_refusal_and_changes_nothing(operator, project):
    Project.objects.filter(pk=project.pk).update(shared_sso_config="corp", static_admin_disabled=True)
    url = reverse("admin:projects_project_change", args=[project.id])
    data = project_add_data(project.id)
    data.pop("id")
    data["shared_sso_config"] = ""
    response = operator.post(url, data, follow=True)
    assert "Enable the static admin before detaching the SSO config" in response.content.decode()
    project.refresh_from_db()
    assert project.shared_sso_config == "corp"
    assert not AuditEvent.objects.filter(verb="project.update").exists()


def test_it_removes_a_user_group_inline_through_the_service(operator, project):
    group = UserGroup.objects.create(project=project, sso_group="old-team", role="Viewer")
    url = reverse("admin:projects_project_change", args=[project.id])
    data = {
        "description": project.description,
        "shared_sso_config": "",
        "user_groups-TOTAL_FORMS": "1",
        "user_groups-INITIAL_FORMS": "1",
        "user_groups-MIN_NUM_FORMS": "0",
        "user_groups-MAX_NUM_FORMS": "1000",
        "user_groups-0-id": str(group.pk),
        "user_groups-0-project": project.id,
        "user_groups-0-DELETE": "on",
    }
    response = operator.post(url, data)
    assert response.status_code == 302
    assert not UserGroup.objects.filter(pk=group.pk).exists()
    assert AuditEvent.objects.filter(verb="user_group.delete", actor="ops:ops").count() == 1


def test_it_resets_a_lost_static_admin_password(operator, project_credentials):
    project, username, old_password = project_credentials
    response = operator.post(
        reverse("admin:projects_project_changelist"),
        {"action": "reset_static_admin_password", "_selected_action": [project.pk]},
    )
    assert response.status_code == 200
    new_password = re.search(r'id="static-admin-password"[^>]*>([^<]+)<', response.content.decode()).group(1)
    project.refresh_from_db()
    assert check_static_admin_password(project, username, new_password)
    assert not check_static_admin_password(project, username, old_password)
    assert AuditEvent.objects.filter(verb="static_admin.update", actor="ops:ops").exists()


def test_it_lists_every_model_read_only_without_secrets(operator, world):
    report_piped(world.other_piped)
    make_deployment(world.second_app, running_index=0, stages=[("sync", "ECS_SYNC", "")])
    secrets = [
        *PipedKey.objects.values_list("key_hash", flat=True),
        *APIKey.objects.values_list("key_hash", flat=True),
        *PortalSession.objects.values_list("session_key", flat=True),
        *Project.objects.values_list("static_admin_password", flat=True),
        *Project.objects.values_list("git_webhook_secret", flat=True),
    ]
    assert secrets
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in ("projects", "pipeds", "applications", "deployments", "accounts"):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        changelist = operator.get(reverse("admin:{}_{}_changelist".format(*info)))
        assert changelist.status_code == 200, info
        pages = [changelist.content.decode()]
        obj = model.objects.first()
        if obj is not None and model is not PortalSession:
            detail = operator.get(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
            assert detail.status_code == 200, info
            pages.append(detail.content.decode())
        for page in pages:
            for secret in secrets:
                assert secret not in page, (info, "shows a secret")
        if model is not Project:
            assert not model_admin.has_add_permission(changelist.wsgi_request)
            assert not model_admin.has_change_permission(changelist.wsgi_request)
            assert not model_admin.has_delete_permission(changelist.wsgi_request)


def test_it_refuses_writes_to_read_only_models(operator, world):
    for url in [
        reverse("admin:pipeds_piped_add"),
        reverse("admin:applications_application_add"),
        reverse("admin:pipeds_piped_delete", args=[world.piped.pk]),
        reverse("admin:deployments_deployment_delete", args=[world.waiting.pk]),
    ]:
        assert operator.post(url, {"name": "x", "post": "yes"}).status_code == 403, url
    response = operator.post(
        reverse("admin:applications_application_change", args=[world.app.pk]), {"name": "x"}
    )
    assert response.status_code == 403
    world.app.refresh_from_db()
    assert world.app.name == "hello"


def test_it_keeps_people_without_staff_rights_out(world):
    assert world.clients["admin"].get("/admin/").status_code == 302  # a portal Admin is not an operator


def test_it_has_no_console_when_disabled():
    """PIPEPORTAL_ADMIN_ENABLED=false: /admin/ does not exist, and every admin module still imports."""
    script = (
        "import django, importlib, pkgutil\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from django.urls import Resolver404, resolve\n"
        "assert 'django.contrib.admin' not in settings.INSTALLED_APPS\n"
        "import apps\n"
        "for module in pkgutil.iter_modules(apps.__path__):\n"
        "    try:\n"
        "        importlib.import_module(f'apps.{module.name}.admin')\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if exc.name != f'apps.{module.name}.admin':\n"
        "            raise\n"
        "try:\n"
        "    resolve('/admin/')\n"
        "except Resolver404:\n"
        "    print('no admin')\n"
    )
    env = {
        **os.environ,
        "PIPEPORTAL_ADMIN_ENABLED": "false",
        "DJANGO_SETTINGS_MODULE": "pipeportal.settings",
        "SECRET_KEY": "only-for-this-check",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no admin"
    check = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr
