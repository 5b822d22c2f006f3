"""Django's own username/password check — the operators' console login — throttled per client address."""

import logging

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied

from apps.core.http import client_ip

from .services import count_attempt

logger = logging.getLogger(__name__)


class ThrottledModelBackend(ModelBackend):
    """ModelBackend, refusing an address after PIPEPORTAL_LOGIN_MAX_FAILURES failures in the window.

    `/admin/login/` is public wherever the console is enabled; without this, a superuser's password could be
    guessed at the speed of the password hasher. Raising PermissionDenied stops Django from asking the
    other backends, so a throttled attempt is checked by none of them.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None or password is None:
            # A management command or a test calling authenticate() directly; or not a password login.
            return super().authenticate(request, username=username, password=password, **kwargs)
        key = f"console-login-failures:{client_ip(request)}"
        if count_attempt(key) > settings.PIPEPORTAL_LOGIN_MAX_FAILURES:
            logger.warning("console login throttled for %s", client_ip(request))
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            cache.delete(key)
        return user
