"""URL map of the control plane: portal, login, public API, piped API, webhooks, operators' console."""

from django.conf import settings
from django.urls import include, path

from apps.pipeds.pipedapi import api as piped_api

from .api import api as public_api

urlpatterns = [
    path("api/v1/", public_api.urls),
    path("api/piped/v1/", piped_api.urls),
    path("webhooks/", include("apps.pipeds.webhooks")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.webui.urls")),
]

if settings.PIPEPORTAL_ADMIN_ENABLED:
    from django.contrib import admin

    urlpatterns.append(path("admin/", admin.site.urls))
