"""The signature of a webhook: made for the ones SlateCRM sends, checked for the ones it receives.

Scheme v1 (docs/workflows.md, "Webhook signatures"): with the shared secret,

    X-SlateCRM-Timestamp: <unix seconds when the request was signed>
    X-SlateCRM-Signature: v1=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>
    Idempotency-Key: <key>            (the same on every retry of one event's delivery)
    X-SlateCRM-Event: <workflow name>

The timestamp is inside the signed text, so a captured request cannot be sent again later
with a fresh timestamp; a receiver refuses a timestamp outside its tolerance (five minutes)
either way. Within the tolerance a replay is the receiver's to catch: it keeps the
idempotency keys (with their timestamps) it has seen for the tolerance window.

A signature header may hold several `v1=` values separated by commas (a sender changing its
secret signs with both); one that matches is enough.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["EVENT_HEADER", "IDEMPOTENCY_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "SignatureRefused",
           "sign", "signature_headers", "verify"]

TIMESTAMP_HEADER = "X-SlateCRM-Timestamp"
SIGNATURE_HEADER = "X-SlateCRM-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-SlateCRM-Event"
VERSION = "v1"
DEFAULT_TOLERANCE = 300


class SignatureRefused(Exception):
    """A request whose signature does not hold. `reason` says why, for the log and the
    response; `kind` is one of "missing", "malformed", "mismatch", "expired"."""

    def __init__(self, reason: str, kind: str = "mismatch") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` with `secret` (without the `v1=`)."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_headers(secret: bytes, body: bytes, idempotency_key: str, event: str,
                      now: int) -> dict[str, str]:
    """The four headers of a request carrying `body`, signed at `now` (unix seconds)."""
    for name, value in (("idempotency key", idempotency_key), ("event", event)):
        if not value or any(c in value for c in "\r\n\0"):
            raise ValueError(f"{value!r} cannot be sent as the {name} (empty, or a line break)")
    timestamp = int(now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"{VERSION}={sign(secret, timestamp, body)}",
        IDEMPOTENCY_HEADER: idempotency_key,
        EVENT_HEADER: event,
    }


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, *, now: int,
           tolerance_seconds: int = DEFAULT_TOLERANCE) -> None:
    """Returns when `body` with `headers` (any case of their names) is signed with `secret` at
    a time within `tolerance_seconds` of `now`; raises SignatureRefused otherwise."""
    by_name = {name.lower(): value for name, value in headers.items()}
    timestamp_text = by_name.get(TIMESTAMP_HEADER.lower())
    signature_text = by_name.get(SIGNATURE_HEADER.lower())
    if timestamp_text is None:
        raise SignatureRefused(f"the {TIMESTAMP_HEADER} header is missing", "missing")
    if signature_text is None:
        raise SignatureRefused(f"the {SIGNATURE_HEADER} header is missing", "missing")
    timestamp_text = timestamp_text.strip()
    if not (timestamp_text.isascii() and timestamp_text.isdigit()) or len(timestamp_text) > 12:
        raise SignatureRefused(f"the {TIMESTAMP_HEADER} header is not unix seconds: {timestamp_text[:40]!r}",
                               "malformed")
    timestamp = int(timestamp_text)
    offered = []
    for part in signature_text.split(","):
        version, equals, digest = part.strip().partition("=")
        if not equals:
            raise SignatureRefused(f"the {SIGNATURE_HEADER} header is not `v1=<hex>`: "
                                   f"{signature_text[:80]!r}", "malformed")
        if version == VERSION:
            offered.append(digest.strip())
    if not offered:
        raise SignatureRefused(f"the {SIGNATURE_HEADER} header has no {VERSION}= signature", "malformed")
    expected = sign(secret, timestamp, body)
    # every offered value is compared (in constant time), whatever the first one gave
    matched = [hmac.compare_digest(expected.encode(), digest.lower().encode("ascii", "replace"))
               for digest in offered]
    if not any(matched):
        raise SignatureRefused("the signature does not match the body (a wrong secret, or a body "
                               "changed on the way)", "mismatch")
    # after the signature, so that what is said about the time is said of a request the secret signed
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureRefused(f"the request was signed at {timestamp}, {abs(now - timestamp)} s from now "
                               f"({now}); more than the {tolerance_seconds} s allowed (a replay, or a "
                               "clock that is off)", "expired")
