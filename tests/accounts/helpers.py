"""SSO test helpers: a real OpenID Connect provider (Node, oidc-provider), its users, and a scripted login."""

import fcntl
import html
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import requests

from tests.components import free_port, stop_process, wait_for_port

OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLIENT_ID = "pipeportal"
CLIENT_SECRET = "pipeportal-test-secret"

# The identity provider's users. Their groups differ; `cora` is shaped like a Cognito user: no
# preferred_username, and her groups only in the ID token under `cognito:groups`.
OIDC_ACCOUNTS = {
    "erin": {"claims": {"preferred_username": "erin", "email": "erin@example.com", "groups": ["deployers"]}},
    "victor": {
        "claims": {"preferred_username": "victor", "email": "victor@example.com", "groups": ["watchers"]}
    },
    "ada": {
        "claims": {
            "preferred_username": "ada",
            "email": "ada@example.com",
            "groups": ["watchers", "platform-admins", "deployers"],
        }
    },
    "sam": {
        "claims": {"preferred_username": "sam", "email": "sam@example.com", "groups": ["marketing", "sales"]}
    },
    "nora": {"claims": {"preferred_username": "nora", "email": "nora@example.com"}},
    "lit": {"claims": {"preferred_username": "lit", "groups": ["Editor"]}},
    "cora": {
        "claims": {"email": "cora@example.com", "email_verified": True},
        "id_token_only": {"cognito:groups": ["deployers"], "cognito:username": "AzureAD_cora@example.com"},
    },
}


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install_node_modules() -> None:
    """`npm ci` from the committed lock file, once, even when several test workers start together."""
    with open(Path(tempfile.gettempdir()) / "pipeportal-oidc-npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=OIDC_DIR,
                check=True,
                timeout=300,
            )


class OIDCProvider:
    """oidc-provider on a free 127.0.0.1 port, with our client and users registered."""

    def __init__(self, redirect_uris: list[str], tmpdir: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": redirect_uris,
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ],
            "accounts": OIDC_ACCOUNTS,
        }
        config_path = tmpdir / f"oidc-{self.port}.json"
        config_path.write_text(json.dumps(config))
        self.log = tmpdir / f"oidc-{self.port}.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["node", "provider.mjs", str(config_path)], cwd=OIDC_DIR, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, 30, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}: {self.log.read_text()}") from exc

    def stop(self) -> None:
        stop_process(self.proc)


def oidc_env_config(provider: OIDCProvider | None, *, name: str = "corp-oidc", **extra) -> dict:
    """A PIPEPORTAL_SSO_FROM_ENV entry, as settings.py builds it from PIPEPORTAL_OIDC_*."""
    return {
        "kind": "openid_connect",
        "name": name,
        "issuer": provider.issuer if provider else "",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "profile", "email"],
        "redirect_uri": "",
        "roles_claim_key": "groups",
        "token_auth_method": "",
        **extra,
    }


class _Forms(HTMLParser):
    """The forms of an HTML page: action and input values (enough for oidc-provider's dev interactions)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value") or ""


def provider_login(authorize_url: str, login: str) -> str:
    """Log in at the provider as `login` (any password) and consent; returns the URL it sends the browser to.

    Posts the forms the way a browser would, hidden `prompt` field included.
    """
    session = requests.Session()
    session.trust_env = False
    url = authorize_url
    provider_host = urlparse(authorize_url).netloc
    for _ in range(12):
        response = session.get(url, allow_redirects=False, timeout=10)
        while (
            response.status_code in (302, 303)
            and urlparse(urljoin(url, response.headers["Location"])).netloc == provider_host
        ):
            url = urljoin(url, response.headers["Location"])
            response = session.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (302, 303):
            return urljoin(url, response.headers["Location"])
        assert response.status_code == 200, response.text[:500]
        parser = _Forms()
        parser.feed(response.text)
        form = next(f for f in parser.forms if "prompt" in f["fields"])
        fields = dict(form["fields"])
        if fields["prompt"] == "login":
            fields.update(login=login, password="any password works")
        posted = session.post(urljoin(url, form["action"]), data=fields, allow_redirects=False, timeout=10)
        assert posted.status_code in (302, 303), posted.text[:500]
        location = urljoin(url, posted.headers["Location"])
        if urlparse(location).netloc != provider_host:
            return location
        url = location
    raise AssertionError("the provider never sent the browser back")


def portal_path(url: str) -> str:
    """The path and query of a portal URL, for the Django test client."""
    parts = urlparse(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def html_text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def sso_login(client, project_id: str, config_name: str, login: str, **extra):
    """The whole round trip with the Django test client: the button, the provider, the callback."""
    start = client.post(f"/login/{project_id}/sso/{config_name}/", {"next": "/"}, **extra)
    assert start.status_code == 302, start.content[:500]
    back = provider_login(start["Location"], login)
    return client.get(portal_path(back), **extra)
