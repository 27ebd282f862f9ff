"""Errors on UI pages as HTML pages (with the navigation), the API's as problem+json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ..records.errors import RecordError, ValidationFailed
from .templating import render, wants_json
from .uicontext import base_context

Handler = Callable[[Request, Exception], Awaitable[Response]]


def ui_or_problem(problem: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        response = await problem(request, exc)
        if request.url.path.startswith("/api/") or wants_json(request):
            return response
        status = response.status_code
        detail = str(getattr(exc, "detail", "") or exc) if status < 500 or status == 503 else \
            "the server failed on this request; nothing was changed"
        errors = exc.errors if isinstance(exc, ValidationFailed) else {}
        try:
            context = await base_context(request, title=f"Error {status}")
        except Exception:  # the metamodel itself is unreadable: still answer with a page
            context = {"nav": [], "current_entity": None, "page_title": f"Error {status}", "search_text": ""}
        kind = "record" if isinstance(exc, RecordError) else "http"
        kept = {k: v for k, v in response.headers.items() if k == "allow"}  # a 405's Allow
        return render(request, "error", {**context, "status": status, "detail": detail, "errors": errors,
                                         "kind": kind}, twin=None, status=status, headers=kept)
    return handle
