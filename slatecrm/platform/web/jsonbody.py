"""Reading a JSON request body strictly: one parser for the API and the admin API.

`json.loads` alone accepts more than JSON and fails on some of what it is given in ways a
request must not reach: it reads `NaN` and `1e400` (not JSON numbers; infinity), keeps
the last of two equal keys (the other value silently lost), lets encoded surrogates
(`"\\ud800"`, or the bytes ED A0 80, which it decodes with `surrogatepass`) through as
text that no database or UTF-8 encoder takes, raises ValueError on an integer of over
4,300 digits and RecursionError on deep nesting. Each is refused here with a 400 naming
the limit or the place (`name`, `[2].name`, `annual_revenue.amount`), before any handler
sees the body (docs/api.md, "Request bodies").
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..records.errors import BadQuery
from ..records.limits import DEFAULT, Limits

#: The media types a body may be sent as (merge-patch: what a PATCH is).
JSON_TYPES = ("application/json", "application/merge-patch+json")

_SURROGATE = re.compile("[\ud800-\udfff]")
#: Whole numbers written with a fraction or exponent (2.0, 1e3) up to this size are read as
#: the integers they are: JSON has one kind of number, and JSON Schema calls 2.0 an integer.
_INTEGRAL_MAX = 2**63


def _too_deep(limits: Limits) -> str:
    return (f"the body nests arrays and objects more than {limits.json_depth_max} levels deep "
            "(the limit)")


class _Refused(Exception):
    """Raised from json's hooks: the body as a whole is refused with this message."""


def require_json(request: Request) -> None:
    """415 unless the request says its body is JSON: a body without a Content-Type is not
    guessed at (docs/decisions.md, "Never a 5xx for bad input")."""
    declared = request.headers.get("content-type", "")
    kind = declared.split(";")[0].strip().lower()
    if kind not in JSON_TYPES:
        sent = f"not {kind}" if kind else "the request has no Content-Type"
        raise HTTPException(415, f"send the body as JSON with Content-Type: application/json ({sent})")


def parse(raw: bytes, limits: Limits = DEFAULT) -> Any:
    """The JSON value `raw` holds (None for an empty body), or BadQuery saying what is wrong;
    `limits`: the app's depth and number-length bounds (records/limits.py)."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8", "surrogatepass")  # encoded surrogates: refused below, by place
    except UnicodeDecodeError as error:
        raise BadQuery({"": [f"the body is not UTF-8 text (byte {error.start})"]}) from None
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_int=lambda t: _integer(t, limits),
                          parse_float=lambda t: _float(t, limits), parse_constant=_constant)
    except _Refused as error:
        raise BadQuery({"": [str(error)]}) from None
    except RecursionError:
        raise BadQuery({"": [_too_deep(limits)]}) from None
    except json.JSONDecodeError as error:
        raise BadQuery({"": [f"the body is not valid JSON: {error}"]}) from None
    _check_values(data, limits)
    return data


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {key!r} appears twice in one object; give each key once")
        out[key] = value
    return out


def _number_text(text: str, limits: Limits) -> None:
    if len(text) > limits.json_number_length_max:
        raise _Refused(f"a number in the body is {len(text)} characters long; at most "
                       f"{limits.json_number_length_max} are read")


def _integer(text: str, limits: Limits) -> int:
    _number_text(text, limits)
    return int(text)


def _float(text: str, limits: Limits) -> float | int:
    _number_text(text, limits)
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text} is beyond the range of a number")
    if value.is_integer() and abs(value) <= _INTEGRAL_MAX:
        return int(value)
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _check_values(data: Any, limits: Limits) -> None:
    """Depth and unpaired surrogates, walked without recursion; a surrogate is reported at
    its place in the body, as a field's error is."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, place, depth = stack.pop()
        if isinstance(value, dict | list) and depth > limits.json_depth_max:
            raise BadQuery({"": [_too_deep(limits)]})
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    raise BadQuery({place: [f"the key {key!r} {_surrogate(key)}"]})
                stack.append((item, f"{place}.{key}" if place else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{place}[{i}]", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise BadQuery({place: [_surrogate(value)]})


def _surrogate(text: str) -> str:
    found = _SURROGATE.search(text)
    code = ord(found.group()) if found else 0
    return (f"contains an unpaired surrogate (U+{code:04X}), which is not a character; "
            "send text as UTF-8")
