"""`JSONResponse` with the one encoder (slatecrm/platform/jsontext.py): every JSON answer
of the app, API and JSON twins alike, writes moments the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette import responses

from ..jsontext import encode


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return encode(content)


class EncodedJSON(responses.Response):
    """A JSON answer whose body was encoded already, in the worker thread that read the
    records (web/api.py): a page's JSON is not built on the event loop's thread, where it
    would hold up every other request."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None):
        super().__init__(body, status_code, headers)
