"""Portal URLs, namespace `webui`. The names are a contract: benchmarks and other apps link to them."""

from django.urls import path

from .views import applications, deployments
from .views import settings as settings_views

app_name = "webui"
urlpatterns = [
    path("", applications.home, name="home"),
    # Applications
    path("applications/", applications.application_list, name="applications"),
    path("applications/add/", applications.application_add, name="application_add"),
    path("applications/<uuid:app_id>/", applications.application_detail, name="application"),
    path("applications/<uuid:app_id>/sync/", applications.application_sync, name="application_sync"),
    path("applications/<uuid:app_id>/edit/", applications.application_edit, name="application_edit"),
    path("applications/<uuid:app_id>/disable/", applications.application_disable, name="application_disable"),
    path("applications/<uuid:app_id>/enable/", applications.application_enable, name="application_enable"),
    path("applications/<uuid:app_id>/delete/", applications.application_delete, name="application_delete"),
    # Deployments
    path("deployments/", deployments.deployment_list, name="deployments"),
    path("deployments/<uuid:deployment_id>/", deployments.deployment_detail, name="deployment"),
    path("deployments/<uuid:deployment_id>/cancel/", deployments.deployment_cancel, name="deployment_cancel"),
    path(
        "deployments/<uuid:deployment_id>/stages/<path:stage_id>/approve/",
        deployments.stage_approve,
        name="stage_approve",
    ),
    path(
        "deployments/<uuid:deployment_id>/stages/<path:stage_id>/skip/",
        deployments.stage_skip,
        name="stage_skip",
    ),
    path(
        "deployments/<uuid:deployment_id>/stages/<path:stage_id>/logs/",
        deployments.stage_logs,
        name="stage_logs",
    ),
    # Settings
    path("settings/", settings_views.project_settings, name="settings_project"),
    path("settings/webhook/rotate/", settings_views.webhook_secret_rotate, name="settings_webhook_rotate"),
    path("settings/pipeds/", settings_views.piped_list, name="settings_pipeds"),
    path("settings/pipeds/add/", settings_views.piped_add, name="settings_piped_add"),
    path("settings/pipeds/<uuid:piped_id>/", settings_views.piped_detail, name="settings_piped"),
    path(
        "settings/pipeds/<uuid:piped_id>/keys/add/",
        settings_views.piped_key_add,
        name="settings_piped_key_add",
    ),
    path(
        "settings/pipeds/<uuid:piped_id>/keys/<int:key_id>/delete/",
        settings_views.piped_key_delete,
        name="settings_piped_key_delete",
    ),
    path(
        "settings/pipeds/<uuid:piped_id>/disable/",
        settings_views.piped_disable,
        name="settings_piped_disable",
    ),
    path(
        "settings/pipeds/<uuid:piped_id>/enable/", settings_views.piped_enable, name="settings_piped_enable"
    ),
    path("settings/user-groups/", settings_views.user_groups, name="settings_user_groups"),
    path(
        "settings/user-groups/<int:group_id>/delete/",
        settings_views.user_group_delete,
        name="settings_user_group_delete",
    ),
    path("settings/api-keys/", settings_views.api_keys, name="settings_api_keys"),
    path(
        "settings/api-keys/<str:key_id>/disable/",
        settings_views.api_key_disable,
        name="settings_api_key_disable",
    ),
    path(
        "settings/api-keys/<str:key_id>/enable/",
        settings_views.api_key_enable,
        name="settings_api_key_enable",
    ),
    path(
        "settings/api-keys/<str:key_id>/delete/",
        settings_views.api_key_delete,
        name="settings_api_key_delete",
    ),
    path("settings/static-admin/", settings_views.static_admin, name="settings_static_admin"),
    path(
        "settings/static-admin/disable/",
        settings_views.static_admin_disable,
        name="settings_static_admin_disable",
    ),
    path(
        "settings/static-admin/enable/",
        settings_views.static_admin_enable,
        name="settings_static_admin_enable",
    ),
    path("settings/audit/", settings_views.audit_log, name="settings_audit"),
    path("settings/sessions/", settings_views.sessions, name="settings_sessions"),
    path("settings/sessions/end/", settings_views.sessions_end, name="settings_sessions_end"),
]
