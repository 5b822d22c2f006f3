"""Random keys and their keyed hashes: piped keys and API keys are stored only as HMAC-SHA256 digests."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def key_hash_secret() -> str:
    """The secret keys are hashed with; callers that create keys ask first, so they fail before any write."""
    secret = settings.PIPEPORTAL_KEY_HASH_SECRET
    if not secret:
        raise ImproperlyConfigured(
            "PIPEPORTAL_KEY_HASH_SECRET is required outside debug: piped keys and API keys are stored as "
            "hashes keyed with it. Set PIPEPORTAL_KEY_HASH_SECRET (or PIPEPORTAL_KEY_HASH_SECRET_FILE) to "
            "the control plane's value, or keys made here will not authenticate."
        )
    return secret


def hash_key(key: str) -> str:
    """A fast keyed hash: keys are long random strings, so a slow password hasher would buy nothing."""
    return hmac.new(key_hash_secret().encode(), key.encode(), hashlib.sha256).hexdigest()


def key_matches(key: str, digest: str) -> bool:
    return bool(digest) and hmac.compare_digest(hash_key(key), digest)
