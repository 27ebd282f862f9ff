"""The access matrix (issue 12): every route and method of the app's route table, UI and API,
called as anonymous, a user without access to the entity, an own-records user, a manager
(subordinates scope) and an administrator, on SQLite and PostgreSQL. Each cell asserts the
status and that no marker of a record outside the user's reach appears in the body or the
headers (tests/access_world.py).

`TABLE` says how to call each route (path parameters, body) and what it answers when
allowed; the route's `kind` says who is allowed:
- public: everyone, signed in or not;
- signed: every signed-in user (anonymous: 303 to /login for pages, 401 for /api);
- entity/<action>: the records of the entity, by the roles' actions (not readable at all:
  404; readable but the action not allowed: 403);
- right/<name>: a platform right (anyone else signed in: 403).
A route of the app missing from `TABLE` fails `test_every_route_is_in_the_table`, and so
does an entry for a route the app no longer has. HEAD is called wherever GET is, and must
answer as GET does.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from slatecrm.platform import savedviews
from slatecrm.platform.identity import memberships, users
from slatecrm.platform.identity.principal import Principal

from .access_world import EMAILS, OWNERS, PASSWORD, PICTURE, REACH, World, build, database_urls, marker
from .defaults import bearer

WHO = ("anonymous", "outsider", "rep", "manager", "admin")
#: The actions each role has on deals (the pack's roles); the administrator has all.
ACTIONS = {"anonymous": set(), "outsider": set(), "rep": {"create", "read", "update", "export"},
           "manager": {"create", "read", "update", "delete", "export"},
           "admin": {"create", "read", "update", "delete", "export"}}
RIGHTS = {"anonymous": set(), "outsider": set(), "rep": set(), "manager": {"view_audit"},
          "admin": {"manage_metamodel", "install_packs", "manage_users", "view_audit"}}

Params = Callable[[World, str], dict[str, Any]]


def none(world: World, who: str) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Call:
    """How a route is called and what it answers to a user allowed to call it."""
    kind: str
    ok: int = 200
    #: path parameters and the body, made per call: {"path": {...}, "json"|"data"|"files": ...}
    params: Params = none
    query: str = ""
    expect: dict[str, int] = field(default_factory=dict)  # exceptions to the kind's rule, by user
    xfail: dict[str, str] = field(default_factory=dict)  # a known bug, by user

    def status(self, who: str, api: bool) -> int:
        if who in self.expect:
            return self.expect[who]
        if self.kind == "public":
            return self.ok
        if who == "anonymous":
            return 401 if api else 303
        if self.kind == "signed":
            return self.ok
        group, _, name = self.kind.partition("/")
        if group == "entity":
            if "read" not in ACTIONS[who]:
                return 404
            return self.ok if name in ACTIONS[who] else 403
        assert group == "right", self.kind
        return self.ok if name in RIGHTS[who] else 403


def deal(world: World, who: str) -> dict[str, Any]:
    return {"path": {"entity": "deal", "id": world.ids[f"deal:{world.target}"]}}


def fresh(body: Callable[[World, int], dict[str, Any]] | None = None) -> Params:
    """A new deal of the rep's for a call that changes or deletes it (cells stay independent)."""
    def make(world: World, who: str) -> dict[str, Any]:
        made = world.fresh_deal(world.target)
        return {"path": {"entity": "deal", "id": made}, **(body(world, made) if body else {})}
    return make


def new_deal_form(world: World, who: str) -> dict[str, Any]:
    return {"path": {"entity": "deal"},
            "data": {"name": world.unique("Form deal"), "client": str(world.ids["client:rep"]),
                     "status": "open"}}


def manual_run(world: World, who: str) -> dict[str, Any]:
    """The access pack's manual workflow on the target's deal (queued only: no worker runs)."""
    return {"path": {**deal(world, who)["path"], "name": "touch_deal"}}


def paper(world: World, who: str) -> dict[str, Any]:
    """The picture in the papers of the target's deal (tests/access_world.py)."""
    return {"path": {"id": world.ids[f"file:{world.target}"]}}


def link_partner(world: World, who: str) -> dict[str, Any]:
    """A new deal of the target's linked to the target's client through its many-to-many."""
    made = world.fresh_deal(world.target)
    return {"path": {"entity": "deal", "id": made, "relation": "partners"},
            "data": {"other": str(world.ids[f"client:{world.target}"]), "action": "link"}}


def own_token(world: World, who: str) -> dict[str, Any]:
    return {"path": {"token_id": world.fresh_token("admin" if who == "anonymous" else who)}}


def user(world: World, who: str) -> dict[str, Any]:
    return {"path": {"user_id": world.user_ids["rep"]}}


def fresh_user(world: World, who: str) -> dict[str, Any]:
    return {"path": {"user_id": world.fresh_user()}}


def rep_token(world: World, who: str) -> dict[str, Any]:
    return {"path": {"user_id": world.user_ids["rep"], "token_id": world.fresh_token("rep")}}


def admin_path(**path: str) -> Params:
    def make(world: World, who: str) -> dict[str, Any]:
        return {"path": path}
    return make


def tiny_pack_zip() -> bytes:
    """A pack of one entity, zipped, as the packs page takes it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pack.yaml", "name: tiny\nnamespace: tiny\nversion: 1.0.0\ntitle: Tiny\n")
        archive.writestr("entities/gadget.yaml",
                         "kind: entity\nname: gadget\nfields:\n  name:\n    type: text\n")
    return buffer.getvalue()


def with_json(params: Params, body: dict[str, Any]) -> Params:
    def make(world: World, who: str) -> dict[str, Any]:
        return {**params(world, who), "json": body}
    return make


def fresh_team(world: World, who: str) -> dict[str, Any]:
    return {"path": {"team_id": memberships.add_team(world.app.state.engine, world.unique("Team")).id}}


#: A role's definition as the roles page's form posts it (planned only: a dry run).
ROLE_FORM = {"definition": "label: Reader\nentities:\n  deal: {actions: [read], scope: own}\n"}

GADGET = {"label": "Gadget", "title_field": "name", "fields": {"name": {"type": "text"}}}
ROLE = {"label": "Auditor", "platform": ["view_audit"], "entities": {}}
WORKFLOW = {"entity": "deal", "trigger": {"kind": "created"}, "actions": [{"kind": "note", "text": "new"}]}
LAYOUT = {"entity": "deal", "compact": {"fields": ["name"]}}
VIEW = {"entity": "deal", "columns": ["name"], "filter": "name != ''"}


def own_view(world: World, who: str) -> int:
    """A personal view of `who`'s own, or of the matrix's target user when that is not the rep
    (someone else's view; the rep's for anonymous, who is sent to sign in first)."""
    owner = world.target if world.target != "rep" else "rep" if who == "anonymous" else who
    principal = Principal(user_id=world.user_ids[owner], name=owner, via="session")
    made = savedviews.save(world.app.state.engine, principal, "deal", world.unique("Mine"), ["name"],
                           None, (), dt.datetime.now(dt.UTC))
    return made.id


def saved_view(**data: str) -> Params:
    def make(world: World, who: str) -> dict[str, Any]:
        named = {k: world.unique(v) if k == "name" else v for k, v in data.items()}
        return {"path": {"entity": "deal", "id": own_view(world, who)}, "data": named}
    return make


#: (path as the route table has it, method) -> how to call it.
TABLE: dict[tuple[str, str], Call] = {
    ("/login", "GET"): Call("public"),
    ("/login", "POST"): Call("public", 303, lambda w, who: {
        "data": {"email": EMAILS["rep"], "password": PASSWORD}}),
    ("/logout", "POST"): Call("signed", 303),
    ("/logout-everywhere", "POST"): Call("signed", 303),
    ("/health", "GET"): Call("public"),
    # Inbound webhooks are signed, not logged in (tests/test_workflow_hooks.py): no workflow
    # receives them here, whoever asks.
    ("/hooks/workflows/{name}", "POST"): Call("public", 404, lambda w, who: {"path": {"name": "none"},
                                                                             "json": {}}),
    ("/static", "GET"): Call("public", params=lambda w, who: {"path": {"path": "/app.css"}}),
    # The metamodel editor answers with a plan (a dry run): nothing changes.
    ("/api/v1/admin/customisations", "GET"): Call("right/manage_metamodel"),
    ("/api/v1/admin/entities/{entity}", "PUT"): Call("right/manage_metamodel",
                                                     params=with_json(admin_path(entity="gadget"), GADGET)),
    ("/api/v1/admin/entities/{entity}", "DELETE"): Call("right/manage_metamodel", 422,
                                                        params=admin_path(entity="gadget")),
    ("/api/v1/admin/entities/{entity}/fields/{field}", "PUT"): Call(
        "right/manage_metamodel",
        params=with_json(admin_path(entity="deal", field="extra"), {"type": "text"})),
    ("/api/v1/admin/entities/{entity}/fields/{field}", "DELETE"): Call(
        "right/manage_metamodel", 422, params=admin_path(entity="deal", field="extra")),
    ("/api/v1/admin/entities/{entity}/pipelines/{pipeline}", "PUT"): Call(
        "right/manage_metamodel", params=with_json(admin_path(entity="deal", pipeline="phase"), {
            "field": "phase", "stages": [{"key": "early"}, {"key": "late"}]})),
    ("/api/v1/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}", "PUT"): Call(
        "right/manage_metamodel", params=with_json(admin_path(entity="deal", pipeline="flow", stage="maybe"),
                                                   {"after": "open"})),
    ("/api/v1/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}", "DELETE"): Call(
        "right/manage_metamodel", 422, params=admin_path(entity="deal", pipeline="flow", stage="lost")),
    ("/api/v1/admin/roles/{role}", "PUT"): Call("right/manage_metamodel",
                                                params=with_json(admin_path(role="auditor"), ROLE)),
    ("/api/v1/admin/roles/{role}", "DELETE"): Call("right/manage_metamodel", 422,
                                                   params=admin_path(role="auditor")),
    ("/api/v1/admin/workflows/{workflow}", "PUT"): Call("right/manage_metamodel",
                                                        params=with_json(admin_path(workflow="noted"),
                                                                         WORKFLOW)),
    ("/api/v1/admin/workflows/{workflow}", "DELETE"): Call("right/manage_metamodel", 422,
                                                           params=admin_path(workflow="noted")),
    ("/api/v1/admin/views/{view}", "PUT"): Call("right/manage_metamodel",
                                                params=with_json(admin_path(view="deal_names"), VIEW)),
    ("/api/v1/admin/views/{view}", "DELETE"): Call("right/manage_metamodel", 422,
                                                   params=admin_path(view="deal_names")),
    # Personal views: anyone who lists the entity saves, renames and deletes their own;
    # sharing one with roles is an administrator's act (the entity is looked up first).
    ("/e/{entity}/views", "POST"): Call("entity/read", 303, lambda w, who: {
        "path": {"entity": "deal"}, "data": {"name": w.unique("My deals"), "columns": "name"}}),
    ("/e/{entity}/views/{id:recordid}/rename", "POST"): Call("entity/read", 303,
                                                            params=saved_view(name="Renamed")),
    ("/e/{entity}/views/{id:recordid}/delete", "POST"): Call("entity/read", 303, params=saved_view()),
    ("/e/{entity}/views/{id:recordid}/share", "POST"): Call("right/manage_metamodel", 303,
                                                           params=saved_view(roles="deal_rep"),
                                                           expect={"outsider": 404}),
    ("/api/v1/admin/layouts/{layout}", "PUT"): Call("right/manage_metamodel",
                                                    params=with_json(admin_path(layout="deal"), LAYOUT)),
    ("/api/v1/admin/layouts/{layout}", "DELETE"): Call("right/manage_metamodel", 422,
                                                       params=admin_path(layout="deal")),
    # Reading roles: manage_users or manage_metamodel (the administrator holds both, the others neither).
    ("/api/v1/admin/roles", "GET"): Call("right/manage_users"),
    ("/api/v1/admin/roles/{role}", "GET"): Call("right/manage_users", params=admin_path(role="deal_rep")),
    ("/admin/roles", "GET"): Call("right/manage_users"),
    ("/admin/roles/{role}", "GET"): Call("right/manage_users", params=admin_path(role="deal_rep")),
    ("/admin/roles/{role}", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "path": {"role": "deal_rep"}, "data": ROLE_FORM}),  # the plan, not applied
    ("/admin/roles/new", "GET"): Call("right/manage_metamodel"),
    ("/admin/roles/new", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "data": {"name": "matrix_reader", **ROLE_FORM}}),
    ("/api/v1/admin/teams", "GET"): Call("right/manage_users"),
    ("/api/v1/admin/teams", "POST"): Call("right/manage_users", 201, lambda w, who: {
        "json": {"name": w.unique("Api team"), "members": [EMAILS["rep"]]}}),
    ("/api/v1/admin/teams/{team_id:recordid}", "GET"): Call("right/manage_users", params=fresh_team),
    ("/api/v1/admin/teams/{team_id:recordid}", "PATCH"): Call(
        "right/manage_users", params=lambda w, who: {**fresh_team(w, who), "json": {"description": "x"}}),
    ("/api/v1/admin/teams/{team_id:recordid}", "DELETE"): Call("right/manage_users", 204, fresh_team),
    ("/admin/teams", "GET"): Call("right/manage_users"),
    ("/admin/teams", "POST"): Call("right/manage_users", 303, lambda w, who: {
        "data": {"name": w.unique("Ui team")}}),
    ("/admin/teams/{team_id:recordid}", "GET"): Call("right/manage_users", params=fresh_team),
    ("/admin/teams/{team_id:recordid}", "POST"): Call("right/manage_users", 303, lambda w, who: {
        **fresh_team(w, who), "data": {"name": w.unique("Renamed team"), "members": EMAILS["rep"]}}),
    ("/admin/teams/{team_id:recordid}/delete", "POST"): Call("right/manage_users", 303, fresh_team),
    ("/api/v1/admin/audit", "GET"): Call("right/view_audit"),
    # Workflows: the admin's views and retries need manage_metamodel; a record's runs are its
    # readers', a manual run is for those who may update the record.
    ("/api/v1/workflows", "GET"): Call("right/manage_metamodel"),
    ("/api/v1/workflow-runs", "GET"): Call("right/manage_metamodel", query="workflow=touch_deal"),
    ("/api/v1/workflow-jobs", "GET"): Call("right/manage_metamodel", query="status=dead"),
    ("/api/v1/workflow-jobs/retry", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "json": {"workflow": "touch_deal"}}),
    ("/api/v1/records/{entity}/{id:recordid}/workflow-runs", "GET"): Call("entity/read", params=deal),
    ("/api/v1/records/{entity}/{id:recordid}/workflows/{name}/run", "POST"): Call(
        "entity/update", 202, params=manual_run),
    ("/api/v1/records/{entity}/workflows/{name}/run", "POST"): Call("entity/update", 202, lambda w, who: {
        "path": {"entity": "deal", "name": "touch_deal"}, "json": {"ids": [w.ids[f"deal:{w.target}"]]}}),
    ("/e/{entity}/{id:recordid}/workflows/{name}/run", "POST"): Call("entity/update", 303, params=manual_run),
    ("/admin/workflows", "GET"): Call("right/manage_metamodel"),
    ("/admin/workflows/runs", "GET"): Call("right/manage_metamodel", query="status=done"),
    ("/admin/workflows/dead", "GET"): Call("right/manage_metamodel"),
    ("/admin/workflows/dead/retry", "POST"): Call("right/manage_metamodel", 303, lambda w, who: {
        "data": {"workflow": "touch_deal", "all": "1"}}),
    ("/admin/audit", "GET"): Call("right/view_audit"),
    # The designer's pages (issue 15): its POSTs answer with the plan (a review): nothing changes.
    ("/admin/entities", "GET"): Call("right/manage_metamodel"),
    # Restoring an entity that is not retired is refused with the reason (nothing changes).
    ("/admin/entities", "POST"): Call("right/manage_metamodel", 422, lambda w, who: {
        "data": {"op": "restore", "entity": "deal"}}),
    ("/admin/new-entity", "GET"): Call("right/manage_metamodel"),
    ("/admin/new-entity", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "data": {"name": "gizmo", "label": "Gizmo", "title_field": "name"}}),
    ("/admin/entities/{entity}", "GET"): Call("right/manage_metamodel", params=admin_path(entity="deal")),
    ("/admin/entities/{entity}", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "path": {"entity": "deal"},
        "data": {"op": "relabel", "label": "Bargain", "label_plural": "Bargains"}}),
    ("/admin/entities/{entity}/new-field", "GET"): Call("right/manage_metamodel",
                                                         params=admin_path(entity="deal")),
    ("/admin/entities/{entity}/new-field", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "path": {"entity": "deal"}, "data": {"op": "save", "name": "extra", "type": "text"}}),
    ("/admin/entities/{entity}/fields/{field}", "GET"): Call("right/manage_metamodel",
                                                             params=admin_path(entity="deal", field="name")),
    ("/admin/entities/{entity}/fields/{field}", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal", "field": "name"},
            "data": {"op": "save", "type": "text", "label": "Title"}}),
    ("/admin/entities/{entity}/check", "POST"): Call(
        "right/manage_metamodel", query="rule=condition",
        params=lambda w, who: {"path": {"entity": "deal"}, "data": {"condition": "name != ''"}}),
    # The designer's pipeline pages: a POST answers with the plan (a review): nothing changes.
    # A pack's own stages take only a new label and colour (the plan of it is the answer).
    ("/admin/entities/{entity}/new-pipeline", "GET"): Call("right/manage_metamodel",
                                                           params=admin_path(entity="deal")),
    ("/admin/entities/{entity}/new-pipeline", "POST"): Call("right/manage_metamodel", params=lambda w, who: {
        "path": {"entity": "deal"},
        "data": {"name": "review", "field": "review_stage", "stage_key": ["draft", "done"],
                 "stage_label": ["Draft", "Done"]}}),
    ("/admin/entities/{entity}/pipelines/{pipeline}", "GET"): Call(
        "right/manage_metamodel", params=admin_path(entity="deal", pipeline="flow")),
    ("/admin/entities/{entity}/pipelines/{pipeline}/order", "POST"): Call(
        "right/manage_metamodel", 422, params=lambda w, who: {
            "path": {"entity": "deal", "pipeline": "flow"}, "data": {"move": "lost:up"}}),
    ("/admin/entities/{entity}/pipelines/{pipeline}/stages", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal", "pipeline": "flow"}, "data": {"key": "maybe", "label": "Maybe"}}),
    ("/admin/entities/{entity}/pipelines/{pipeline}/check", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal", "pipeline": "flow"}, "data": {"condition": "amount > 0"}}),
    ("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}", "GET"): Call(
        "right/manage_metamodel", params=admin_path(entity="deal", pipeline="flow", stage="lost")),
    ("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal", "pipeline": "flow", "stage": "lost"}, "data": {"label": "Lost deal"}}),
    ("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}/remove", "POST"): Call(
        "right/manage_metamodel", 422, params=admin_path(entity="deal", pipeline="flow", stage="lost")),
    # A stage the organisation does not relabel: nothing to revert, refused with the reason.
    ("/admin/entities/{entity}/pipelines/{pipeline}/stages/{stage}/revert", "POST"): Call(
        "right/manage_metamodel", 422, params=admin_path(entity="deal", pipeline="flow", stage="lost")),
    # The designer's layout editor: a POST without confirmation answers with the plan.
    ("/admin/entities/{entity}/layout", "GET"): Call("right/manage_metamodel",
                                                     params=admin_path(entity="deal")),
    ("/admin/entities/{entity}/layout", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal"}, "data": {"layout": "compact: {fields: [name]}\n"}}),
    ("/admin/entities/{entity}/layout/edit", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal"}, "data": {"layout": "sections: [{label: S, fields: [name]}]\n",
                                                 "action": "add_section:0"}}),
    ("/admin/entities/{entity}/layout/preview", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal"}, "data": {"layout": "sections: [{label: S, fields: [name]}]\n"}}),
    # The designer's views pages: a POST without confirmation answers with the plan. The world's
    # pack has no view: one view's pages answer 404, after the right is checked.
    ("/admin/entities/{entity}/views", "GET"): Call("right/manage_metamodel",
                                                    params=admin_path(entity="deal")),
    ("/admin/entities/{entity}/views", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal"}, "data": {"name": w.unique("v").replace("-", "_"),
                                                 "view": "type: list\ncolumns: [name]\n"}}),
    ("/admin/entities/{entity}/views/{view}", "GET"): Call(
        "right/manage_metamodel", 404, params=admin_path(entity="deal", view="none_here")),
    ("/admin/entities/{entity}/views/{view}", "POST"): Call(
        "right/manage_metamodel", 404, params=lambda w, who: {
            "path": {"entity": "deal", "view": "none_here"}, "data": {"view": "type: list\n"}}),
    ("/admin/entities/{entity}/views/{view}/remove", "POST"): Call(
        "right/manage_metamodel", 404, params=admin_path(entity="deal", view="none_here")),
    # The structured view editor's inputs for a type (htmx, when the type changes): nothing changes.
    ("/admin/entities/{entity}/view-editor", "POST"): Call(
        "right/manage_metamodel", params=lambda w, who: {
            "path": {"entity": "deal"}, "data": {"editor": "structured", "type": "kanban"}}),
    ("/admin/packs", "GET"): Call("right/manage_metamodel"),
    ("/admin/packs/upload", "POST"): Call("right/install_packs", params=lambda w, who: {
        "files": {"pack": ("tiny.zip", tiny_pack_zip(), "application/zip")}}),
    ("/admin/packs/install", "POST"): Call("right/install_packs", 422, params=lambda w, who: {
        "data": {"archive": "", "filename": "tiny.zip"}}),
    # The pack lifecycle pages (designer_pack_lifecycle.py): nothing is applied here (no
    # confirmation sent: an empty archive, a refusal, the export form's errors).
    ("/admin/packs/upgrade", "POST"): Call("right/install_packs", 422, params=lambda w, who: {
        "data": {"archive": "", "filename": "tiny.zip"}}),
    ("/admin/packs/{name}/uninstall", "GET"): Call("right/install_packs", 409,
                                                   params=admin_path(name="nothing")),
    ("/admin/packs/{name}/uninstall", "POST"): Call("right/install_packs", 409, params=lambda w, who: {
        "path": {"name": "nothing"}, "data": {"confirm": "0"}}),
    ("/admin/packs/export", "GET"): Call("right/manage_metamodel"),
    ("/admin/packs/export", "POST"): Call("right/manage_metamodel", 422, params=lambda w, who: {
        "data": {"layer": "all", "name": "", "version": ""}}),
    ("/admin/history", "GET"): Call("right/manage_metamodel"),
    ("/admin/history/{number:recordid}", "GET"): Call("right/manage_metamodel",
                                                      params=admin_path(number="1")),
    ("/api/v1/me", "GET"): Call("signed"),
    ("/api/v1/me/tokens", "GET"): Call("signed"),
    ("/api/v1/me/tokens", "POST"): Call("signed", 201, lambda w, who: {
        "json": {"name": w.unique("api tok"), "scopes": ["read"]}}),
    ("/api/v1/me/tokens/{token_id:recordid}", "DELETE"): Call("signed", 204, own_token),
    ("/api/v1/admin/users", "GET"): Call("right/manage_users"),
    ("/api/v1/admin/users", "POST"): Call("right/manage_users", 201, lambda w, who: {
        "json": {"email": f"{w.unique('api-new')}@matrix.example", "name": "New One"}}),
    ("/api/v1/admin/users/{user_id:recordid}", "GET"): Call("right/manage_users", params=user),
    ("/api/v1/admin/users/{user_id:recordid}", "PATCH"): Call("right/manage_users",
                                                           params=with_json(fresh_user, {"name": "Renamed"})),
    ("/api/v1/admin/users/{user_id:recordid}/password-reset", "POST"): Call("right/manage_users",
                                                                         params=fresh_user),
    ("/api/v1/admin/users/{user_id:recordid}/tokens", "GET"): Call("right/manage_users", params=user),
    ("/api/v1/admin/users/{user_id:recordid}/tokens/{token_id:recordid}", "DELETE"): Call(
        "right/manage_users", 204, rep_token),
    ("/api/v1/meta", "GET"): Call("signed"),
    ("/api/v1/openapi.json", "GET"): Call("signed"),
    ("/api/v1/{entity:collection}", "GET"): Call("entity/read", params=admin_path(entity="deal")),
    ("/api/v1/{entity:collection}", "POST"): Call("entity/create", 201, lambda w, who: {
        "path": {"entity": "deal"}, "json": {"name": w.unique("Api deal"), "client": w.ids["client:rep"]}}),
    ("/api/v1/{entity}/{id:recordid}", "GET"): Call("entity/read", params=deal),
    ("/api/v1/{entity}/{id:recordid}", "PATCH"): Call("entity/update", params=fresh(
        lambda w, made: {"json": {"note": "patched", "version": 1}})),
    ("/api/v1/{entity}/{id:recordid}", "DELETE"): Call("entity/delete", 204, fresh()),
    ("/api/v1/{entity}/{id:recordid}/history", "GET"): Call("entity/read", params=deal),
    ("/api/v1/{entity}/{id:recordid}/stages", "GET"): Call("entity/read", params=deal),
    ("/api/v1/{entity}/{id:recordid}/related/{relation}", "GET"): Call(
        "entity/read", params=lambda w, who: {"path": {"entity": "client", "id": w.ids[f"client:{w.target}"],
                                                       "relation": "deal.client"}}),
    # Uploads: whoever may create or update records of an entity with a file field (deals);
    # the outsider, who only reads clients, may not (403: no record is hidden by saying so).
    ("/api/v1/_files", "POST"): Call("signed", 201, lambda w, who: {
        "files": {"file": ("upload.png", PICTURE, "image/png")}}, expect={"outsider": 403}),
    # A stored file is as far in reach as the record holding it (a deal's papers): whoever
    # cannot read the deal gets 404, as for a file that does not exist.
    ("/api/v1/_files/{id:recordid}", "GET"): Call("entity/read", params=paper),
    ("/api/v1/_files/{id:recordid}/content", "GET"): Call("entity/read", params=paper),
    ("/api/v1/_files/{id:recordid}/thumbnail", "GET"): Call("entity/read", params=paper),
    ("/files/{id:recordid}", "GET"): Call("entity/read", params=paper),
    ("/files/{id:recordid}/thumbnail", "GET"): Call("entity/read", params=paper),
    ("/", "GET"): Call("signed"),
    ("/favicon.ico", "GET"): Call("signed", 204),
    ("/search", "GET"): Call("signed", query="q=MK"),
    ("/e/{entity}", "GET"): Call("entity/read", params=admin_path(entity="deal")),
    ("/e/{entity}/export.csv", "GET"): Call("entity/export", params=admin_path(entity="deal")),
    ("/e/{entity}/bulk", "POST"): Call("entity/update", params=lambda w, who: {
        "path": {"entity": "deal"}, "data": {"ids": str(w.fresh_deal()), "action": "set",
                                             "field": "note", "value": "bulk"}}),
    ("/e/{entity}/new", "GET"): Call("entity/create", params=admin_path(entity="deal")),
    ("/e/{entity}/new", "POST"): Call("entity/create", 303, new_deal_form),
    ("/e/{entity}/validate", "POST"): Call("entity/create", params=new_deal_form),
    ("/e/{entity}/options", "GET"): Call("entity/read", params=admin_path(entity="deal"), query="q=MK"),
    # The picker of a polymorphic reference: the records of its targets the user may read.
    ("/e/{entity}/fields/{field}/options", "GET"): Call(
        "entity/read", params=admin_path(entity="deal", field="about"), query="q=MK"),
    ("/e/{entity}/board/{pipeline}", "GET"): Call("entity/read",
                                                  params=admin_path(entity="deal", pipeline="flow")),
    ("/e/{entity}/calendar", "GET"): Call("entity/read", params=admin_path(entity="deal"),
                                          query="field=closes&date=2026-12-01"),
    ("/e/{entity}/{id:recordid}", "GET"): Call("entity/read", params=deal),
    ("/e/{entity}/{id:recordid}/preview", "GET"): Call("entity/read", params=deal),
    ("/e/{entity}/{id:recordid}/edit", "GET"): Call("entity/update", params=deal),
    ("/e/{entity}/{id:recordid}/edit", "POST"): Call("entity/update", 303, fresh(lambda w, made: {"data": {
        "name": w.unique("Edited deal"), "client": str(w.ids["client:rep"]), "status": "open",
        "version": "1"}})),
    ("/e/{entity}/{id:recordid}/validate", "POST"): Call("entity/update", params=fresh(
        lambda w, made: {"data": {"name": "Checked"}})),
    ("/e/{entity}/{id:recordid}/move", "POST"): Call("entity/update", 303, fresh(lambda w, made: {"data": {
        "field": "status", "stage": "won", "version": "1"}})),
    ("/e/{entity}/{id:recordid}/reschedule", "PATCH"): Call("entity/update", params=fresh(
        lambda w, made: {"data": {"field": "closes", "date": "2026-12-20", "version": "1"}})),
    # Linking through a many-to-many changes the record holding the field: an update.
    ("/e/{entity}/{id:recordid}/links/{relation}", "POST"): Call("entity/update", 303, link_partner),
    ("/e/{entity}/{id:recordid}/delete", "GET"): Call("entity/delete", params=deal),
    ("/e/{entity}/{id:recordid}/delete", "POST"): Call("entity/delete", 303, fresh(lambda w, made: {"data": {
        "version": "1"}})),
    ("/me", "GET"): Call("signed"),
    ("/me/tokens", "POST"): Call("signed", params=lambda w, who: {
        "data": {"name": w.unique("ui tok"), "scopes": "read", "expires": "30d"}}),
    ("/me/tokens/{token_id:recordid}/revoke", "POST"): Call("signed", 303, own_token),
    ("/admin/users", "GET"): Call("right/manage_users"),
    ("/admin/users/new", "GET"): Call("right/manage_users"),
    ("/admin/users/new", "POST"): Call("right/manage_users", 303, lambda w, who: {"data": {
        "email": f"{w.unique('ui-new')}@matrix.example", "name": "New Person", "time_zone": "UTC",
        "locale": "en"}}),
    ("/admin/users/{user_id:recordid}", "GET"): Call("right/manage_users", params=user),
    ("/admin/users/{user_id:recordid}", "POST"): Call("right/manage_users", 303, lambda w, who: {
        **fresh_user(w, who), "data": {"name": "Renamed Person", "time_zone": "UTC", "locale": "en"}}),
    ("/admin/users/{user_id:recordid}/disable", "POST"): Call("right/manage_users", 303, fresh_user),
    ("/admin/users/{user_id:recordid}/enable", "POST"): Call("right/manage_users", 303, fresh_user),
    ("/admin/users/{user_id:recordid}/password-reset", "POST"): Call("right/manage_users", 303, fresh_user),
    ("/admin/users/{user_id:recordid}/tokens/{token_id:recordid}/revoke", "POST"): Call(
        "right/manage_users", 303, rep_token),
}


def app_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(path, method) of every route, mounts included (a mount's own routes, or the mount
    itself as GET when it is an app such as the static files); HEAD goes with GET."""
    for route in routes:
        if isinstance(route, Mount):
            if route.routes:
                yield from app_routes(list(route.routes), prefix + route.path)
            else:
                yield prefix + route.path, "GET"
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield prefix + route.path, method
        else:
            raise AssertionError(f"a route of a kind the matrix does not know: {route!r}")


def fill(path: str, values: dict[str, Any]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
        for convertor in (":recordid", ":collection", ":path"):
            path = path.replace("{" + name + convertor + "}", str(value))
    if path.startswith("/static"):
        path = "/static" + str(values["path"])
    assert "{" not in path, f"a path parameter of {path} has no value in the table"
    return path


CELLS = [(route, method, who) for (route, method) in TABLE for who in WHO]
CELLS += [(route, "HEAD", who) for (route, method) in TABLE if method == "GET" for who in WHO]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for url in database_urls(request, tmp_path_factory):
        yield from build(url)


def test_every_route_is_in_the_table(world: World) -> None:
    routes = set(app_routes(list(world.app.routes)))
    missing = sorted(routes - set(TABLE))
    assert not missing, f"routes without an entry in the access matrix's TABLE: {missing}"
    stale = sorted(set(TABLE) - routes)
    assert not stale, f"TABLE entries for routes the app no longer has: {stale}"
    size = len(CELLS)
    print(f"access matrix: {len(TABLE)} routes x methods (+{size // len(WHO) - len(TABLE)} HEAD) "
          f"x {len(WHO)} users = {size} cells")
    assert size == (len(TABLE) + sum(m == "GET" for _, m in TABLE)) * len(WHO)


@pytest.mark.parametrize(("route", "method", "who"), CELLS, ids=[f"{m} {r} {w}" for r, m, w in CELLS])
def test_cell(request: pytest.FixtureRequest, world: World, route: str, method: str, who: str) -> None:
    call = TABLE[(route, "GET" if method == "HEAD" else method)]
    if who in call.xfail:  # still called: it passes (XPASS) once the bug is fixed
        request.node.add_marker(pytest.mark.xfail(reason=call.xfail[who], strict=False))
    spec = call.params(world, who)
    url = fill(route, spec.get("path", {})) + (f"?{call.query}" if call.query else "")
    api = url.startswith("/api/")
    with world.client(who) as http:
        answer = http.request(method, url, json=spec.get("json"), data=spec.get("data"),
                                  files=spec.get("files"))
    expected = call.status(who, api)
    assert answer.status_code == expected, (
        f"{method} {url} as {who}: {answer.status_code}, expected {expected}: {answer.text[:300]}")
    if who == "anonymous" and call.kind != "public":
        if api:
            assert answer.headers.get("www-authenticate", "").startswith("Bearer")
        else:
            assert answer.headers["location"].startswith("/login?next=")
    if method == "HEAD":
        assert answer.content == b""
    shown = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    for owner in OWNERS:
        if owner not in REACH[who]:
            for kind in ("deal", "client"):
                assert marker(kind, owner) not in shown, (
                    f"{method} {url} as {who} shows {owner}'s {kind}, out of their reach")


#: The record routes, called on a record of `other` (nobody's reach but the administrator's).
RECORD_ROUTES = [(route, method) for (route, method), call in TABLE.items()
                 if call.kind.startswith("entity/") and "{id" in route]


@pytest.mark.parametrize(("route", "method"), RECORD_ROUTES, ids=[f"{m} {r}" for r, m in RECORD_ROUTES])
def test_records_out_of_reach_are_not_found(world: World, route: str, method: str) -> None:
    """The same routes on another user's record: 404 for the rep and the manager (whose
    scopes do not reach it) as for a record that does not exist, and nothing of it shown."""
    call = TABLE[(route, method)]
    world.target = "other"
    try:
        for who in ("rep", "manager"):
            spec = call.params(world, who)
            url = fill(route, spec.get("path", {}))
            with world.client(who) as http:
                answer = http.request(method, url, json=spec.get("json"), data=spec.get("data"),
                                  files=spec.get("files"))
            assert answer.status_code == 404, f"{method} {url} as {who}: {answer.status_code}"
            assert "OTHER" not in answer.text, f"{method} {url} as {who} shows: {answer.text[:300]}"
    finally:
        world.target = "rep"


def test_the_markers_show_where_they_are_in_reach(world: World) -> None:
    """The matrix's leak check can fire: the markers it looks for are in the pages of the
    users who may see them."""
    for who, listing in (("admin", "/e/deal"), ("manager", "/api/v1/deal"), ("rep", "/search?q=MK"),
                         ("manager", "/e/deal/calendar?field=closes&mode=day&date=2026-12-15")):
        with world.client(who) as http:
            body = http.get(listing).text
        for owner in OWNERS:
            assert (marker("deal", owner) in body) == (owner in REACH[who]), (who, listing, owner)


def test_head_changes_nothing(world: World) -> None:
    """HEAD is GET without the body, even on routes that also take POST: it once ran the
    unsafe branch, past the CSRF check and a read-only token's scope (both let HEAD through)."""
    target, someone = world.fresh_deal(), world.fresh_user()
    engine = world.app.state.engine
    before = users.get_by_id(engine, someone)
    with world.client("admin") as http:
        del http.headers["x-csrftoken"]  # as a cross-site HEAD would come
        assert http.head(f"/e/deal/{target}/delete").status_code == 200
        assert http.head(f"/e/deal/{target}/edit").status_code == 200
        assert http.head(f"/admin/users/{someone}").status_code != 303  # the POST branch's answer
    read_only = bearer(engine, EMAILS["admin"], scopes=("read", "admin"))
    with TestClient(world.app, headers=read_only) as http:
        assert http.head(f"/api/v1/admin/users/{someone}").status_code == 200
        assert http.head("/api/v1/me/tokens").status_code == 200
    assert world.records.get("deal", target).version == 1
    assert users.get_by_id(engine, someone) == before
