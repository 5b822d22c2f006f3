"""What every portal view shares: the login check, domain errors as real HTTP answers, small helpers."""

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.core.errors import DomainError
from apps.projects.models import Project
from apps.projects.principal import Principal
from apps.projects.services import get_project

ERROR_TITLES = {
    400: "Bad request",
    401: "Log in required",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    429: "Too many attempts",
}

# Pages that show a secret once must not be kept by the browser or a proxy.
NO_STORE = "no-store"


def portal_view(view: Callable) -> Callable:
    """Require a portal session; pass the Principal; turn DomainErrors into error pages.

    Anonymous callers go to the login page (htmx requests get 401 with HX-Redirect, so a fragment
    never swaps the login form into the middle of a page).
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        principal: Principal | None = getattr(request, "principal", None)
        if principal is None:
            login_url = reverse("accounts:login")
            if getattr(request, "htmx", False):
                response = HttpResponse("Log in required.", status=401, content_type="text/plain")
                next_url = request.htmx.current_url_abs_path or "/"
                response["HX-Redirect"] = f"{login_url}?{urlencode({'next': next_url})}"
                return response
            return redirect_to_login(request.get_full_path(), login_url)
        try:
            return view(request, principal, *args, **kwargs)
        except DomainError as exc:
            return error_response(request, exc)

    return wrapper


def error_response(request: HttpRequest, exc: DomainError) -> HttpResponse:
    status = exc.status_code
    context = {"status": status, "title": ERROR_TITLES.get(status, "Error"), "message": exc.message}
    template = "webui/_error_fragment.html" if getattr(request, "htmx", False) else "webui/error.html"
    return render(request, template, context, status=status)


def current_project(principal: Principal) -> Project:
    return get_project(principal.project_id)


def render_page(
    request: HttpRequest, template: str, context: dict, *, status: int = 200, no_store: bool = False
) -> HttpResponse:
    response = render(request, template, context, status=status)
    if no_store:
        response["Cache-Control"] = NO_STORE
    return response


def form_status(form) -> int:
    """400 for a form that did not validate, else 200."""
    return 400 if form.is_bound and form.errors else 200
