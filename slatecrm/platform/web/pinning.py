"""Each HTTP request gets its own pinned records service (records/scope.py): one metamodel
revision and one read connection for the whole request, released when the response is
done (after the last chunk of a streamed CSV export). A handler may release it sooner, in
the worker thread that used it (web/api.py `answer`): then there is nothing left to close
here and no trip to the thread pool."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..identity.principal import ANONYMOUS
from ..records.service import RecordsService

STATE_KEY = "records"
#: Where authentication leaves the request's `Principal` in the ASGI scope.
PRINCIPAL_KEY = "slatecrm.principal"
#: Where authentication leaves the read connection it opened (None: it opened none), which
#: the pinned service reads on and closes.
CONNECTION_KEY = "slatecrm.connection"


class PinnedRecords:
    """Pure ASGI middleware: `request.state.records` is the request's pinned service."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shared: RecordsService = scope["app"].state.records
        # Authentication (web/authentication.py) puts the request's principal in the scope;
        # without it (an app assembled without that middleware) the request is nobody's.
        pinned = shared.pinned(scope.get(PRINCIPAL_KEY, ANONYMOUS), scope.pop(CONNECTION_KEY, None))
        scope.setdefault("state", {})[STATE_KEY] = pinned
        try:
            await self.app(scope, receive, send)
        finally:
            if pinned.scope is not None and pinned.scope.opened:
                await run_in_threadpool(pinned.close)
            else:
                pinned.close()


def records_of(request: Request) -> RecordsService:
    """The request's pinned records service (the shared one outside the middleware)."""
    pinned = request.scope.get("state", {}).get(STATE_KEY)
    if isinstance(pinned, RecordsService):
        return pinned
    shared: RecordsService = request.app.state.records
    return shared
