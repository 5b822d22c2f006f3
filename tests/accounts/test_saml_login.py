"""SAML 2.0 login with responses signed at test time (python3-saml / xmlsec), Entra ID style."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from apps.accounts.models import PortalSession
from apps.projects.models import AuditEvent
from apps.projects.principal import system_principal
from apps.projects.services import update_project

from .helpers import html_text
from .saml_idp import ENTRA_GROUPS, TestIdP, encode, make_key_and_cert, request_id

# python3-saml wants a dotted host name in the SP's URLs ("testserver" is not one).
HOST = "portal.example.test"
ACS = f"http://{HOST}/accounts/saml/entra/acs/"
SP_ENTITY_ID = f"http://{HOST}/accounts/saml/entra/metadata/"


@pytest.fixture(scope="module")
def idp():
    return TestIdP()


@pytest.fixture
def saml(settings, idp, user_groups):
    settings.PIPEPORTAL_SSO_FROM_ENV = [
        {
            "kind": "saml",
            "name": "entra",
            "idp_entity_id": idp.entity_id,
            "idp_sso_url": idp.sso_url,
            "idp_x509_cert": idp.cert,
            "idp_metadata_url": "",
            "groups_attribute": "",
            "sp_entity_id": "",
        }
    ]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    update_project(system_principal(user_groups.id), user_groups, shared_sso_config="entra")
    return user_groups


@pytest.fixture
def client():
    return Client(HTTP_HOST=HOST)


def start(client) -> str:
    """Press "Login with entra"; returns the AuthnRequest's ID the IdP must answer to."""
    redirect = client.post("/login/demo/sso/entra/")
    assert redirect.status_code == 302
    assert redirect["Location"].startswith(TestIdP().sso_url + "?SAMLRequest=")
    return request_id(redirect["Location"])


def post_response(client, xml: str):
    """What the browser does with the IdP's auto-submitting form: POST to the ACS, follow to the finish."""
    acs = client.post("/accounts/saml/entra/acs/", {"SAMLResponse": encode(xml)})
    assert acs.status_code == 302, acs.content[:300]
    return client.get(acs["Location"])


def answer(idp, client, **overrides):
    fields = {
        "in_response_to": start(client),
        "acs_url": ACS,
        "audience": SP_ENTITY_ID,
        "name_id": "erin@example.com",
        "attributes": {ENTRA_GROUPS: ["deployers", "f3b1c0de-0000-4000-8000-000000000001"]},
    }
    fields.update(overrides)
    return post_response(client, idp.response(**fields))


def test_it_serves_sp_metadata_for_the_idp_to_import(saml, client):
    metadata = client.get("/accounts/saml/entra/metadata/")
    assert metadata.status_code == 200
    assert metadata["Content-Type"].startswith("text/xml")
    xml = metadata.content.decode()
    assert f'entityID="{SP_ENTITY_ID}"' in xml
    assert f'Location="{ACS}"' in xml
    assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" in xml


def test_a_signed_response_logs_the_user_in_with_the_role_of_their_group(saml, idp, client):
    done = answer(idp, client)
    assert done.status_code == 302 and done["Location"] == "/"
    session = client.session["portal"]
    assert (session["username"], session["role"], session["groups"]) == (
        "erin@example.com",
        "Editor",
        ["deployers"],
    )
    assert session["method"] == "entra"
    event = AuditEvent.objects.filter(verb="login.success").latest("id")
    assert event.details["received_groups"] == ["deployers", "f3b1c0de-0000-4000-8000-000000000001"]


def test_a_response_signed_as_a_whole_works_too(saml, idp, client):
    done = answer(idp, client, sign="response")
    assert done.status_code == 302
    assert client.session["portal"]["role"] == "Editor"


def test_the_groups_attribute_can_be_configured(settings, saml, idp, client):
    settings.PIPEPORTAL_SSO_FROM_ENV[0]["groups_attribute"] = "memberOf"
    done = answer(idp, client, attributes={"memberOf": ["platform-admins"], ENTRA_GROUPS: ["deployers"]})
    assert done.status_code == 302
    assert client.session["portal"]["role"] == "Admin"
    assert client.session["portal"]["groups"] == ["platform-admins"]


def test_a_saml_user_with_no_mapped_group_is_refused(saml, idp, client):
    refused = answer(idp, client, attributes={ENTRA_GROUPS: ["finance"]})
    assert refused.status_code == 403
    assert "finance" in html_text(refused)
    assert "portal" not in client.session


def refused_with(response, status: int, *phrases: str) -> None:
    assert response.status_code == status
    text = html_text(response)
    assert "Login failed" in text
    for phrase in phrases:
        assert phrase in text
    assert "Traceback" not in text


def test_a_tampered_signature_is_refused(saml, idp, client):
    xml = idp.response(
        in_response_to=start(client),
        acs_url=ACS,
        audience=SP_ENTITY_ID,
        name_id="victor@example.com",
        attributes={ENTRA_GROUPS: ["watchers"]},
    )
    # Victor promotes himself after the IdP signed: the signature no longer matches the assertion.
    tampered = xml.replace(">watchers<", ">platform-admins<")
    assert tampered != xml
    refused_with(post_response(client, tampered), 401, "signature on the SAML response does not verify")
    assert "portal" not in client.session
    assert not PortalSession.objects.exists()


def test_a_response_signed_by_another_key_is_refused(saml, idp, client):
    other_key, other_cert = make_key_and_cert("impostor")
    done = answer(idp, client, key=other_key, cert=other_cert)
    refused_with(done, 401, "signature on the SAML response does not verify")


def test_an_unsigned_response_is_refused(saml, idp, client):
    refused_with(answer(idp, client, sign="none"), 401, "carries no signature")


def test_a_response_for_another_audience_is_refused(saml, idp, client):
    done = answer(idp, client, audience="https://some-other-app.example.test/saml")
    refused_with(done, 401, "meant for another service", "not a valid audience")


def test_an_expired_assertion_is_refused(saml, idp, client):
    done = answer(idp, client, issued_at=datetime.now(UTC) - timedelta(hours=2))
    refused_with(done, 401, "The SAML assertion has expired")


def test_an_unsolicited_response_is_refused(saml, idp, client):
    """IdP-initiated logins are refused: nothing ties them to a login started in this browser."""
    xml = idp.response(
        in_response_to=None,
        acs_url=ACS,
        audience=SP_ENTITY_ID,
        name_id="erin@example.com",
        attributes={ENTRA_GROUPS: ["deployers"]},
    )
    refused_with(post_response(client, xml), 400, "does not match a login started in this browser")
    assert "portal" not in client.session


def test_a_replayed_response_is_refused(saml, idp, client):
    """A response captured on the way (or from the browser's history) cannot log anyone in a second time."""
    xml = idp.response(
        in_response_to=start(client),
        acs_url=ACS,
        audience=SP_ENTITY_ID,
        name_id="erin@example.com",
        attributes={ENTRA_GROUPS: ["deployers"]},
    )
    assert post_response(client, xml).status_code == 302
    client.post("/logout/")
    assert "portal" not in client.session

    for replayer in (client, Client(HTTP_HOST=HOST)):
        replayed = post_response(replayer, xml)
        assert replayed.status_code in (400, 401, 403), replayed.status_code
        assert "Traceback" not in html_text(replayed)
        assert "portal" not in replayer.session
    assert PortalSession.objects.filter(username="erin@example.com").count() == 0


def test_a_response_to_another_browsers_request_is_refused(saml, idp, client):
    """The AuthnRequest was started in one browser; its answer posted in another logs nobody in."""
    other = Client(HTTP_HOST=HOST)
    xml = idp.response(
        in_response_to=start(other),
        acs_url=ACS,
        audience=SP_ENTITY_ID,
        name_id="erin@example.com",
        attributes={ENTRA_GROUPS: ["deployers"]},
    )
    refused = post_response(client, xml)
    assert refused.status_code in (400, 401, 403)
    assert "portal" not in client.session
