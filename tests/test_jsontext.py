"""The one JSON encoder (platform/jsontext.py) writes what every response promised before
it was orjson: moments in UTC with a Z, days as dates, compact UTF-8, any integer."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest

from slatecrm.platform.jsontext import encode

PARIS = dt.timezone(dt.timedelta(hours=2))


@pytest.mark.parametrize(("content", "written"), [
    (dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC), '"2026-03-01T10:30:00Z"'),
    (dt.datetime(2026, 3, 1, 12, 30, tzinfo=PARIS), '"2026-03-01T10:30:00Z"'),  # not "+02:00"
    (dt.datetime(2026, 3, 1, 10, 30, 0, 120), '"2026-03-01T10:30:00.000120Z"'),  # naive: stored UTC
    (dt.date(2026, 3, 1), '"2026-03-01"'),
    ({"name": "Zoë — 東京", "n": 1}, '{"name":"Zoë — 東京","n":1}'),
    ({1: "a"}, '{"1":"a"}'),
    (10 ** 30, str(10 ** 30)),  # beyond orjson's 64 bits: the standard encoder writes it
    ([True, None, 1.5], "[true,null,1.5]"),
    ([float("nan"), float("inf")], "[null,null]"),  # JSON has neither: null, never a 500
])
def test_written_as_before(content: Any, written: str) -> None:
    assert encode(content).decode() == written
    assert json.loads(encode(content)) == json.loads(written)


@dataclass
class Point:
    x: int


@pytest.mark.parametrize("content", [Point(1), {1, 2}, object()])
def test_what_json_cannot_hold_is_refused(content: Any) -> None:
    with pytest.raises(TypeError):
        encode({"value": content})
