"""Request helpers shared by the portal, the public API and the piped API."""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The caller's address.

    X-Forwarded-For is believed only when PIPEPORTAL_TRUST_X_FORWARDED_FOR is on (behind an ALB):
    otherwise a client could pick its own address and walk around the login throttle.
    """
    if settings.PIPEPORTAL_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:45]
    return (request.META.get("REMOTE_ADDR") or "")[:45]
