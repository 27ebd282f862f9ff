"""Jinja2 (autoescape on) and the one way every page answers: HTML, or its JSON twin.

Templates are resolved by name, most specific first (`record-<entity>.html` before
`record.html`), so a pack or an organisation can override one page of one entity
without touching the others. The JSON twin of a page is the same data the template got,
asked for with a `.json` suffix or `Accept: application/json`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .jsonresponse import JSONResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: Paths whose `.json` suffix is theirs, not a request for a page's twin.
OWN_SUFFIX_PREFIXES = ("/api/", "/static/")

#: A folder of templates searched before the built-in ones (a deployment's overrides).
TEMPLATES_VARIABLE = "SLATECRM_TEMPLATES"


def make_environment(folders: Sequence[str | Path]) -> jinja2.Environment:
    """Templates searched in `folders`, in order: the app gives the deployment's override
    folder, then the field types' widget folders, then the plugins' folders and the built-in
    one (hook slatecrm_template_dirs), so a file named `record-<entity>.html` in an earlier
    folder changes that entity's record page only."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in folders if str(p)]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def environment_of(request: Request) -> jinja2.Environment:
    chosen: jinja2.Environment = request.app.state.templates
    return chosen


def candidates(page: str, entity: str | None = None) -> list[str]:
    names = [f"{page}-{entity}.html"] if entity else []
    return [*names, f"{page}.html"]


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def render(request: Request, page: str, context: Mapping[str, Any], *, twin: Any, entity: str | None = None,
           status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """The page as HTML, or `twin` (JSON-able data) when JSON was asked for."""
    if wants_json(request):
        return JSONResponse(twin, status_code=status, headers=dict(headers or {}))
    template = environment_of(request).select_template(candidates(page, entity))
    html = template.render(request=request, **context)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def render_fragment(request: Request, name: str, context: Mapping[str, Any]) -> str:
    return environment_of(request).get_template(name).render(**context)


class JsonSuffix:
    """`/e/thing/12.json` is `/e/thing/12` asked for as JSON: strip the suffix, set Accept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.endswith(".json") and not path.startswith(OWN_SUFFIX_PREFIXES):
            stripped = path[: -len(".json")].rstrip("/") or "/"  # `/.json` is the home page's twin
            headers: Sequence[tuple[bytes, bytes]] = [
                (k, v) for k, v in scope.get("headers", []) if k.lower() != b"accept"]
            scope = {**scope, "path": stripped, "raw_path": stripped.encode(),
                     "headers": [*headers, (b"accept", b"application/json")]}
        await self.app(scope, receive, send)
