"""A limit on request bodies, enforced while they stream in (pure ASGI middleware)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slatecrm.digits import BYTES_MAX, parse_digits

DEFAULT_LIMIT = 1024 * 1024


class BodyTooLarge(Exception):
    pass


#: What a multipart body (a form with files, an upload) may hold besides its files.
MULTIPART_OVERHEAD = 1024 * 1024


class BodySizeLimit:
    """`limit` for every body; a multipart/form-data one (an upload, a form with files) may be
    up to `multipart_limit` (the largest upload and MULTIPART_OVERHEAD: web/app.py)."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_LIMIT, multipart_limit: int | None = None):
        self.app = app
        self.limit = limit
        self.multipart_limit = max(limit, multipart_limit or limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.limit
        if headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            limit = self.multipart_limit
        declared = headers.get(b"content-length")
        if declared is not None and (parse_digits(declared, BYTES_MAX) or 0) > limit:
            await self._refuse(send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"type": "about:blank", "title": "Request too large", "status": 413,
                           "detail": f"the request body is larger than {limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
