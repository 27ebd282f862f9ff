"""The one JSON form of every response (API and the UI's JSON twins).

Moments are written one way everywhere: RFC 3339 in UTC with a `Z`
(`2026-03-01T10:30:00Z`, microseconds when there are any), the form the `datetime`
field type gives; days as `YYYY-MM-DD`. Handlers pass datetimes as they are and the
encoder writes them; no handler formats a moment by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def moment(value: dt.datetime) -> str:
    """A moment as every response writes it (a naive one is taken as UTC, as stored)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return moment(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> str:
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"),
                      default=default)
