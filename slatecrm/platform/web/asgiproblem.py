"""A problem+json answer sent straight from ASGI middleware, before any route or exception
handler runs (a refused host, a missing login, a failed CSRF check)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.types import Send

TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 429: "Too many requests"}


async def send_problem(send: Send, status: int, detail: str,
                       headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
                       "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def send_redirect(send: Send, location: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """303 See Other to a local `location` (already validated and encoded)."""
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                            *headers]})
    await send({"type": "http.response.body", "body": b""})
