"""Webhook receivers: the signed JSON body, PipeCD's static header, one POST.

Piped side: imports no Django models. Headers of every delivery:
- `Content-Type: application/json`;
- `X-PipePortal-Event: <type>`, `X-PipePortal-Delivery: <event id>` (the same for every retry);
- `X-PipePortal-Signature: sha256=<hex HMAC-SHA256 of the raw body>` with the receiver's `signingSecret`
  (the body carries its own `timestamp`: receivers refuse bodies older than 5 minutes);
- `<signatureKey>: <signatureValue>` as PipeCD sends it (default key `PipeCD-Signature`), when set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from .delivery import Attempt, post
from .events import Event

SIGNATURE_HEADER = "X-PipePortal-Signature"
EVENT_HEADER = "X-PipePortal-Event"
DELIVERY_HEADER = "X-PipePortal-Delivery"


def signature(secret: str | bytes, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def encode(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode()


def request_for(receiver, event: Event, *, now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    """The raw body and headers for one attempt (signed now, so a retry is fresh for the receiver)."""
    stamp = int((now or datetime.now(UTC)).timestamp())
    raw = encode(event.body(stamp))
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: event.type,
        DELIVERY_HEADER: event.id,
    }
    secret = receiver.load_signing_secret()
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, raw)
    value = receiver.load_signature_value()
    if value:
        headers[receiver.signature_key or "PipeCD-Signature"] = value
    return raw, headers


def send(receiver, event: Event, *, timeout: float) -> Attempt:
    try:
        raw, headers = request_for(receiver, event)
    except OSError as exc:  # signatureValueFile / signingSecretFile unreadable: retrying will not help
        return Attempt("FAILED", error=str(exc))
    return post(receiver.url, raw, headers, timeout)
