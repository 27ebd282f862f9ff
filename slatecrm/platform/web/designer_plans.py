"""Plan first, then apply: the one flow every designer page of this module family takes.

A page's POST names an edit (customisation.py's kind); the answer is its plan, shown with
the form's own fields replayed as hidden inputs and Apply / Cancel. Apply posts the same
fields again with `confirm=<base revision>`: the edit is planned again and applied only if
that is still the revision it is against (customisation.apply_edit's check, the same as
the admin API's `?confirm=`); if another change landed meanwhile, the answer is the new plan
(409), to review and apply again. A blocked plan (data at risk) is shown without Apply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from slatecrm.metamodel.errors import DefinitionError

from .. import customisation
from ..workflows.worker import reconcile
from .admin import MANAGE_METAMODEL
from .api import call, service
from .rights import checked_right, principal_of
from .templating import render
from .uicontext import base_context

#: Form fields a replayed form does not carry again.
NOT_REPLAYED = frozenset({"csrftoken", "confirm"})

#: What a page shows when the edit itself is refused (field → messages).
Refusal = Callable[[dict[str, list[str]]], Awaitable[Response]]


def problems_of(error: DefinitionError) -> list[str]:
    """A refused edit's problems as text, each with its place."""
    return [str(p) for p in error.problems] or [str(error)]


def replayed(form: FormData) -> list[tuple[str, str]]:
    return [(k, v) for k, v in form.multi_items() if k not in NOT_REPLAYED and isinstance(v, str)]


async def plan_or_apply(request: Request, form: FormData, summary: str, edit: Any, *,
                        back: str, done: str, refused: Refusal) -> Response:
    """Plan `edit`; show the plan, or with a matching `confirm`, apply it and go to `done`."""
    await checked_right(request, MANAGE_METAMODEL)
    records = service(request)
    engine = request.app.state.engine
    try:
        planned = await call(request, customisation.plan_edit, engine, records.registry, summary, edit,
                             functions=records.functions)
    except DefinitionError as error:
        return await refused({"": problems_of(error)})
    plan = planned.plan
    confirm = form.get("confirm")
    if plan.blocked or confirm is None or str(confirm) != str(plan.base_revision):
        notice = None
        status = 200
        if plan.blocked:
            notice = "The change puts existing data at risk (see the plan); it cannot be applied."
            status = 409
        elif confirm is not None:
            notice = (f"Another change was applied meanwhile: the plan you saw was against revision "
                      f"{confirm}, this one is against revision {plan.base_revision}. Review it and "
                      "apply again.")
            status = 409
        context = await base_context(request, title=f"Plan: {summary}")
        shown = {**plan.as_dict(), "summary": summary}
        return render(request, "designer_pipeline_plan", {
            **context, "plan": shown, "notice": notice, "fields": replayed(form),
            "action": request.url.path, "back": back}, twin={"plan": shown, "notice": notice}, status=status)
    await call(request, customisation.apply_edit, engine, planned, author="designer",
               principal=principal_of(request), address=request.client.host if request.client else None)
    records.holder.refresh()
    await call(request, reconcile, engine, records, dt.datetime.now(dt.UTC))
    return RedirectResponse(done, status_code=303)
