"""Login, logout, My account, and the SSO routes that must answer before allauth's own."""

from django.urls import path, re_path

from . import sso, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.choose_project, name="login"),
    path("login/<str:project_id>/", views.project_login, name="project_login"),
    path("login/<str:project_id>/sso/<str:config_name>/", views.sso_login, name="sso_login"),
    path("logout/", views.logout, name="logout"),
    path("account/", views.my_account, name="my_account"),
    # Callbacks with our adapters (redirectUri, GitHub Enterprise, teams) in place of allauth's.
    re_path(
        r"^accounts/oidc/(?P<provider_id>[^/]+)/login/callback/$", views.oidc_callback, name="oidc_callback"
    ),
    path("accounts/github/login/callback/", views.github_callback, name="github_callback"),
    # A login starts from the project's page; allauth's provider login pages would lose the project.
    re_path(r"^accounts/oidc/(?P<provider_id>[^/]+)/login/$", views.provider_login_elsewhere),
    re_path(r"^accounts/saml/(?P<organization_slug>[^/]+)/login/$", views.provider_login_elsewhere),
    path("accounts/github/login/", views.provider_login_elsewhere),
    # The path of any other redirectUri configured in the control-plane config or the environment (PipeCD's
    # /auth/callback is in pipeportal/urls.py): a team moving over keeps the URI registered at its provider.
    *[
        path(redirect_path.lstrip("/"), views.oidc_callback)
        for redirect_path in sorted(sso.oidc_redirect_paths() - {"/auth/callback"})
        if redirect_path.strip("/")
    ],
]
