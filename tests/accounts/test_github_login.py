"""GitHub login: the user's teams become `org/team` groups.

GitHub itself is unreachable from the test machines, so a local HTTP server started here stands in for
it, answering with responses shaped like GitHub's documented ones (OAuth endpoints, GET /user,
GET /user/teams with Link-header paging). The portal reaches it as a GitHub Enterprise server
(`base_url`), through the same code that talks to github.com.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests

from apps.accounts.providers import fetch_github_teams, github_urls
from apps.accounts.resolution import groups_from_github_teams
from apps.projects.choices import Role
from apps.projects.principal import system_principal
from apps.projects.services import add_user_group, update_project

from .helpers import html_text, portal_path

ACCESS_TOKEN = "gho_test0000000000000000000000000000000"


def team(org: str, slug: str, team_id: int) -> dict:
    """A team as GET /user/teams returns it (fields trimmed to the documented shape)."""
    return {
        "id": team_id,
        "node_id": f"T_kwDO{team_id:08d}",
        "url": f"https://api.github.com/teams/{team_id}",
        "html_url": f"https://github.com/orgs/{org}/teams/{slug}",
        "name": slug.replace("-", " ").title(),
        "slug": slug,
        "description": "",
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": f"https://api.github.com/teams/{team_id}/members{{/member}}",
        "repositories_url": f"https://api.github.com/teams/{team_id}/repos",
        "parent": None,
        "members_count": 3,
        "repos_count": 10,
        "created_at": "2024-01-10T09:00:00Z",
        "updated_at": "2025-03-02T12:00:00Z",
        "organization": {
            "login": org,
            "id": 1000 + len(org),
            "node_id": "O_kgDOB",
            "url": f"https://api.github.com/orgs/{org}",
            "type": "Organization",
        },
    }


TEAMS_PAGE_1 = [team("acme", "frontend", 1), team("acme", "deployers", 2)]
TEAMS_PAGE_2 = [team("other-org", "platform", 3)]
USER = {
    "login": "octocat",
    "id": 583231,
    "node_id": "MDQ6VXNlcjU4MzIzMQ==",
    "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
    "html_url": "https://github.com/octocat",
    "type": "User",
    "site_admin": False,
    "name": "The Octocat",
    "company": "@github",
    "email": None,
}


class FakeGitHub(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, body, status=200, headers=None):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        base = f"http://{self.headers['Host']}"
        if url.path == "/login/oauth/authorize":
            self.server.authorize_queries.append(query)
            target = (
                query["redirect_uri"][0] + "?" + urlencode({"code": "test-code", "state": query["state"][0]})
            )
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        if self.headers.get("Authorization") != f"token {ACCESS_TOKEN}":
            self._json({"message": "Requires authentication"}, 401)
            return
        if url.path == "/api/v3/user":
            self._json(USER)
        elif url.path == "/api/v3/user/teams":
            if query.get("page") == ["2"]:
                self._json(
                    TEAMS_PAGE_2,
                    headers={"Link": f'<{base}/api/v3/user/teams?per_page=100&page=1>; rel="prev"'},
                )
            else:
                self._json(
                    TEAMS_PAGE_1,
                    headers={"Link": f'<{base}/api/v3/user/teams?per_page=100&page=2>; rel="next"'},
                )
        else:
            self._json({"message": "Not Found"}, 404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(length).decode())
        if urlparse(self.path).path == "/login/oauth/access_token" and form.get("code") == ["test-code"]:
            self.server.token_requests.append(form)
            self._json({"access_token": ACCESS_TOKEN, "token_type": "bearer", "scope": "read:org"})
        else:
            self._json({"error": "bad_verification_code"}, 200)


@pytest.fixture(scope="module")
def github():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    server.authorize_queries = []
    server.token_requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_teams_become_org_slash_team_groups():
    teams = TEAMS_PAGE_1 + TEAMS_PAGE_2
    assert groups_from_github_teams(teams) == ["acme/frontend", "acme/deployers", "other-org/platform"]
    assert groups_from_github_teams(teams, org="ACME") == ["acme/frontend", "acme/deployers"]
    assert groups_from_github_teams([{"slug": "x", "organization": None}]) == []


def test_enterprise_urls_are_derived_from_the_base_url():
    assert github_urls("") == ("https://github.com", "https://api.github.com")
    assert github_urls("https://ghe.example.com/") == (
        "https://ghe.example.com",
        "https://ghe.example.com/api/v3",
    )
    assert github_urls("https://ghe.example.com/api/v3/") == (
        "https://ghe.example.com",
        "https://ghe.example.com/api/v3",
    )


def test_it_reads_every_page_of_teams(github):
    teams = fetch_github_teams(f"{github.url}/api/v3", ACCESS_TOKEN)
    assert [t["slug"] for t in teams] == ["frontend", "deployers", "platform"]


@pytest.fixture
def github_sso(settings, github, project):
    settings.PIPEPORTAL_SSO_FROM_ENV = [
        {
            "kind": "github",
            "name": "acme-github",
            "client_id": "Iv1.test",
            "client_secret": "test-secret",
            "base_url": github.url,
            "org": "acme",
        }
    ]
    principal = system_principal(project.id)
    add_user_group(principal, project, sso_group="acme/deployers", role=Role.EDITOR)
    add_user_group(principal, project, sso_group="other-org/platform", role=Role.ADMIN)
    update_project(principal, project, shared_sso_config="acme-github")
    return project


def test_a_github_user_gets_the_role_of_their_team(github_sso, github, client):
    start = client.post("/login/demo/sso/acme-github/")
    assert start.status_code == 302
    assert start["Location"].startswith(f"{github.url}/login/oauth/authorize?")
    authorize = parse_qs(urlparse(start["Location"]).query)
    assert authorize["scope"] == ["read:org"]
    assert authorize["redirect_uri"] == ["http://testserver/accounts/github/login/callback/"]
    # The browser follows GitHub's redirect back to the portal.
    back = requests.get(start["Location"], allow_redirects=False, timeout=10)
    done = client.get(portal_path(back.headers["Location"]))
    assert done.status_code == 302, html_text(done)
    session = client.session["portal"]
    # other-org/platform would make octocat an Admin, but only the acme organisation's teams count.
    assert (session["username"], session["role"], session["groups"]) == (
        "octocat",
        "Editor",
        ["acme/deployers"],
    )
    assert session["method"] == "acme-github"


def test_a_github_user_in_no_mapped_team_is_refused(github_sso, github, client, settings):
    settings.PIPEPORTAL_SSO_FROM_ENV[0]["org"] = "nobody-here"
    start = client.post("/login/demo/sso/acme-github/")
    back = requests.get(start["Location"], allow_redirects=False, timeout=10)
    refused = client.get(portal_path(back.headers["Location"]))
    assert refused.status_code == 403
    assert "found no teams in the organisation nobody-here" in html_text(refused)
