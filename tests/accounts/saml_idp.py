"""A SAML identity provider for tests: a key and certificate made at test time, and signed responses.

The responses are shaped like Entra ID's (NameID, the groups claim URI, the assertion signed) and are
signed with python3-saml's own signing code (xmlsec), so the portal verifies real XML signatures.
"""

import base64
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from onelogin.saml2.utils import OneLogin_Saml2_Utils

ENTRA_GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"


def make_key_and_cert(common_name: str = "test-idp") -> tuple[str, str]:
    """(private key PEM, self-signed certificate PEM), generated now; nothing secret is committed."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def request_id(redirect_url: str) -> str:
    """The ID of the AuthnRequest the portal put in its redirect to the identity provider."""
    saml_request = parse_qs(urlparse(redirect_url).query)["SAMLRequest"][0]
    xml = zlib.decompress(base64.b64decode(saml_request), -15).decode()
    start = xml.index(' ID="') + 5
    return xml[start : xml.index('"', start)]


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class TestIdP:
    """Builds signed SAML responses for one identity provider entity."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, entity_id: str = "https://sts.windows.net/test-tenant/") -> None:
        self.entity_id = entity_id
        self.sso_url = "https://login.example.test/test-tenant/saml2"
        self.key, self.cert = make_key_and_cert()

    def response(
        self,
        *,
        in_response_to: str | None,
        acs_url: str,
        audience: str,
        name_id: str,
        attributes: dict[str, list[str]],
        valid_for: timedelta = timedelta(minutes=5),
        issued_at: datetime | None = None,
        sign: str = "assertion",
        key: str | None = None,
        cert: str | None = None,
    ) -> str:
        """The XML of a Response; `sign` is "assertion", "response" or "none"."""
        now = issued_at or datetime.now(UTC)
        not_after = _instant(now + valid_for)
        irt = f' InResponseTo="{escape(in_response_to)}"' if in_response_to else ""
        attribute_xml = "".join(
            f'<saml:Attribute Name="{escape(name)}">'
            + "".join(f"<saml:AttributeValue>{escape(v)}</saml:AttributeValue>" for v in values)
            + "</saml:Attribute>"
            for name, values in attributes.items()
        )
        assertion = (
            '<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{_instant(now)}">'
            f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
            "<saml:Subject>"
            '<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
            f"{escape(name_id)}</saml:NameID>"
            '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<saml:SubjectConfirmationData{irt} NotOnOrAfter="{not_after}" Recipient="{escape(acs_url)}"/>'
            "</saml:SubjectConfirmation>"
            "</saml:Subject>"
            f'<saml:Conditions NotBefore="{_instant(now - timedelta(minutes=1))}" NotOnOrAfter="{not_after}">'
            f"<saml:AudienceRestriction><saml:Audience>{escape(audience)}</saml:Audience>"
            "</saml:AudienceRestriction>"
            "</saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{_instant(now)}" SessionIndex="_{uuid.uuid4().hex}">'
            "<saml:AuthnContext><saml:AuthnContextClassRef>"
            "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
            "</saml:AuthnContextClassRef></saml:AuthnContext>"
            "</saml:AuthnStatement>"
            f"<saml:AttributeStatement>{attribute_xml}</saml:AttributeStatement>"
            "</saml:Assertion>"
        )
        key, cert = key or self.key, cert or self.cert
        if sign == "assertion":
            assertion = _without_xml_declaration(OneLogin_Saml2_Utils.add_sign(assertion, key, cert))
        response = (
            '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
            f'ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{_instant(now)}" '
            f'Destination="{escape(acs_url)}"{irt}>'
            f"<saml:Issuer>{escape(self.entity_id)}</saml:Issuer>"
            '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
            f"{assertion}"
            "</samlp:Response>"
        )
        if sign == "response":
            response = OneLogin_Saml2_Utils.add_sign(response, key, cert).decode()
        return response


def _without_xml_declaration(xml: bytes | str) -> str:
    text = xml.decode() if isinstance(xml, bytes) else xml
    return text.split("?>", 1)[1] if text.startswith("<?xml") else text


def encode(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()
