"""Puts the caller's Principal (or None) on every portal request as `request.principal`."""

from .services import principal_from_session


class PortalIdentityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.principal = principal_from_session(request) if hasattr(request, "session") else None
        return self.get_response(request)
