"""The one JSON form of every response (API and the UI's JSON twins).

Moments are written one way everywhere: RFC 3339 in UTC with a `Z`
(`2026-03-01T10:30:00Z`, microseconds when there are any), the form the `datetime`
field type gives; days as `YYYY-MM-DD`. Handlers pass datetimes as they are and the
encoder writes them; no handler formats a moment by hand.

The encoder is orjson: a page of 50 records was 12% of a loaded server's time in the
standard library's encoder (bench/findings.md), about ten times what orjson takes.
It is told to hand datetimes, dates and dataclasses to `default`, so moments keep the
one form above (orjson would write a non-UTC offset as given) and the output is what
`json.dumps` wrote before (compact, UTF-8), but for NaN and Infinity, which JSON cannot
hold: orjson writes them as null where `json.dumps(allow_nan=False)` raised (a 500).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS


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


def encode(content: Any) -> bytes:
    """`content` as compact UTF-8 JSON. What orjson refuses (integers beyond 64 bits) is
    written by the standard library's encoder, as before; a type JSON cannot hold raises
    TypeError either way."""
    try:
        return orjson.dumps(content, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=default).encode("utf-8")


def dumps(content: Any) -> str:
    return encode(content).decode("utf-8")
