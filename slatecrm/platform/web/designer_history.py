"""The designer's history: `/admin/history` lists the metamodel's revisions newest first
(who, when, what) and `/admin/history/{n}` shows one with the plan that was applied to make
it (its statements and the rows it put at risk), as stored with the revision when it was
applied (storage/apply.py). Who is the user the audit log names for the change (the admin
API, the designer, the roles pages all record one), else the revision's author (a pack
installed from the command line). Holders of manage_metamodel only.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from ..storage import revisions
from ..storage.system import audit
from .admin import MANAGE_METAMODEL
from .rights import checked_right
from .roles_pages import not_found
from .templating import render
from .uicontext import base_context

PAGE_SIZE = 50


def _who(conn: sa.Connection, numbers: list[int]) -> dict[int, str]:
    """The user the audit log names for each revision's change, by revision."""
    if not numbers:
        return {}
    rows = conn.execute(sa.select(audit.c.object_id, audit.c.user_name)
                        .where(audit.c.action == "metamodel.change", audit.c.object_kind == "revision",
                               audit.c.object_id.in_([str(n) for n in numbers])))
    return {int(r.object_id): r.user_name for r in rows if r.user_name}


def _shown(entry: revisions.Entry, who: dict[int, str]) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "who": who.get(entry.id, entry.author), "author": entry.author, "source": entry.source,
            "summary": entry.summary}


async def history_page(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    before_text = request.query_params.get("before", "")
    before = parse_digits(before_text, RECORD_ID_MAX) if before_text else None

    def read() -> list[dict[str, Any]]:
        with request.app.state.engine.connect() as conn:
            found = revisions.entries(conn, before=before, limit=PAGE_SIZE + 1)
            who = _who(conn, [e.id for e in found])
        return [_shown(e, who) for e in found]

    rows = await run_in_threadpool(read)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = await base_context(request, title="Metamodel history")
    return render(request, "designer_history", {**context, "revisions": rows, "more": more},
                  twin={"data": rows, "more": more})


async def revision_page(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    number = request.path_params["number"]

    def read() -> tuple[dict[str, Any], dict[str, Any]] | None:
        with request.app.state.engine.connect() as conn:
            found = revisions.applied_plan(conn, number)
            if found is None:
                return None
            return _shown(found[0], _who(conn, [number])), found[1]

    found = await run_in_threadpool(read)
    if found is None:
        return await not_found(request, f"there is no revision {number}")
    entry, plan = found
    context = await base_context(request, title=f"Revision {number}")
    return render(request, "designer_revision", {**context, "revision": entry, "plan": plan},
                  twin={**entry, "plan": plan})


routes = [
    Route("/admin/history", history_page, methods=["GET"]),
    Route("/admin/history/{number:recordid}", revision_page, methods=["GET"]),
]
