"""Plan first, then apply: the one flow every change made in the admin designer takes, and
the one way its plan is shown (templates/_plan.html).

A form posted without `confirm` is planned (nothing changes) and the answer shows the plan:
each change with its SQL and the rows at risk ("N of M rows"), or the refusal of a plan that
puts existing data at risk (shown without Apply, 409). With the plan come two hidden
inputs: `confirm`, the revision the plan was made against, and `plan_digest`, the plan's
fingerprint. Apply posts the form again with them, and the change is applied only when the
plan made now is against that same revision (web/admin.py's `?confirm=` check) and has that
same fingerprint. Otherwise (another change landed meanwhile, or the form was changed after
its review) the answer is the new plan, to review and apply again (409).

The plan is shown in one of two places. The entity and field pages show it inside the form
that asked for it (`review`, with the page's own `again`): that form can still be edited, so
Apply must send the fingerprint. The pipeline and pack pages show it on a plan page of its
own (`plan_or_apply`, `plan_page`) that replays the reviewed fields as hidden inputs: those
cannot be edited between the review and Apply, so there, as with the admin API's
`?confirm=`, the revision alone identifies the plan, and the fingerprint is checked whenever
it is sent (the page's own form always sends it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from slatecrm.metamodel.errors import DefinitionError

from .. import customisation
from ..storage.apply import StaleSnapshot
from ..storage.plan import Plan
from ..workflows.worker import reconcile
from .admin import MANAGE_METAMODEL
from .api import call, service
from .rights import checked_right, principal_of
from .templating import render
from .uicontext import base_context

#: Form fields a plan page does not replay (its own form sends them afresh).
NOT_REPLAYED = frozenset({"csrftoken", "confirm", "plan_digest"})
BLOCKED = "refused: the change puts existing data at risk (see the plan); nothing was changed"
EDITED = "the plan is not the one shown (the form changed since): review the new plan and apply it again"
RACED = "another change landed while this one was applied: review the new plan and apply it again"


@dataclass(frozen=True)
class Outcome:
    """What a page shows after a review: the plan (None when the request was refused
    before planning), the problems by input name ("" for the plan itself), the status."""

    plan: dict[str, Any] | None
    errors: dict[str, list[str]]
    status: int


#: Shows the page again with the outcome of a review.
Again = Callable[[Outcome], Awaitable[Response]]
#: What a plan page's originating page shows when the edit itself is refused (input → messages).
Refusal = Callable[[dict[str, list[str]]], Awaitable[Response]]


def digest(plan: Mapping[str, Any], defines: object = None) -> str:
    """A short fingerprint of what a plan does: its changes (SQL and risks) and `defines`, the
    definitions it applies (a change of a label or of a stage order has no SQL, yet two such
    plans differ)."""
    text = json.dumps({"changes": plan["changes"], "defines": defines}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shown(plan: Plan, summary: str, defines: object = None) -> dict[str, Any]:
    """The plan as the pages (and their JSON twins) show it: with what it was asked for, and
    its fingerprint (see `digest`)."""
    out = {**plan.as_dict(), "summary": summary}
    return {**out, "digest": digest(out, defines)}


def edited(planned: customisation.Customisation) -> dict[str, Any]:
    """What an edit defines: the organisation's documents it changes, as they will be."""
    return {f"{kind}/{name}": planned.documents.get((kind, name)) for kind, name in planned.changed}


def problems_of(error: DefinitionError) -> list[str]:
    """A refused edit's problems as text, each with its place."""
    return [str(p) for p in error.problems] or [str(error)]


def stale(shown_revision: object, now: object) -> str:
    return (f"Another change was applied meanwhile: the metamodel changed since this plan was shown (the "
            f"plan was against revision {shown_revision}, it is at revision {now} now). Review the new "
            "plan and apply it again.")


def decided(plan: dict[str, Any], sent: Mapping[str, Any], *, replayed: bool) -> Outcome | None:
    """What to show for `plan` given the posted form `sent`, or None when the form confirms
    this very plan (apply it). `replayed`: the form was replayed by a plan page (see above)."""
    if plan["blocked"]:
        return Outcome(plan, {"": [BLOCKED]}, 409)
    confirm = sent.get("confirm")
    if confirm is None:
        return Outcome(plan, {}, 200)
    if str(confirm) != str(plan["base_revision"]):
        return Outcome(plan, {"": [stale(confirm, plan["base_revision"])]}, 409)
    fingerprint = sent.get("plan_digest")
    if fingerprint != plan["digest"] and (fingerprint is not None or not replayed):
        return Outcome(plan, {"": [EDITED]}, 409)
    return None


async def review(request: Request, summary: str, edit: Any, again: Again, done: str, *,
                 form: Mapping[str, Any] | None = None, replayed: bool = False) -> Response:
    """Plan `edit`; show the plan (through `again`), or apply it when the form (`form`, else
    the request's) confirms this very plan, then go to `done` (303)."""
    await checked_right(request, MANAGE_METAMODEL)
    sent = await request.form() if form is None else form
    records = service(request)
    engine = request.app.state.engine
    try:
        planned = await call(request, customisation.plan_edit, engine, records.registry, summary, edit,
                             functions=records.functions)
    except DefinitionError as error:
        return await again(Outcome(None, {"": problems_of(error)}, 422))
    outcome = decided(shown(planned.plan, summary, edited(planned)), sent, replayed=replayed)
    if outcome is not None:
        return await again(outcome)
    principal = principal_of(request)
    try:
        await call(request, customisation.apply_edit, engine, planned, author=_author(principal.name),
                   principal=principal, address=request.client.host if request.client else None)
    except StaleSnapshot:
        replanned = await call(request, customisation.plan_edit, engine, records.registry, summary, edit,
                               functions=records.functions)
        return await again(Outcome(shown(replanned.plan, summary, edited(replanned)), {"": [RACED]}, 409))
    records.holder.refresh()
    await call(request, reconcile, engine, records, dt.datetime.now(dt.UTC))
    return RedirectResponse(done, status_code=303)


def _author(name: str) -> str:
    return f"{name} (designer)" if name else "designer"


def replayed_fields(form: FormData) -> list[tuple[str, str]]:
    """The reviewed form's fields, as the plan page's hidden inputs carry them back."""
    return [(k, v) for k, v in form.multi_items() if k not in NOT_REPLAYED and isinstance(v, str)]


async def plan_or_apply(request: Request, form: FormData, summary: str, edit: Any, *,
                        back: str, done: str, refused: Refusal) -> Response:
    """`review` with the plan on a page of its own that replays `form`; an edit refused
    before planning is shown by `refused` (on the page that asked)."""

    async def again(outcome: Outcome) -> Response:
        if outcome.plan is None:
            return await refused(outcome.errors)
        return await plan_page(request, outcome, title=f"Plan: {summary}", back=back, action=request.url.path,
                               fields=replayed_fields(form))

    return await review(request, summary, edit, again, done, form=form, replayed=True)


async def plan_page(request: Request, outcome: Outcome, *, title: str, back: str, action: str,
                    fields: Sequence[tuple[str, str]], template: str = "designer_plan",
                    apply_label: str = "Apply", applicable: bool = True, multipart: bool = False,
                    shows: Mapping[str, Any] | None = None) -> Response:
    """A plan on a page of its own (templates/designer_plan.html or a page extending it): its
    notices, the plan, and a form posting `fields` back to `action` with Apply (when the plan is
    `applicable` and not blocked) and Cancel (to `back`). `shows`: more for the page and its twin."""
    notices = outcome.errors.get("", [])
    notice = notices[0] if notices else None
    context = await base_context(request, title=title)
    more = dict(shows or {})
    return render(request, template, {
        **context, **more, "plan": outcome.plan, "notices": notices, "fields": list(fields), "action": action,
        "back": back, "apply_label": apply_label, "applicable": applicable, "multipart": multipart},
        twin={**more, "plan": outcome.plan, "errors": outcome.errors, "notice": notice},
        status=outcome.status)
