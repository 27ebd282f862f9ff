"""`JSONResponse` with the one encoder (slatecrm/platform/jsontext.py): every JSON answer
of the app, API and JSON twins alike, writes moments the same way."""

from __future__ import annotations

from typing import Any

from starlette import responses

from ..jsontext import dumps


class JSONResponse(responses.JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
