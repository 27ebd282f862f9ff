"""The roles admin pages: `/admin/roles` lists the roles a user can be given, `/admin/roles/{role}`
shows one as a matrix (entity × actions, record scope, sharing rules, hidden and read-only
fields, platform rights) and says who defines it. Readable with manage_users or
manage_metamodel, like `GET /api/v1/admin/roles` (web/roles_api.py), whose JSON each page's
twin is.

The organisation's roles are defined, changed and removed from these pages too (holders of
manage_metamodel): a YAML form posting the definition `PUT /api/v1/admin/roles/{role}`
takes, planned first (the plan is shown) and applied on confirmation, through the same
`customisation` functions as the API, so a failed check is shown next to the form and nothing
is changed.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Awaitable, Callable
from typing import Any

from ruamel.yaml import YAML
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from slatecrm.metamodel.errors import DefinitionError, Problem
from slatecrm.metamodel.names import NAME_PATTERN
from slatecrm.metamodel.roles import ACTIONS, ADMINISTRATOR
from slatecrm.metamodel.yamlsource import parse_yaml

from .. import customisation
from ..identity.principal import Principal
from .admin import MANAGE_METAMODEL
from .api import call, service
from .authentication import READ_METHODS
from .identity_common import NotFound, NotSignedIn
from .me_pages import to_login
from .pinning import records_of
from .rights import may, principal_of, require_right
from .roles_api import all_roles, one_role, reader
from .templating import render
from .uicontext import base_context

SCOPES = {"own": "own records", "team": "their teams' records",
          "subordinates": "own and subordinates' records", "all": "all records"}
Page = Callable[[Request, Principal], Awaitable[Response]]


def roles_page(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """Sign-in first (else the login page), then manage_users or manage_metamodel (else 403,
    checked off the event loop: web/roles_api.py `reader`), then the page; an unknown role
    is the 404 page."""
    @functools.wraps(page)
    async def handle(request: Request) -> Response:
        try:
            actor = await run_in_threadpool(reader, request)
            return await page(request, actor)
        except NotSignedIn:
            return to_login(request)
        except NotFound as error:
            return await not_found(request, str(error))
    return handle


async def not_found(request: Request, detail: str) -> Response:
    context = await base_context(request, title="Error 404")
    return render(request, "error", {**context, "status": 404, "detail": detail, "errors": {},
                                     "kind": "http"}, twin=None, status=404)


@roles_page
async def role_list(request: Request, actor: Principal) -> Response:
    found = await run_in_threadpool(all_roles, request)
    context = await base_context(request, title="Roles")
    editor = await run_in_threadpool(may, request, MANAGE_METAMODEL)
    return render(request, "roles", {**context, "roles": found, "editor": editor}, twin={"data": found})


def _yaml(definition: dict[str, Any] | None) -> str:
    """A definition as the form's YAML (block style, in the API's key order)."""
    if not definition:
        return ""
    out = io.StringIO()
    dumper = YAML(typ="safe", pure=True)
    dumper.default_flow_style = None  # lists of names on one line: actions: [create, read]
    dumper.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    dumper.dump(definition, out)
    return out.getvalue()


async def _role_page(request: Request, role: dict[str, Any], *, text: str | None = None,
                     errors: dict[str, list[str]] | None = None, plan: dict[str, Any] | None = None,
                     status: int = 200) -> Response:
    editor = role["defined_by"] != "built-in" and await run_in_threadpool(may, request, MANAGE_METAMODEL)
    context = await base_context(request, title=role["label"])
    shown = _yaml(role["definition"]) if text is None else text
    labels = await run_in_threadpool(_entity_labels, request)
    return render(request, "role", {**context, "role": role, "actions": ACTIONS, "scopes": SCOPES,
                                    "editor": editor, "definition_text": shown, "errors": errors or {},
                                    "plan": plan,
                                    "new": False, "entity_labels": labels},
                  twin={"role": role, "errors": errors or {}, "plan": plan}, status=status)


def _entity_labels(request: Request) -> dict[str, str]:
    """Each entity's plural label by name, for the matrix's rows (the full metamodel: a role
    may name entities the reader cannot read)."""
    return {e.name: e.label_plural for e in records_of(request).full_snapshot().metamodel.active_entities}


@roles_page
async def role_page(request: Request, actor: Principal) -> Response:
    name = request.path_params["role"]
    role = await run_in_threadpool(one_role, request, name)  # a new one is defined at /admin/roles/new
    if request.method in READ_METHODS:
        return await _role_page(request, role)
    return await _edit(request, name, new=False)


@roles_page
async def new_role(request: Request, actor: Principal) -> Response:
    await run_in_threadpool(require_right, request, MANAGE_METAMODEL)
    if request.method in READ_METHODS:
        return await _new_page(request, "", {"label": "", "description": "", "platform": [],
                                             "entities": {}}, None, {}, 200)
    return await _edit(request, None, new=True)


async def _new_page(request: Request, name: str, definition: dict[str, Any] | str,
                    plan: dict[str, Any] | None, errors: dict[str, list[str]], status: int) -> Response:
    context = await base_context(request, title="New role")
    text = definition if isinstance(definition, str) else _yaml(definition)
    return render(request, "role", {**context, "role": None, "name": name, "definition_text": text,
                                    "errors": errors,
                                    "plan": plan, "new": True, "editor": True, "actions": ACTIONS,
                                    "scopes": SCOPES},
                  twin={"errors": errors, "plan": plan}, status=status)


def _definition(text: str) -> dict[str, Any]:
    """The YAML of the form as a role's definition; _Refused (under `definition`) for text
    that is not a YAML mapping, saying where."""
    parsed = parse_yaml(text, "definition")
    if isinstance(parsed, Problem):
        raise _Refused({"definition": [str(parsed)]})
    body = parsed.data
    if not isinstance(body, dict):
        raise _Refused({"definition": ["give the role as a YAML mapping (label, description, platform, "
                                       "entities)"]})
    return body


class _Refused(Exception):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


async def _edit(request: Request, name: str | None, *, new: bool) -> Response:
    """Plan (and, with `confirm`, apply) the form's change: define, or with `remove`, remove."""
    await run_in_threadpool(require_right, request, MANAGE_METAMODEL)
    form = await request.form()
    text = str(form.get("definition") or "")
    removing = form.get("remove") is not None
    if new:
        name = str(form.get("name") or "").strip()
    assert name is not None

    async def again(errors: dict[str, list[str]], plan: dict[str, Any] | None = None,
                    status: int = 422) -> Response:
        if new:
            return await _new_page(request, name or "", text, plan, errors, status)
        role = await run_in_threadpool(one_role, request, name)
        return await _role_page(request, role, text=text, errors=errors, plan=plan, status=status)

    try:
        if new and not _valid_name(name):
            raise _Refused({"name": ["give a name of lower-case letters, digits and _, starting with a "
                                     "letter"]})
        if new and (name == ADMINISTRATOR or any(r["name"] == name for r in await run_in_threadpool(
                all_roles, request))):
            raise _Refused({"name": [f"a role named {name!r} exists already: change it from its own page"]})
        if removing:
            summary, edit = f"remove role {name}", customisation.delete_role(name)
        else:
            summary, edit = f"define role {name}", customisation.put_role(name, _definition(text))
        records = service(request)
        engine = request.app.state.engine
        planned = await call(request, customisation.plan_edit, engine, records.registry, summary, edit,
                             functions=records.functions)
    except _Refused as refused:
        return await again(refused.errors)
    except DefinitionError as error:
        return await again({"definition": [str(p) for p in error.problems] or [str(error)]})
    plan = planned.plan.as_dict()
    if planned.plan.blocked:
        return await again({"": ["the change puts existing data at risk (see the plan); nothing was "
                                  "changed"]}, plan, 409)
    confirm = form.get("confirm")
    if confirm is None:
        return await again({}, {**plan, "base_revision": planned.plan.base_revision, "summary": summary,
                                "remove": removing}, 200)
    if str(confirm) != str(planned.plan.base_revision):
        return await again({"": [f"the plan is against revision {planned.plan.base_revision}, not {confirm}: "
                                 "review the plan again before confirming it"]},
                           {**plan, "base_revision": planned.plan.base_revision, "summary": summary,
                            "remove": removing}, 409)
    principal = principal_of(request)
    await call(request, customisation.apply_edit, engine, planned, author="admin page", principal=principal,
               address=request.client.host if request.client else None)
    records.holder.refresh()
    return RedirectResponse("/admin/roles" if removing else f"/admin/roles/{name}", status_code=303)


def _valid_name(name: str) -> bool:
    return bool(re.fullmatch(NAME_PATTERN, name))


routes = [
    Route("/admin/roles", role_list, methods=["GET"]),
    Route("/admin/roles/new", new_role, methods=["GET", "POST"]),
    Route("/admin/roles/{role}", role_page, methods=["GET", "POST"]),
]
