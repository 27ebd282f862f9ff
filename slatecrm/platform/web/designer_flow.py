"""Plan first, then apply: the one flow every change made in the designer takes.

A form posted without `confirm` is planned (`customisation.plan_edit`, nothing changes) and
its page shows the plan: each change with its SQL and the rows at risk, or the refusal of a
plan that puts data at risk (then no Apply is offered). Apply posts the same form again with
`confirm` = the revision the plan was made against and `plan_digest` = the plan it showed.
The change is applied only when the plan made now is that same plan against that same
revision, as web/admin.py's `?confirm=` checks; otherwise (another change landed meanwhile,
or the form was changed after the review) the new plan is shown to confirm again, 409.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from slatecrm.metamodel.errors import DefinitionError

from .. import customisation
from ..storage.apply import StaleSnapshot
from ..workflows.worker import reconcile
from .admin import MANAGE_METAMODEL
from .api import service
from .rights import principal_of, require_right


@dataclass(frozen=True)
class Outcome:
    """What the page shows after a review: the plan (None when the request was refused
    before planning), the problems by input name, the status."""

    plan: dict[str, Any] | None
    errors: dict[str, list[str]]
    status: int


#: Shows the page again with the outcome of a review.
Again = Callable[[Outcome], Awaitable[Response]]


def digest(plan: dict[str, Any]) -> str:
    """A short fingerprint of what a plan does (its changes, SQL and risks)."""
    text = json.dumps(plan["changes"], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shown(plan: dict[str, Any], summary: str) -> dict[str, Any]:
    """The plan as the page shows it: with what it was asked for, and its fingerprint."""
    return {**plan, "summary": summary, "digest": digest(plan)}


async def review(request: Request, summary: str, edit: Any, again: Again, done: str) -> Response:
    """Plan `edit`; show the plan, or apply it when the form confirms this very plan, then
    go to `done` (303)."""
    await run_in_threadpool(require_right, request, MANAGE_METAMODEL)
    form = await request.form()
    records = service(request)
    engine = request.app.state.engine
    try:
        planned = await run_in_threadpool(customisation.plan_edit, engine, records.registry, summary, edit,
                                          functions=records.functions)
    except DefinitionError as error:
        return await again(Outcome(None, {"": [str(p) for p in error.problems] or [str(error)]}, 422))
    plan = shown(planned.plan.as_dict(), summary)
    if planned.plan.blocked:
        return await again(Outcome(plan, {"": ["refused: the change puts existing data at risk (see the "
                                               "plan); nothing was changed"]}, 409))
    confirm = form.get("confirm")
    if confirm is None:
        return await again(Outcome(plan, {}, 200))
    if str(confirm) != str(plan["base_revision"]) or form.get("plan_digest") != plan["digest"]:
        return await again(Outcome(plan, {"": [
            f"the metamodel changed since this plan was shown (the plan was against revision {confirm}, it "
            f"is at revision {plan['base_revision']} now): review the new plan and apply it again"
            if str(confirm) != str(plan["base_revision"]) else
            "the plan is not the one shown (the form changed since): review the new plan and apply it "
            "again"]},
            409))
    principal = principal_of(request)
    try:
        await run_in_threadpool(customisation.apply_edit, engine, planned, author=_author(principal.name),
                                principal=principal, address=request.client.host if request.client else None)
    except StaleSnapshot:
        replanned = await run_in_threadpool(customisation.plan_edit, engine, records.registry, summary, edit,
                                            functions=records.functions)
        return await again(Outcome(shown(replanned.plan.as_dict(), summary), {"": [
            "another change landed while this one was applied: review the new plan and apply it "
            "again"]}, 409))
    records.holder.refresh()
    await run_in_threadpool(reconcile, engine, records, dt.datetime.now(dt.UTC))
    return RedirectResponse(done, status_code=303)


def _author(name: str) -> str:
    return f"{name} (designer)" if name else "designer"
