"""URL map of the control plane: portal, login, public API, piped API, webhooks, operators' console."""

from django.conf import settings
from django.urls import include, path

urlpatterns = [
    path("", include("apps.accounts.urls")),
    path("", include("apps.webui.urls")),
]

if settings.PIPEPORTAL_ADMIN_ENABLED:
    from django.contrib import admin

    urlpatterns.append(path("admin/", admin.site.urls))
