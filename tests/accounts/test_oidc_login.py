"""OpenID Connect login against a real provider (oidc-provider on 127.0.0.1), driven with the test client."""

import json
import re
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apps.accounts import sso
from apps.accounts.adapters import SSO_LOGIN_KEY
from apps.accounts.models import PortalSession
from apps.accounts.services import end_user_sessions
from apps.projects.models import AuditEvent, UserGroup
from apps.projects.principal import system_principal
from apps.projects.services import update_project
from tests.components import free_port

from .helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    html_text,
    oidc_env_config,
    portal_path,
    provider_login,
    sso_login,
)

pytestmark = [pytest.mark.xdist_group("oidc")]

CALLBACK = "http://testserver/accounts/oidc/corp-oidc/login/callback/"
REDIRECT_URI = "http://testserver/auth/callback"


@pytest.fixture(scope="module")
def provider(oidc_provider_factory):
    return oidc_provider_factory([CALLBACK, REDIRECT_URI])


@pytest.fixture
def oidc(settings, provider, user_groups):
    """The project logs in through `corp-oidc`, configured as the PIPEPORTAL_OIDC_* variables would."""
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(provider)]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    return user_groups


def whoami(client):
    return client.session.get("portal")


def test_it_offers_a_login_button_per_attached_config(oidc, client):
    page = client.get("/login/demo/")
    assert page.status_code == 200
    assert "Login with corp-oidc" in html_text(page)
    assert 'action="/login/demo/sso/corp-oidc/"' in page.content.decode()


def test_it_logs_an_editor_in_with_the_role_of_their_group(oidc, client):
    done = sso_login(client, "demo", "corp-oidc", "erin")
    assert done.status_code == 302 and done["Location"] == "/"
    session = whoami(client)
    assert session["username"] == "erin"
    assert session["role"] == "Editor"
    assert session["groups"] == ["deployers"]
    assert session["method"] == "corp-oidc"
    row = PortalSession.objects.get(session_key=client.session.session_key)
    assert (row.username, row.role, row.groups) == ("erin", "Editor", ["deployers"])
    event = AuditEvent.objects.filter(verb="login.success").latest("id")
    assert event.actor == "erin"
    assert event.details["role"] == "Editor"
    assert event.details["groups"] == ["deployers"]
    assert event.details["received_groups"] == ["deployers"]
    assert event.details["method"] == "corp-oidc"


def test_the_highest_matching_role_wins(oidc, client):
    sso_login(client, "demo", "corp-oidc", "ada")
    assert whoami(client)["role"] == "Admin"
    assert whoami(client)["groups"] == ["platform-admins"]


def test_it_makes_a_viewer_of_a_watcher(oidc, client):
    sso_login(client, "demo", "corp-oidc", "victor")
    assert whoami(client)["role"] == "Viewer"


def test_a_literal_role_name_counts_as_a_group(oidc, client):
    sso_login(client, "demo", "corp-oidc", "lit")
    assert whoami(client)["role"] == "Editor"
    assert whoami(client)["groups"] == ["Editor"]


def test_it_refuses_a_user_whose_groups_match_nothing(oidc, client):
    refused = sso_login(client, "demo", "corp-oidc", "sam")
    assert refused.status_code == 403
    text = html_text(refused)
    assert "none of your groups is mapped to a role" in text
    assert "marketing" in text and "sales" in text
    assert whoami(client) is None
    event = AuditEvent.objects.get(verb="login.refused")
    assert event.actor == "sam"
    assert event.details["received_groups"] == ["marketing", "sales"]


def test_it_says_so_when_no_groups_were_sent(oidc, client):
    refused = sso_login(client, "demo", "corp-oidc", "nora")
    assert refused.status_code == 403
    assert "sent no groups in the claim groups" in html_text(refused)


def test_a_stray_becomes_viewer_when_the_project_allows_it(oidc, client):
    update_project(system_principal(oidc.id), oidc, allow_stray_as_viewer=True)
    done = sso_login(client, "demo", "corp-oidc", "sam")
    assert done.status_code == 302
    assert whoami(client)["role"] == "Viewer"
    assert whoami(client)["groups"] == []
    assert AuditEvent.objects.filter(verb="login.success").latest("id").details["stray"] is True


def test_it_reads_groups_that_only_the_id_token_carries(settings, provider, user_groups, client):
    """Cognito puts cognito:groups in the ID token only; the identity falls back to the e-mail address."""
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(provider, roles_claim_key="cognito:groups")]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    sso_login(client, "demo", "corp-oidc", "cora")
    assert whoami(client)["username"] == "cora@example.com"
    assert whoami(client)["role"] == "Editor"


def test_a_user_removed_from_a_group_loses_the_role_at_the_next_login(oidc, client):
    UserGroup.objects.filter(project=oidc, sso_group="platform-admins").update(
        sso_group="platform-admins-old"
    )
    sso_login(client, "demo", "corp-oidc", "ada")
    assert whoami(client)["role"] == "Editor"
    assert whoami(client)["groups"] == ["deployers"]


def test_it_sends_and_answers_on_the_configured_redirect_uri(settings, provider, user_groups, client):
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(provider, redirect_uri=REDIRECT_URI)]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    start = client.post("/login/demo/sso/corp-oidc/")
    assert "redirect_uri=http%3A%2F%2Ftestserver%2Fauth%2Fcallback" in start["Location"]
    back = provider_login(start["Location"], "erin")
    assert back.startswith(REDIRECT_URI + "?")
    done = client.get(portal_path(back))
    assert done.status_code == 302
    assert whoami(client)["role"] == "Editor"


def test_the_session_lasts_the_configured_time(settings, provider, user_groups, client):
    settings.SESSION_COOKIE_AGE = 3600
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(provider)]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    sso_login(client, "demo", "corp-oidc", "erin")
    row = PortalSession.objects.get(session_key=client.session.session_key)
    assert abs((row.expires_at - timezone.now()).total_seconds() - 3600) < 60
    assert client.session.get_expiry_age() <= 3600


def test_the_session_cookie_is_httponly_and_samesite(oidc, client):
    done = sso_login(client, "demo", "corp-oidc", "erin")
    cookie = done.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_the_project_survives_the_round_trip_and_is_checked(oidc, other_project, client):
    """An answer for a login started for one project cannot be used after starting another."""
    start = client.post("/login/demo/sso/corp-oidc/")
    back = provider_login(start["Location"], "erin")
    session = client.session
    session[SSO_LOGIN_KEY] = {**session[SSO_LOGIN_KEY], "project": other_project.id}
    session.save()
    answer = client.get(portal_path(back))
    assert answer.status_code == 400
    assert "belongs to another login" in html_text(answer)
    assert whoami(client) is None


def test_it_refuses_an_answer_nobody_asked_for(oidc, client):
    start = client.post("/login/demo/sso/corp-oidc/")
    back = provider_login(start["Location"], "erin")
    answer = Client().get(portal_path(back))
    assert answer.status_code == 400
    assert "does not match a login started in this browser" in html_text(answer)


def test_it_refuses_a_replayed_answer(oidc, client):
    start = client.post("/login/demo/sso/corp-oidc/")
    back = provider_login(start["Location"], "erin")
    assert client.get(portal_path(back)).status_code == 302
    client.post("/logout/")
    replay = client.get(portal_path(back))
    assert replay.status_code == 400
    assert whoami(client) is None


def test_a_login_for_a_config_the_project_does_not_use_is_refused(oidc, client):
    answer = client.post("/login/demo/sso/someone-elses/")
    assert answer.status_code == 404
    assert "does not use an SSO config named" in html_text(answer)


def test_starting_a_login_needs_a_post(oidc, client):
    assert client.get("/login/demo/sso/corp-oidc/").status_code == 405


def test_allauths_own_login_page_sends_people_to_the_project_picker(oidc, client):
    answer = client.get("/accounts/oidc/corp-oidc/login/")
    assert answer.status_code == 302 and answer["Location"] == "/login/"


def test_logout_ends_the_sso_session(oidc, client):
    sso_login(client, "demo", "corp-oidc", "erin")
    key = client.session.session_key
    answer = client.post("/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/login/demo/"
    assert not PortalSession.objects.filter(session_key=key).exists()
    assert client.get("/account/").status_code == 302


def test_an_admin_ends_an_sso_users_sessions(oidc, client, admin):
    sso_login(client, "demo", "corp-oidc", "erin")
    assert client.get("/account/").status_code == 200
    assert end_user_sessions(admin, oidc, "erin") == 1
    assert whoami(client) is None
    assert client.get("/account/").status_code == 302


def test_my_account_shows_the_role_and_the_groups_it_came_from(oidc, client):
    sso_login(client, "demo", "corp-oidc", "ada")
    page = client.get("/account/")
    text = html_text(page)
    assert page.status_code == 200
    assert "ada" in text and "Admin" in text and "platform-admins" in text
    assert "corp-oidc" in text


def test_it_explains_a_token_the_provider_would_not_hand_out(settings, provider, user_groups, client):
    settings.PIPEPORTAL_SSO_FROM_ENV = [oidc_env_config(provider, client_secret="not-the-secret")]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    failed = sso_login(client, "demo", "corp-oidc", "erin")
    assert failed.status_code == 401
    text = html_text(failed)
    assert "corp-oidc did not confirm who you are" in text
    assert "invalid_client" in text
    assert "Traceback" not in text
    assert whoami(client) is None


def test_cancelling_at_the_provider_says_so(oidc, client):
    start = client.post("/login/demo/sso/corp-oidc/")
    provider_session = requests.Session()
    interaction = provider_session.get(start["Location"], timeout=10)
    abort_path = re.search(r'href="([^"]*/abort)"', interaction.text).group(1)
    aborted = provider_session.get(urljoin(interaction.url, abort_path), allow_redirects=False, timeout=10)
    while urlparse(aborted.headers["Location"]).netloc == urlparse(start["Location"]).netloc:
        aborted = provider_session.get(
            urljoin(interaction.url, aborted.headers["Location"]), allow_redirects=False, timeout=10
        )
    answer = client.get(portal_path(aborted.headers["Location"]))
    assert answer.status_code == 401
    assert "The login at corp-oidc was cancelled" in html_text(answer)


def test_an_error_from_the_provider_is_shown(oidc, client):
    start = client.post("/login/demo/sso/corp-oidc/")
    state = parse_qs(urlparse(start["Location"]).query)["state"][0]
    answer = client.get(
        "/accounts/oidc/corp-oidc/login/callback/",
        {"state": state, "error": "temporarily_unavailable", "error_description": "try later"},
    )
    assert answer.status_code == 401
    text = html_text(answer)
    assert "corp-oidc refused the login" in text and "temporarily_unavailable: try later" in text


def test_logging_in_again_replaces_the_earlier_session(oidc, client):
    sso_login(client, "demo", "corp-oidc", "victor")
    first = client.session.session_key
    sso_login(client, "demo", "corp-oidc", "erin")
    assert client.session.session_key != first
    assert list(PortalSession.objects.values_list("username", flat=True)) == ["erin"]


def test_sso_logins_create_no_django_users(oidc, client):
    sso_login(client, "demo", "corp-oidc", "erin")
    assert whoami(client)["username"] == "erin"
    assert not get_user_model().objects.exists()
    assert not SocialAccount.objects.exists()


def test_pipecds_redirect_path_without_a_login_in_progress_says_so(oidc, client):
    answer = client.get("/auth/callback", {"code": "x", "state": "y"})
    assert answer.status_code == 400
    assert "No OpenID Connect login is in progress" in html_text(answer)


@pytest.mark.parametrize("path", ["/accounts/saml/entra/login/", "/accounts/github/login/"])
def test_allauths_other_login_pages_send_people_to_the_project_picker(client, path):
    answer = client.get(path)
    assert answer.status_code == 302 and answer["Location"] == "/login/"


def test_configured_redirect_uris_are_answered_on_their_paths(settings, provider):
    settings.PIPEPORTAL_SSO_FROM_ENV = [
        oidc_env_config(provider, redirect_uri="https://pipecd.example.test/oauth2/idpresponse")
    ]
    assert sso.oidc_redirect_paths() == {"/oauth2/idpresponse"}


def test_an_unreachable_provider_is_explained(settings, user_groups, client):
    closed = f"http://127.0.0.1:{free_port()}"
    settings.PIPEPORTAL_SSO_FROM_ENV = [{**oidc_env_config(None), "issuer": closed}]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    answer = client.post("/login/demo/sso/corp-oidc/")
    assert answer.status_code == 502
    text = html_text(answer)
    assert "cannot reach or read corp-oidc's configuration" in text
    assert "/.well-known/openid-configuration" in text


def test_an_operator_adds_the_provider_in_the_admin(settings, provider, user_groups, client):
    """No control-plane config, no environment: a SocialApp added in the operators' console."""
    settings.PIPEPORTAL_SSO_FROM_ENV = []
    operator = Client()
    operator.force_login(get_user_model().objects.create_superuser("ops", "ops@example.com", "unused"))
    added = operator.post(
        "/admin/socialaccount/socialapp/add/",
        {
            "provider": "openid_connect",
            "provider_id": "corp-oidc",
            "name": "Corporate SSO",
            "client_id": CLIENT_ID,
            "secret": CLIENT_SECRET,
            "key": "",
            "settings": json.dumps({"server_url": provider.issuer, "roles_claim_key": "groups"}),
        },
    )
    assert added.status_code == 302, html_text(added)
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="corp-oidc")
    assert "Login with Corporate SSO" in html_text(client.get("/login/demo/"))
    done = sso_login(client, "demo", "corp-oidc", "erin")
    assert done.status_code == 302
    assert (whoami(client)["role"], whoami(client)["method"]) == ("Editor", "corp-oidc")
