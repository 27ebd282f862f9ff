"""Errors as application/problem+json (RFC 9457), with the per-field errors of a record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ...metamodel.errors import DefinitionError
from ..records.errors import RecordError, ValidationFailed, VersionConflict
from .jsonresponse import JSONResponse

TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 409: "Conflict",
          413: "Request too large", 415: "Unsupported media type", 422: "Invalid record",
          500: "Internal error", 503: "Service unavailable"}


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


def problem(status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status,
            "detail": detail, **extra}
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


async def record_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RecordError)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationFailed):
        extra["errors"] = exc.errors
    if isinstance(exc, VersionConflict):
        extra.update(current_version=exc.current, changed=exc.changed)
    return problem(exc.status, str(exc), **extra)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals; their headers are kept (a 405's `Allow`: the methods the
    matched route answers, which RFC 9110 requires)."""
    assert isinstance(exc, HTTPException)
    detail = exc.detail or TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and "Allow" in headers:
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
        detail = f"{request.method} is not allowed here; this address answers {headers['Allow']}"
    return problem(exc.status_code, detail, headers=headers)


async def definition_error(request: Request, exc: Exception) -> Response:
    """Definitions that do not validate or merge: every problem, with where it is."""
    assert isinstance(exc, DefinitionError)
    problems = [{"path": p.location.path or p.location.file, "message": p.message} for p in exc.problems]
    return problem(422, "; ".join(f"{p['path']}: {p['message']}" if p["path"] else p["message"]
                                  for p in problems), problems=problems)


async def stale_error(request: Request, exc: Exception) -> Response:
    return problem(409, f"{exc}; nothing was changed")


async def server_error(request: Request, exc: Exception) -> Response:
    return problem(500, "the server failed on this request; nothing was changed")


async def timeout_error(request: Request, exc: Exception) -> Response:
    """A statement stopped by the statement timeout (storage/engine.py): 503 with the
    limit, never a 500; `Retry-After` because the same request may pass when the
    database is less busy."""
    return problem(503, str(exc), headers={"Retry-After": "1"})
