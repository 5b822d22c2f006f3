"""URL map of the control plane: portal, login, public API, piped API, webhooks, operators' console."""

from allauth.urls import build_provider_urlpatterns
from django.conf import settings
from django.http import JsonResponse
from django.urls import include, path, re_path

from apps.accounts import views as accounts_views
from apps.pipeds.pipedapi import api as piped_api

from .api import api as public_api


def api_not_found(request):
    return JsonResponse({"detail": f"No API endpoint at {request.path}.", "field": None}, status=404)


urlpatterns = [
    path("api/v1/", public_api.urls),
    path("api/piped/v1/", piped_api.urls),
    # Any other path under /api/: a JSON 404 for the scripts that call it, not the portal's HTML page.
    re_path(r"^api/", api_not_found, name="unmatched"),  # one metrics series for every unknown path
    path("webhooks/", include("apps.pipeds.webhooks")),
    # Probes and metrics (apps.ops.middleware answers them first; see docs/operations.md).
    path("", include("apps.ops.urls")),
    path("", include("apps.accounts.urls")),
    # SSO: allauth's provider URLs only (its password login and signup pages are not mounted), and
    # PipeCD's OIDC redirect URI, so the URI registered at the identity provider keeps working.
    path("accounts/", include(build_provider_urlpatterns())),
    path("auth/callback", accounts_views.oidc_callback, name="pipecd_auth_callback"),
    path("", include("apps.webui.urls")),
    path("", include("apps.notifications.urls")),
]

if settings.PIPEPORTAL_ADMIN_ENABLED:
    from django.contrib import admin

    urlpatterns.append(path("admin/", admin.site.urls))
