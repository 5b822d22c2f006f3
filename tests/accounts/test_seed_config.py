"""The seed's control-plane-config.yaml, as written, configures OIDC login (Cognito federated to Entra ID).

fixtures/control-plane-config.yaml is the seed's file unchanged. Its `${...}` placeholders are set here;
only the issuer is pointed at the local provider afterwards, since Cognito is not reachable from tests.
Its redirectUri is PipeCD's https://pipecd.<domain>/auth/callback: the portal sends it and answers on it.
"""

import pytest
from django.test import Client

from apps.accounts import sso
from apps.pipelineconfig import load_control_plane_config
from apps.projects.principal import system_principal
from apps.projects.services import update_project

from .helpers import FIXTURES, html_text, portal_path, provider_login

pytestmark = [pytest.mark.xdist_group("oidc")]

HOST = "pipecd.example.test"
REDIRECT_URI = f"https://{HOST}/auth/callback"
PLACEHOLDERS = {
    "DB_USER": "pipecd",
    "DB_PASS": "db-password",
    "ENV": "dev",
    "RESOURCE_PREFIX": "zozomo",
    "statekey": "state-key",
    "clientId": "pipeportal",
    "clientSecret": "pipeportal-test-secret",
    "userPoolId": "ap-northeast-1_AbCdEf123",
    "DOMAIN": "example.test",
}


@pytest.fixture(scope="module")
def provider(oidc_provider_factory):
    return oidc_provider_factory([REDIRECT_URI])


@pytest.fixture
def seed_spec():
    loaded = load_control_plane_config(FIXTURES / "control-plane-config.yaml", env=PLACEHOLDERS)
    return loaded.spec


@pytest.fixture
def seed_sso(settings, seed_spec, provider, user_groups):
    entry = seed_spec.shared_sso_configs[0]
    local = entry.model_copy(update={"oidc": entry.oidc.model_copy(update={"issuer": provider.issuer})})
    settings.PIPEPORTAL_CONTROL_PLANE_CONFIG = seed_spec.model_copy(update={"shared_sso_configs": [local]})
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    # As in the seed: the project is created with Shared SSO "cognito-azure".
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="cognito-azure")
    return user_groups


def test_the_seed_file_loads_with_its_placeholders_set(db, settings, seed_spec):
    settings.PIPEPORTAL_CONTROL_PLANE_CONFIG = seed_spec
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    app = sso.find_app("cognito-azure")
    assert app.provider == "openid_connect"
    assert app.client_id == "pipeportal"
    assert (
        app.settings["server_url"]
        == "https://cognito-idp.ap-northeast-1.amazonaws.com/ap-northeast-1_AbCdEf123"
    )
    assert app.settings["redirect_uri"] == REDIRECT_URI
    assert app.settings["scope"] == ["openid", "profile"]
    config = sso.describe(app)
    assert (config.name, config.label, config.source) == (
        "cognito-azure",
        "cognito-azure",
        "control-plane config",
    )
    assert config.roles_claim_key == "groups"
    assert config.session_ttl == 7 * 24 * 3600


def test_the_seed_config_logs_a_cognito_user_in_through_pipecds_redirect_uri(seed_sso):
    client = Client(HTTP_HOST=HOST)
    page = client.get("/login/demo/", secure=True)
    assert "Login with cognito-azure" in html_text(page)
    start = client.post("/login/demo/sso/cognito-azure/", secure=True)
    assert start.status_code == 302
    assert "redirect_uri=https%3A%2F%2Fpipecd.example.test%2Fauth%2Fcallback" in start["Location"]
    assert "scope=openid+profile" in start["Location"] or "scope=profile+openid" in start["Location"]
    back = provider_login(start["Location"], "cora")
    assert back.startswith(REDIRECT_URI + "?")
    done = client.get(portal_path(back), secure=True)
    assert done.status_code == 302, html_text(done)
    session = client.session["portal"]
    # Cognito-shaped: the groups arrive only in the ID token as cognito:groups, the name as the e-mail.
    assert (session["username"], session["role"], session["groups"]) == (
        "cora@example.com",
        "Editor",
        ["deployers"],
    )
    assert session["method"] == "cognito-azure"
