"""Where SSO configs come from (control-plane config, environment, admin) and how the login page uses them."""

from datetime import timedelta

import pytest
from allauth.socialaccount.models import SocialApp
from django.contrib.sessions.backends.cache import SessionStore

from apps.accounts import sso
from apps.accounts.resolution import groups_from_claims, groups_from_saml, resolve_role
from apps.accounts.services import login_static_admin
from apps.core.errors import Conflict, InvalidInput
from apps.pipelineconfig import load_control_plane_config
from apps.projects.models import Project
from apps.projects.principal import system_principal
from apps.projects.services import create_project, set_static_admin_disabled, update_project

from .helpers import html_text

CONTROL_PLANE = """\
apiVersion: pipecd.dev/v1beta1
kind: ControlPlane
spec:
  datastore:
    type: MYSQL
    config:
      url: user:pass@tcp(db:3306)
      database: controlplane
  filestore:
    type: S3
    config:
      bucket: files
      region: ap-northeast-1
  stateKey: key
  sharedSSOConfigs:
    - name: keycloak
      provider: OIDC
      sessionTtl: 12
      oidc:
        clientId: portal
        clientSecret: ${KC_SECRET}
        issuer: https://sso.example.test/realms/acme/
        scopes: [openid, email]
        rolesClaimKey: realm_access.roles
        tokenEndpoint: https://sso.example.test/token
    - name: acme-github
      provider: GITHUB
      github:
        clientId: gh-client
        clientSecret: gh-secret
        baseUrl: https://ghe.example.test/api/v3/
        org: acme
    - name: entra
      provider: SAML
      saml:
        idpEntityId: https://sts.windows.net/tenant/
        idpSsoUrl: https://login.microsoftonline.com/tenant/saml2
        idpX509Cert: MIIC...
        groupsAttribute: http://schemas.microsoft.com/ws/2008/06/identity/claims/groups
"""


@pytest.fixture
def sso_static_admin(db):
    """A project of these tests' own with its static admin's credentials. Not the shared `creds` project:
    the login throttle counts per project and address in the cache, which parallel workers share."""
    return create_project(system_principal(), "sso-static-admin")


@pytest.fixture
def from_config(settings):
    loaded = load_control_plane_config(text=CONTROL_PLANE, env={"KC_SECRET": "kc-secret"})
    settings.PIPEPORTAL_CONTROL_PLANE_CONFIG = loaded.spec
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    return loaded.spec


def test_shared_sso_configs_become_providers(db, from_config):
    configs = sso.list_configs()
    assert set(configs) == {"keycloak", "acme-github", "entra"}
    keycloak = sso.find_app("keycloak")
    assert keycloak.provider == "openid_connect"
    assert (keycloak.client_id, keycloak.secret) == ("portal", "kc-secret")
    assert keycloak.settings["server_url"] == "https://sso.example.test/realms/acme"
    assert keycloak.settings["scope"] == ["openid", "email"]
    assert keycloak.settings["openid_configuration_overrides"] == {
        "token_endpoint": "https://sso.example.test/token"
    }
    assert keycloak.settings["oauth_pkce_enabled"] is True
    assert configs["keycloak"].roles_claim_key == "realm_access.roles"
    assert configs["keycloak"].session_ttl == 12 * 3600
    github = sso.find_app("acme-github")
    assert (github.provider, github.settings["base_url"], github.settings["org"]) == (
        "github",
        "https://ghe.example.test/api/v3/",
        "acme",
    )
    entra = sso.find_app("entra")
    assert entra.provider == "saml" and entra.client_id == "entra"
    assert entra.settings["idp"]["entity_id"] == "https://sts.windows.net/tenant/"
    assert configs["entra"].groups_attributes == (
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    )
    assert {c.source for c in configs.values()} == {"control-plane config"}


def test_the_default_session_ttl_is_seven_days(db, settings):
    text = CONTROL_PLANE.replace("      sessionTtl: 12\n", "")
    settings.PIPEPORTAL_CONTROL_PLANE_CONFIG = load_control_plane_config(
        text=text, env={"KC_SECRET": "x"}
    ).spec
    assert sso.list_configs()["keycloak"].session_ttl == int(timedelta(days=7).total_seconds())


def test_the_control_plane_config_wins_over_the_environment_and_the_admin(db, from_config, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV = [
        {
            "kind": "github",
            "name": "acme-github",
            "client_id": "env",
            "client_secret": "",
            "base_url": "",
            "org": "",
        },
        {
            "kind": "github",
            "name": "env-github",
            "client_id": "env2",
            "client_secret": "",
            "base_url": "",
            "org": "",
        },
    ]
    SocialApp.objects.create(
        provider="openid_connect", provider_id="keycloak", name="Admin copy", client_id="a"
    )
    SocialApp.objects.create(
        provider="openid_connect", provider_id="okta", name="Okta", client_id="okta-client"
    )
    configs = sso.list_configs()
    assert sso.find_app("acme-github").client_id == "gh-client"
    assert sso.find_app("keycloak").client_id == "portal"
    assert configs["env-github"].source == "environment"
    assert configs["okta"].source == "admin"
    assert configs["okta"].label == "Okta"


def test_a_project_can_use_several_configs(db, from_config, client, project):
    update_project(system_principal(project.id), project, shared_sso_config="keycloak, entra")
    page = client.get("/login/demo/")
    text = html_text(page)
    assert "Login with keycloak" in text and "Login with entra" in text
    assert "Login with acme-github" not in text


def test_the_login_page_says_when_an_attached_config_is_unknown(db, from_config, client, project):
    update_project(system_principal(project.id), project, shared_sso_config="gone")
    page = client.get("/login/demo/")
    text = html_text(page)
    assert "uses the SSO config gone" in text and "which is not configured on this server" in text


def test_an_admin_socialapp_offers_a_button(db, settings, client, project):
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    SocialApp.objects.create(
        provider="openid_connect",
        provider_id="okta",
        name="Okta",
        client_id="okta-client",
        settings={"server_url": "https://acme.okta.example.test"},
    )
    update_project(system_principal(project.id), project, shared_sso_config="okta")
    page = client.get("/login/demo/")
    assert "Login with Okta" in html_text(page)


def test_with_the_static_admin_disabled_only_sso_is_offered(db, from_config, client, sso_static_admin):
    project, username, password = sso_static_admin
    principal = system_principal(project.id)
    with pytest.raises(Conflict, match="Attach an SSO config"):
        set_static_admin_disabled(principal, project, True)
    update_project(principal, project, shared_sso_config="keycloak")
    set_static_admin_disabled(principal, project, True)
    page = client.get(f"/login/{project.id}/")
    assert "Login with keycloak" in html_text(page)
    assert 'name="password"' not in page.content.decode()
    refused = client.post(f"/login/{project.id}/", {"username": username, "password": password})
    assert refused.status_code == 400
    assert "static admin is disabled" in html_text(refused)
    with pytest.raises(Conflict, match="last way in"):
        update_project(principal, project, shared_sso_config="")


def test_static_admin_login_still_works_beside_sso(db, from_config, client, sso_static_admin):
    project, username, password = sso_static_admin
    update_project(system_principal(project.id), project, shared_sso_config="keycloak")
    done = client.post(f"/login/{project.id}/", {"username": username, "password": password})
    assert done.status_code == 302
    page = client.get("/account/")
    assert "the static admin" in html_text(page) and "Admin" in html_text(page)


def test_a_sso_login_for_a_missing_project_is_a_404(db, client):
    assert client.post("/login/nowhere/sso/keycloak/").status_code == 404


# --- Groups and roles ----------------------------------------------------------------------------------


def test_groups_come_from_the_id_token_and_userinfo_together():
    userinfo = {"groups": ["a", "b"]}
    id_token = {"groups": "c", "cognito:groups": ["d"]}
    assert groups_from_claims([userinfo, id_token], "groups") == ["a", "b", "c"]
    assert groups_from_claims([userinfo, id_token], ["groups", "cognito:groups"]) == ["a", "b", "c", "d"]
    assert groups_from_claims([{"realm_access": {"roles": ["x"]}}], "realm_access.roles") == ["x"]
    assert groups_from_claims([{"roles": [{"name": "y"}]}, None], "roles") == ["y"]
    assert groups_from_claims([{}], "groups") == []


def test_saml_groups_come_from_any_of_the_named_attributes():
    attributes = {"memberOf": ["cn=ops"], "groups": ["a", "a"]}
    assert groups_from_saml(attributes, ["groups", "memberOf"]) == ["a", "cn=ops"]


def test_resolution_is_exact_and_the_highest_role_wins(user_groups):
    assert resolve_role(user_groups, ["Deployers"]).role is None
    resolution = resolve_role(user_groups, ["watchers", "deployers", "Viewer"])
    assert (resolution.role, resolution.matched) == ("Editor", ("deployers",))
    assert resolve_role(user_groups, ["Admin"]).role == "Admin"
    assert resolve_role(user_groups, ["admin"]).role is None


def test_a_stray_is_viewer_only_when_the_project_allows_it(user_groups):
    assert resolve_role(user_groups, ["nobody"]).role is None
    Project.objects.filter(pk=user_groups.pk).update(allow_stray_as_viewer=True)
    user_groups.refresh_from_db()
    resolution = resolve_role(user_groups, ["nobody"])
    assert (resolution.role, resolution.matched, resolution.stray) == ("Viewer", (), True)


def test_resolution_only_reads_the_projects_own_groups(user_groups, other_project):
    assert resolve_role(other_project, ["deployers"]).role is None


def test_static_admin_login_is_refused_when_disabled(db, sso_static_admin, rf):
    project, username, password = sso_static_admin
    Project.objects.filter(pk=project.pk).update(static_admin_disabled=True)
    project.refresh_from_db()
    request = rf.post("/")
    request.session = SessionStore()
    with pytest.raises(InvalidInput, match="disabled"):
        login_static_admin(request, project, username, password)
