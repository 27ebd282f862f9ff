"""Refuse a query string that is not UTF-8 text, before anything reads it (ASGI middleware).

A server hands the query string over as the bytes the client sent. Percent-encoded bytes
that are not UTF-8 (`%ED%A0%80`) are decoded with replacement characters and harm no one;
raw ones (the bytes ED A0 80, unencoded) made Starlette's `request.url` raise
UnicodeDecodeError wherever it was read (an error page, a next-page link): a 500. No
browser or HTTP client sends them, so they are refused with a 400 saying so.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send


class QueryText:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                scope.get("query_string", b"").decode("utf-8")
            except UnicodeDecodeError as error:
                await _refuse(send, f"the query string is not UTF-8 text (byte {error.start}); "
                                    "percent-encode it as UTF-8")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "title": "Bad request", "status": 400, "detail": detail,
                       "errors": {"": [detail]}}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
