"""Posting a workflow's webhook (httpx), signed with its secret (signing.py).

One call is one attempt: the job engine retries a retryable failure later, with the same
idempotency key (and a new timestamp and signature: each attempt is signed when it is sent).

- success: a 2xx answer;
- retryable (DeliveryFailed.retryable): a 5xx, 429 (Too Many Requests) or 408 (Request
  Timeout) answer (with the Retry-After it gave, in seconds, when it gave one), no
  connection, a timeout;
- permanent: any other answer (4xx; and 3xx: redirects are not followed, a webhook's URL is
  where it is posted), a URL that is not http:// or https://.

`timeout` bounds each step (connecting, sending, waiting for the answer) and the reading of
the answer's body, of which at most the first 2,000 characters are kept (for the run log).
"""

from __future__ import annotations

import datetime as dt
import decimal
import email.utils
import functools
import json
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import certifi  # httpx's own CA bundle (a dependency of httpx), as httpx uses by default
import httpx
import orjson

from slatecrm import __version__
from slatecrm.platform.jsontext import moment

from .errors import DeliveryFailed
from .signing import EVENT_HEADER, IDEMPOTENCY_HEADER, TIMESTAMP_HEADER, signature_headers

__all__ = ["BODY_KEPT", "DeliveryFailed", "WebhookResult", "json_body", "post_webhook"]

#: How much of an answer's body is kept, in characters.
BODY_KEPT = 2_000
#: How much of it is read, in bytes (a multi-byte character takes up to 4).
_BODY_READ = BODY_KEPT * 4
USER_AGENT = f"SlateCRM-Webhooks/{__version__}"


@dataclass(frozen=True)
class WebhookResult:
    """A delivered webhook: the receiver's status, the time the attempt took, and the start of
    what it answered."""

    status_code: int
    elapsed_ms: float
    body: str


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return moment(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)  # as written: 10.50 stays 10.50, no float on the way
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def json_body(payload: Any) -> bytes:
    """`payload` as compact UTF-8 JSON with sorted keys: one payload is always the same bytes
    (and so the same signature). Datetimes are RFC 3339 in UTC (`2026-03-01T10:30:00Z`),
    dates `YYYY-MM-DD`, Decimals their digits as a string (`"10.50"`)."""
    try:
        return orjson.dumps(payload, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        # what orjson refuses but JSON can say (an integer beyond 64 bits); a value JSON cannot
        # hold raises TypeError here as well
        return json.dumps(payload, default=_default, sort_keys=True, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every call (making one reads the CA bundle)."""
    return ssl.create_default_context(cafile=certifi.where())


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def post_webhook(url: str, body: bytes, *, secret: bytes | None, idempotency_key: str, event: str,
                 timeout: float, now: Callable[[], float] = time.time) -> WebhookResult:
    """POSTs `body` (JSON) to `url`, signed with `secret` when there is one, as one attempt of
    the delivery of idempotency key `idempotency_key` for workflow `event`. Returns the
    result of a 2xx answer; raises DeliveryFailed otherwise (see the module)."""
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise DeliveryFailed(f"{url!r} is not a URL: {error}", retryable=False) from error
    if target.scheme not in ("http", "https") or not target.host:
        raise DeliveryFailed(f"{url!r} is not an http:// or https:// URL", retryable=False)
    if not (math.isfinite(timeout) and timeout > 0):
        raise DeliveryFailed(f"the timeout must be a number of seconds above 0, not {timeout!r}",
                             retryable=False)
    try:
        if secret is not None:
            headers = signature_headers(secret, body, idempotency_key, event, int(now()))
        else:  # unsigned: the same headers but the signature
            headers = {
                name: value for name, value in signature_headers(b"", body, idempotency_key, event,
                                                                 int(now())).items()
                if name in (TIMESTAMP_HEADER, IDEMPOTENCY_HEADER, EVENT_HEADER)}
    except ValueError as error:
        raise DeliveryFailed(str(error), retryable=False) from error
    headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}

    started = time.perf_counter()
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, verify=_tls()) as client, \
                client.stream("POST", target, content=body, headers=headers) as response:
            read = bytearray()
            for chunk in response.iter_bytes():
                read += chunk
                if len(read) >= _BODY_READ:
                    break
                if time.perf_counter() - started > timeout:  # a body that trickles in
                    raise httpx.ReadTimeout("the answer's body took longer than the timeout")
    except httpx.TimeoutException as error:
        raise DeliveryFailed(f"{_where(target)} did not answer within {timeout:g} s "
                             f"({type(error).__name__})", retryable=True) from error
    except httpx.TransportError as error:  # no connection, TLS, a protocol error
        raise DeliveryFailed(f"cannot post to {_where(target)}: {type(error).__name__}: {error}",
                             retryable=True) from error
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    try:
        text = bytes(read).decode(response.charset_encoding or "utf-8", errors="replace")[:BODY_KEPT]
    except LookupError:  # a charset Python does not know
        text = bytes(read).decode("utf-8", errors="replace")[:BODY_KEPT]
    status = response.status_code
    if 200 <= status <= 299:
        return WebhookResult(status_code=status, elapsed_ms=elapsed_ms, body=text)
    said = f"{_where(target)} answered {status} {response.reason_phrase}".rstrip()
    excerpt = f": {text[:200]}" if text.strip() else ""
    if status >= 500 or status in (408, 429):
        raise DeliveryFailed(f"{said}{excerpt}", retryable=True, status=status,
                             retry_after=_retry_after(response))
    if 300 <= status <= 399:
        location = response.headers.get("location")
        to = f" to {location}" if location else ""
        raise DeliveryFailed(f"{said} (a redirect{to}, which webhooks do not follow: give the URL it "
                             "points to)", retryable=False, status=status)
    raise DeliveryFailed(f"{said}{excerpt}", retryable=False, status=status)


def _where(url: httpx.URL) -> str:
    """The URL without its query (which may hold a token) for messages."""
    return str(url.copy_with(query=None, fragment=None))
