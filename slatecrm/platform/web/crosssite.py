"""Refuse changes that another site's page asks a browser to make (CSRF).

A plain HTML form on any web page can POST to this server (forms are "simple requests",
which browsers send cross-site without asking), and the browser of someone who can reach
it would obey. Browsers say where a request comes from: `Sec-Fetch-Site` (all current
browsers) and `Origin`. A change is refused when either says another site; requests
without them (scripts, curl, the CLI, older browsers' same-origin navigation) pass.
An Origin is this site only with the same scheme too: `https://host:port` is another origin
than `http://host:port` (the scheme is the request's own, or what a trusted proxy says,
web/proxies.py). This guard is the first line; the CSRF token (web/csrf.py) is the second,
for the browsers and paths that send neither header.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: `Sec-Fetch-Site` values of requests this site's own pages (or the user) started.
OWN = frozenset({"same-origin", "none"})


def cross_site(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in OWN
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null":
        return True
    parts = urlsplit(origin)
    return parts.scheme != scope.get("scheme", "http") or parts.netloc != headers.get("host", "")


class CrossSiteGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and cross_site(scope):
            body = json.dumps({"type": "about:blank", "title": "Forbidden", "status": 403,
                               "detail": "a change requested by another site's page was refused"}).encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"application/problem+json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
