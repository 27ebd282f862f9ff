"""The users admin pages (need the manage_users right): `/admin/users` lists users with a
filter; a user's page edits them, disables or enables them, resets their password and
revokes their tokens, and sets their roles and teams (checkboxes); `/admin/users/new` adds
one. Each change goes through the same
functions as the admin API (web/users_api.py), audited as the signed-in administrator.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..identity import userattributes
from ..identity.principal import Principal
from ..records.errors import ValidationFailed
from .authentication import READ_METHODS
from .identity_common import NotFound, NotSignedIn, engine_of, user_with_access
from .me_api import revoke_token, token_list
from .me_pages import to_login
from .roles_api import all_roles
from .teams_api import listed as teams
from .templating import render
from .uicontext import base_context
from .users_api import add_user, administrator, change_user, find, listed, reset_password

LABELS = {"email": "E-mail", "name": "Name", "time_zone": "Time zone", "locale": "Locale",
          "manager": "Manager", "password": "Password", "active": "Active", "roles": "Roles",
          "teams": "Teams"}
Page = Callable[[Request, Principal], Awaitable[Response]]


def admin_page(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """Sign-in first (else the login page), then the right (else 403), then the page;
    an unknown user is the 404 page."""
    @functools.wraps(page)
    async def handle(request: Request) -> Response:
        try:
            actor = await administrator(request)
            return await page(request, actor)
        except NotSignedIn:
            return to_login(request)
        except NotFound as error:
            context = await base_context(request, title="Error 404")
            return render(request, "error", {**context, "status": 404, "detail": str(error), "errors": {},
                                             "kind": "http"}, twin=None, status=404)
    return handle


def _form_values(form: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The form's text values of `keys`; a blank manager is no manager, other blanks are
    left out (unchanged, or the default)."""
    values: dict[str, Any] = {}
    for key in keys:
        text = str(form.get(key) or "").strip()
        if key == "manager":
            values[key] = text or None
        elif text:
            values[key] = text
    return values


def _memberships(form: Any) -> dict[str, Any]:
    """The roles and teams checked on the form, when it showed the checkboxes (`memberships`
    marks that: a form with none checked then means none)."""
    if not form.get("memberships"):
        return {}
    return {"roles": [str(r) for r in form.getlist("roles")],
            "teams": [str(t) for t in form.getlist("teams")]}


def _choices(request: Request) -> dict[str, Any]:
    """The roles a user may be given (label and who defines it) and the teams, for the
    checkboxes."""
    return {"role_choices": [{"name": r["name"], "label": r["label"], "defined_by": r["defined_by"],
                              "pack": r["pack"]} for r in all_roles(request)],
            "team_choices": [t["name"] for t in teams(request)]}
#: The form fields of user attributes: `attribute.<name>` (identity/userattributes.py).
ATTRIBUTE_FIELD = "attribute."


def _attribute_definitions(request: Request) -> list[dict[str, Any]]:
    """The user attributes a user's form shows: name, label, description, the options to pick
    from (none: a typed value) and the input type."""
    with engine_of(request).connect() as conn:
        defined = userattributes.definitions(conn)
    return [{"name": a.name, "label": a.label, "description": a.description,
             "options": list(a.form_options), "input_type": a.input_type} for a in defined]


def _form_attributes(form: Any) -> dict[str, Any]:
    """The attribute fields the form sent (a blank removes the value); none sent, none changed."""
    return {key.removeprefix(ATTRIBUTE_FIELD): (str(value).strip() or None)
            for key, value in form.items() if key.startswith(ATTRIBUTE_FIELD)}


def _attribute_labels(definitions: list[dict[str, Any]]) -> dict[str, str]:
    return {f"attributes.{d['name']}": d["label"] for d in definitions}


@admin_page
async def user_list(request: Request, actor: Principal) -> Response:
    found = await run_in_threadpool(listed, request)
    context = await base_context(request, title="Users")
    return render(request, "users", {**context, "users": found, "q": request.query_params.get("q", ""),
                                     "active": request.query_params.get("active", "")},
                  twin={"data": found})


async def _user_page(request: Request, user: dict[str, Any], *, errors: dict[str, list[str]] | None = None,
                     form: dict[str, Any] | None = None, status: int = 200) -> Response:
    held = await run_in_threadpool(token_list, request, user["id"])
    definitions = await run_in_threadpool(_attribute_definitions, request)
    context = await base_context(request, title=user["name"])
    choices = await run_in_threadpool(_choices, request)
    labels = {**LABELS, **_attribute_labels(definitions)}
    return render(request, "user", {**context, "user": user, "tokens": held, "errors": errors or {},
                                    "form": form or user, "labels": labels, "new": False,
                                    "user_attributes": definitions, **choices},
                  twin={"user": user, "tokens": held, "errors": errors or {}}, status=status)


@admin_page
async def user_page(request: Request, actor: Principal) -> Response:
    if request.method in READ_METHODS:  # HEAD is a GET without the body
        user = await run_in_threadpool(lambda: user_with_access(engine_of(request), find(request)))
        return await _user_page(request, user)
    form = await request.form()
    data = {**_form_values(form, ("name", "time_zone", "locale", "manager")), **_memberships(form)}
    if attributes := _form_attributes(form):
        data["attributes"] = attributes
    try:
        await run_in_threadpool(change_user, request, actor, data)
    except ValidationFailed as error:
        user = await run_in_threadpool(lambda: user_with_access(engine_of(request), find(request)))
        return await _user_page(request, user, errors=error.errors, form={**user, **data},
                                status=error.status)
    return RedirectResponse(f"/admin/users/{request.path_params['user_id']}", status_code=303)


@admin_page
async def new_user(request: Request, actor: Principal) -> Response:
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {"time_zone": "UTC", "locale": "en"}
    definitions = await run_in_threadpool(_attribute_definitions, request)
    if request.method == "POST":
        form = await request.form()
        data = {**_form_values(form, ("email", "name", "time_zone", "locale", "manager")),
                **_memberships(form)}
        if attributes := {k: v for k, v in _form_attributes(form).items() if v is not None}:
            data["attributes"] = attributes
        for key in ("email", "name"):
            if key not in data:
                errors[key] = ["is required"]
        if not errors:
            try:
                made = await run_in_threadpool(add_user, request, actor, data)
            except ValidationFailed as error:
                errors = error.errors
            else:
                return RedirectResponse(f"/admin/users/{made['id']}", status_code=303)
    context = await base_context(request, title="New user")
    choices = await run_in_threadpool(_choices, request)
    return render(request, "user", {**context, "user": None, "tokens": [], "errors": errors, "form": data,
                                    "labels": {**LABELS, **_attribute_labels(definitions)}, "new": True,
                                    "user_attributes": definitions, **choices},
                  twin={"errors": errors}, status=422 if errors else 200)


def _action(change: Callable[[Request, Principal], Any]) -> Callable[[Request], Awaitable[Response]]:
    """A button of a user's page: do it, then back to the page (a refusal shown there)."""
    @admin_page
    async def handle(request: Request, actor: Principal) -> Response:
        try:
            await run_in_threadpool(change, request, actor)
        except ValidationFailed as error:
            user = await run_in_threadpool(lambda: user_with_access(engine_of(request), find(request)))
            return await _user_page(request, user, errors=error.errors, status=error.status)
        return RedirectResponse(f"/admin/users/{request.path_params['user_id']}", status_code=303)
    return handle


def _revoke(request: Request, actor: Principal) -> None:
    owner = find(request)
    revoke_token(request, actor, owner.id, request.path_params["token_id"])


routes = [
    Route("/admin/users", user_list, methods=["GET"]),
    Route("/admin/users/new", new_user, methods=["GET", "POST"]),
    Route("/admin/users/{user_id:recordid}", user_page, methods=["GET", "POST"]),
    Route("/admin/users/{user_id:recordid}/disable",
          _action(lambda request, actor: change_user(request, actor, {"active": False})), methods=["POST"]),
    Route("/admin/users/{user_id:recordid}/enable",
          _action(lambda request, actor: change_user(request, actor, {"active": True})), methods=["POST"]),
    Route("/admin/users/{user_id:recordid}/password-reset", _action(reset_password), methods=["POST"]),
    Route("/admin/users/{user_id:recordid}/tokens/{token_id:recordid}/revoke", _action(_revoke),
          methods=["POST"]),
]
