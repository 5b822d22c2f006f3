"""Request helpers shared by the portal, the public API and the piped API."""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The caller's address.

    X-Forwarded-For is believed only when PIPEPORTAL_TRUST_X_FORWARDED_FOR is on (behind an ALB), and then
    only its last entry: the load balancer appends the address it saw to whatever the client sent, so the
    first entries are the client's to choose — believing them would let anyone walk around the login
    throttle by sending a new address with every attempt.
    """
    if settings.PIPEPORTAL_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.split(",")[-1].strip()
        if last:
            return last[:45]
    return (request.META.get("REMOTE_ADDR") or "")[:45]
