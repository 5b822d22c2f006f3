"""allauth provider classes with the portal's additions: PipeCD's `redirectUri`, GitHub Enterprise, teams.

settings.SOCIALACCOUNT_PROVIDERS points allauth at these classes (`provider_class`), and the callback
views in apps.accounts.views use the adapters below, so logging in and coming back agree on every URL.
"""

from __future__ import annotations

import logging
from urllib.parse import urlparse

from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.providers.github.provider import GitHubProvider
from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from allauth.socialaccount.providers.saml.provider import SAMLProvider
from allauth.utils import build_absolute_uri
from django.urls import reverse

from .resolution import groups_from_github_teams

logger = logging.getLogger(__name__)

# Keys the portal adds to a login's extra data (never stored: SSO logins create no SocialAccount rows).
GITHUB_GROUPS_KEY = "pipeportal_groups"
SAML_NAMEID_KEY = "pipeportal_nameid"
# GitHub answers at most 100 teams per page; nobody is in more than a few pages of teams.
GITHUB_TEAM_PAGES = 10


class PortalOpenIDConnectAdapter(OpenIDConnectOAuth2Adapter):
    def get_callback_url(self, request, app):
        # PipeCD's `redirectUri`: a team moving over keeps the URI registered at its identity provider.
        return app.settings.get("redirect_uri") or super().get_callback_url(request, app)


class PortalOpenIDConnectProvider(OpenIDConnectProvider):
    # allauth finds a provider's URLs and templates by its package: keep allauth's.
    package = "allauth.socialaccount.providers.openid_connect"
    oauth2_adapter_class = PortalOpenIDConnectAdapter


def github_urls(base_url: str) -> tuple[str, str]:
    """(web URL, API URL) for github.com or a GitHub Enterprise server given by its web or API address."""
    base_url = (base_url or "").rstrip("/")
    if not base_url:
        return "https://github.com", "https://api.github.com"
    if base_url.endswith("/api/v3"):
        parts = urlparse(base_url)
        return f"{parts.scheme}://{parts.netloc}", base_url
    return base_url, f"{base_url}/api/v3"


def fetch_github_teams(api_url: str, access_token: str) -> list[dict]:
    """Every team the user belongs to (GET /user/teams, following the Link header's pages)."""
    url: str | None = f"{api_url}/user/teams?per_page=100"
    headers = {"Authorization": f"token {access_token}", "Accept": "application/vnd.github+json"}
    teams: list[dict] = []
    with get_adapter().get_requests_session() as session:
        for _ in range(GITHUB_TEAM_PAGES):
            if not url:
                break
            response = session.get(url, headers=headers)
            response.raise_for_status()
            teams.extend(response.json())
            url = response.links.get("next", {}).get("url")
    return teams


class PortalGitHubAdapter(GitHubOAuth2Adapter):
    """GitHub's URLs come from the app (GitHub Enterprise), not from import-time settings.

    `provider_id` is the config's name, so that several GitHub configs can live side by side; they all
    come back to allauth's one GitHub callback URL.
    """

    def __init__(self, request, provider_id: str = "github") -> None:
        super().__init__(request)
        self.provider_id = provider_id

    def get_callback_url(self, request, app):
        return build_absolute_uri(request, reverse("github_callback"), self.redirect_uri_protocol)

    def _urls(self) -> tuple[str, str]:
        return github_urls(self.get_provider().app.settings.get("base_url", ""))

    @property
    def access_token_url(self):  # type: ignore[override]
        return f"{self._urls()[0]}/login/oauth/access_token"

    @property
    def authorize_url(self):  # type: ignore[override]
        return f"{self._urls()[0]}/login/oauth/authorize"

    @property
    def profile_url(self):  # type: ignore[override]
        return f"{self._urls()[1]}/user"

    @property
    def emails_url(self):  # type: ignore[override]
        return f"{self._urls()[1]}/user/emails"

    def complete_login(self, request, app, token, **kwargs):
        login = super().complete_login(request, app, token, **kwargs)
        teams = fetch_github_teams(self._urls()[1], token.token)
        login.account.extra_data[GITHUB_GROUPS_KEY] = groups_from_github_teams(
            teams, app.settings.get("org", "")
        )
        return login


class PortalGitHubProvider(GitHubProvider):
    package = "allauth.socialaccount.providers.github"
    oauth2_adapter_class = PortalGitHubAdapter

    def get_oauth2_adapter(self, request):
        return PortalGitHubAdapter(request, self.sub_id)

    def get_default_scope(self):
        # read:org lets /user/teams answer; the login and profile need no scope.
        return ["read:org"]


class PortalSAMLProvider(SAMLProvider):
    package = "allauth.socialaccount.providers.saml"

    def extract_extra_data(self, data):
        # The NameID is the approver identity (DESIGN.md), so it travels with the attributes.
        extra = dict(data.get_attributes())
        extra[SAML_NAMEID_KEY] = data.get_nameid()
        return extra
