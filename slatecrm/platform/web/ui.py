"""The routes of the generated UI. None names an entity: every page is built from the
live metamodel, at `/e/<entity>/...`, beside the JSON API at `/api/v1`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import (
    board_pages,
    calendar_pages,
    convertors,  # noqa: F401  (registers the `recordid` path convertor)
    list_pages,
    record_pages,
    saved_view_pages,
    uploads,
)
from .templating import STATIC

#: Scripts only from this site (no inline script can run, whatever a record holds);
#: inline styles are allowed for stage and option colours.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
                           "frame-ancestors 'none'")


async def favicon(request: Request) -> Response:
    return Response(status_code=204)


routes = [
    *uploads.ui_routes,
    Route("/", list_pages.home, methods=["GET"]),
    Route("/favicon.ico", favicon, methods=["GET"]),
    Route("/search", list_pages.search, methods=["GET"]),
    Route("/e/{entity}", list_pages.list_view, methods=["GET"]),
    Route("/e/{entity}/export.csv", list_pages.export_csv, methods=["GET"]),
    Route("/e/{entity}/bulk", list_pages.bulk_edit, methods=["POST"]),
    *saved_view_pages.routes,
    Route("/e/{entity}/new", record_pages.new, methods=["GET", "POST"]),
    Route("/e/{entity}/validate", record_pages.validate, methods=["POST"]),
    Route("/e/{entity}/options", record_pages.options, methods=["GET"]),
    Route("/e/{entity}/fields/{field}/options", record_pages.field_options, methods=["GET"]),
    Route("/e/{entity}/board/{pipeline}", board_pages.board, methods=["GET"]),
    Route("/e/{entity}/calendar", calendar_pages.calendar, methods=["GET"]),
    Route("/e/{entity}/{id:recordid}", record_pages.show, methods=["GET"]),
    Route("/e/{entity}/{id:recordid}/preview", record_pages.preview, methods=["GET"]),
    Route("/e/{entity}/{id:recordid}/edit", record_pages.edit, methods=["GET", "POST"]),
    Route("/e/{entity}/{id:recordid}/validate", record_pages.validate, methods=["POST"]),
    Route("/e/{entity}/{id:recordid}/move", record_pages.move, methods=["POST"]),
    Route("/e/{entity}/{id:recordid}/reschedule", calendar_pages.reschedule, methods=["PATCH"]),
    Route("/e/{entity}/{id:recordid}/links/{relation}", record_pages.link, methods=["POST"]),
    Route("/e/{entity}/{id:recordid}/delete", record_pages.delete, methods=["GET", "POST"]),
    Route("/e/{entity}/{id:recordid}/workflows/{name}/run", record_pages.run_workflow, methods=["POST"]),
    Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
]


class SecurityHeaders:
    """CSP and friends on every HTML answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"same-origin"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
