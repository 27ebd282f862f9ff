"""The designer's pack lifecycle past a first install: upgrade, uninstall and export, the
same operations as the CLI's `pack upgrade`, `pack uninstall` and `pack export`
(packupgrade.py, uninstall.py, packexport.py), so that the pages and the commands cannot
disagree.

- Upgrade: an uploaded newer version of an installed pack (designer_packs.py hands it
  here) shows the three-way merge: the new version's changes, the customisations kept and
  the conflicts, each with its installed / new / organisation's value and a choice. Apply
  sends the archive back with the choices and the revision the page was made on; a conflict
  left, or another change applied meanwhile, refuses it and shows the merge again.
- Uninstall: the plan (what is retired, data kept), or the refusal naming what stands in
  the way; with purge, the rows it deletes, confirmed by typing their total (like the
  CLI's `--confirm-rows`), not by a click.
- Export: the organisation's layer (or every layer) as a pack .zip download; what would not
  install is an error in the form, not a broken file.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import zipfile
from typing import Any

import semantic_version
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.packs import Pack

from .. import packexport, packupgrade
from ..layers import installed_packs
from ..storage import revisions as revision_store
from ..threeway import MINE, NEW, Leaf
from ..uninstall import Uninstallation, plan_uninstall, uninstall
from ..workflows.worker import reconcile
from .admin import MANAGE_METAMODEL
from .api import service
from .designer_packs import (
    ARCHIVE_FIELD,
    INSTALL_PACKS,
    NAME_FIELD,
    Refused,
    _limit,
    _packs_page,
    _placed,
    _problem,
    pack_view,
    read_upload,
)
from .rights import checked_right, principal_of
from .templating import render
from .uicontext import base_context

#: A conflict's choice comes back as the form field `resolve:<path>` = new | mine.
RESOLVE = "resolve:"


def is_upgrade(request: Request, pack: Pack) -> bool:
    """Whether `pack` is a newer version of an installed pack (an older or the same version
    is left to the install path, which refuses or reports it)."""
    records = service(request)
    with request.app.state.engine.connect() as conn:
        old = next((p for p in installed_packs(conn, records.registry) if p.name == pack.name), None)
    return old is not None and semantic_version.Version(pack.version) > semantic_version.Version(old.version)


def _head(request: Request) -> int:
    with request.app.state.engine.connect() as conn:
        return revision_store.head_id(conn)


def _author(request: Request) -> str:
    user = principal_of(request).user_id
    return f"designer (user {user})" if user is not None else "designer"


def _stale(what: str, confirm: str, head: int) -> str:
    return (f"Another change was applied meanwhile: the {what} you saw was against revision "
            f"{confirm or '?'}, "
            f"this one is against revision {head}. Review it and apply again.")


async def _after_change(request: Request) -> None:
    """What an applied revision needs: the app's metamodel, and the workflows' registrations."""
    records = service(request)
    records.holder.refresh()
    await run_in_threadpool(reconcile, request.app.state.engine, records, dt.datetime.now(dt.UTC))


# --- upgrade ----------------------------------------------------------------------------------
def _leaf(leaf: Leaf, chosen: str | None = None) -> dict[str, Any]:
    return {**leaf.as_dict(), "choices": list(leaf.choices), "chosen": chosen}


async def upgrade_review(request: Request, pack: Pack, data: bytes, name: str,
                         resolutions: dict[str, str] | None = None, *, notice: str | None = None,
                         status: int = 200) -> Response:
    """The merge of an upgrade and its plan once no conflict is left, with the form that
    applies it (the archive, the choices, the revision it was made on)."""
    records = service(request)
    engine = request.app.state.engine
    try:
        upgrade = await run_in_threadpool(packupgrade.plan_upgrade, engine, pack, records.registry,
                                          resolutions or {}, functions=records.functions)
    except DefinitionError as error:
        return await _packs_page(request, problems=[_placed(p, pack.origin, name) for p in error.problems],
                                 status=422)
    head = await run_in_threadpool(_head, request)
    if notice is None and upgrade.plan is not None and upgrade.plan.blocked:
        notice, status = "The upgrade puts existing data at risk (see the plan); it cannot be applied.", 409
    shown = upgrade.as_dict()
    view = {
        "pack": pack_view(pack), "before": upgrade.before, "changes": list(upgrade.changes),
        "kept": [_leaf(leaf) for leaf in upgrade.kept],
        "conflicts": [*(_leaf(leaf, how) for leaf, how in upgrade.resolved),
                      *(_leaf(leaf) for leaf in upgrade.conflicts)],
        "unresolved": len(upgrade.conflicts), "notice": notice, "revision": head,
        "plan": {**upgrade.plan.as_dict(), "summary": upgrade.source} if upgrade.plan is not None else None,
    }
    context = await base_context(request, title=f"Upgrade pack {pack.name} {upgrade.before} → {pack.version}")
    return render(request, "designer_pack_upgrade", {
        **context, **view, "archive": base64.b64encode(data).decode(), "filename": name,
        "applicable": upgrade.plan is not None and not upgrade.plan.blocked, "resolve": RESOLVE},
        twin={**shown, "revision": head, "notice": notice}, status=status)


async def apply_upgrade(request: Request) -> Response:
    """Apply the upgrade the page showed, with the choices made, if nothing changed since."""
    await checked_right(request, MANAGE_METAMODEL)
    await checked_right(request, INSTALL_PACKS)
    limit = _limit(request)
    async with request.form(max_files=0, max_fields=500, max_part_size=2 * limit + 1024) as form:
        text, name = str(form.get(ARCHIVE_FIELD) or ""), str(form.get(NAME_FIELD) or "pack.zip")
        confirm = str(form.get("confirm") or "")
        resolutions = {key[len(RESOLVE):]: str(value) for key, value in form.multi_items()
                       if key.startswith(RESOLVE) and str(value) in (NEW, MINE)}
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        damaged = _problem("the pack sent back is damaged: upload it again")
        return await _packs_page(request, problems=[damaged], status=422)
    records = service(request)
    try:
        pack = await run_in_threadpool(read_upload, data, name, limit, records.registry)
    except Refused as refused:
        return await _packs_page(request, problems=refused.problems, status=422)
    engine = request.app.state.engine
    try:
        upgrade = await run_in_threadpool(packupgrade.plan_upgrade, engine, pack, records.registry,
                                          resolutions, functions=records.functions)
    except DefinitionError as error:  # a choice for no conflict, or `mine` where only `new` can stay
        refusal = "; ".join(p.message for p in error.problems) + ". Nothing was changed."
        return await upgrade_review(request, pack, data, name, notice=refusal, status=422)
    head = await run_in_threadpool(_head, request)
    if upgrade.conflicts:
        left = len(upgrade.conflicts)
        notice = (f"{left} conflict{'s' if left != 1 else ''} left unresolved: choose, for each, to keep the "
                  "organisation's value or take the new version's. Nothing was changed.")
        return await upgrade_review(request, pack, data, name, resolutions, notice=notice, status=409)
    if confirm != str(head):
        notice = _stale("merge", confirm, head)
        return await upgrade_review(request, pack, data, name, resolutions, notice=notice, status=409)
    if upgrade.refused:
        return await upgrade_review(request, pack, data, name, resolutions, status=409)
    await run_in_threadpool(packupgrade.apply_upgrade, engine, upgrade, author=_author(request),
                            principal=principal_of(request))
    await _after_change(request)
    return RedirectResponse(f"/admin/packs?upgraded={pack.name}", status_code=303)


# --- uninstall --------------------------------------------------------------------------------
async def _uninstall_page(request: Request, name: str, purge: bool, *, notice: str | None = None,
                          errors: dict[str, list[str]] | None = None, status: int = 200) -> Response:
    records = service(request)
    engine = request.app.state.engine
    planned: Uninstallation | None = None
    refusal: list[str] = []
    try:
        planned = await run_in_threadpool(plan_uninstall, engine, name, records.registry, purge=purge,
                                          functions=records.functions)
    except DefinitionError as error:
        refusal = [p.message for p in error.problems]
        status = 409
    head = await run_in_threadpool(_head, request)
    plan = {**planned.plan.as_dict(), "summary": planned.source} if planned is not None else None
    if planned is not None and planned.plan.blocked and notice is None:
        notice, status = "Uninstalling puts existing data at risk (see the plan); it cannot be applied.", 409
    deleted = [{"change": c, "rows": rows} for c, rows in planned.deleted_rows] if planned and purge else []
    view = {"name": name, "purge": purge, "refusal": refusal, "notice": notice, "plan": plan,
            "deleted": deleted, "rows_total": planned.rows_total if planned and purge else 0,
            "version": planned.version if planned else None, "revision": head, "errors": errors or {},
            "applicable": planned is not None and not planned.plan.blocked}
    context = await base_context(request, title=f"Uninstall pack {name}" + (" (purge)" if purge else ""))
    return render(request, "designer_pack_uninstall", {**context, **view}, twin=view, status=status)


async def uninstall_page(request: Request) -> Response:
    """The plan of uninstalling the pack (`?purge=1`: and deleting its data), or why not."""
    await checked_right(request, MANAGE_METAMODEL)
    await checked_right(request, INSTALL_PACKS)
    purge = request.query_params.get("purge") in ("1", "true", "on")
    return await _uninstall_page(request, request.path_params["name"], purge)


async def apply_uninstall(request: Request) -> Response:
    """Uninstall as planned on the page: the same revision, and for a purge the row count typed."""
    await checked_right(request, MANAGE_METAMODEL)
    await checked_right(request, INSTALL_PACKS)
    name = request.path_params["name"]
    async with request.form(max_files=0, max_fields=10) as form:
        purge = str(form.get("purge") or "") in ("1", "true", "on")
        confirm = str(form.get("confirm") or "")
        rows = str(form.get("rows") or "").strip()
    records = service(request)
    engine = request.app.state.engine
    try:
        planned = await run_in_threadpool(plan_uninstall, engine, name, records.registry, purge=purge,
                                          functions=records.functions)
    except DefinitionError:
        return await _uninstall_page(request, name, purge)
    head = await run_in_threadpool(_head, request)
    if confirm != str(head):
        notice = _stale("plan", confirm, head)
        return await _uninstall_page(request, name, purge, notice=notice, status=409)
    if planned.plan.blocked:
        return await _uninstall_page(request, name, purge, status=409)
    total = planned.rows_total
    if purge and total and rows != str(total):
        given = f"not {rows}" if rows else "none was typed"
        wrong = {"rows": [f"the purge deletes {total:,} row(s) for good: type {total} to confirm ({given}); "
                          "nothing was changed"]}
        return await _uninstall_page(request, name, purge, errors=wrong, status=422)
    await run_in_threadpool(uninstall, engine, planned, author=_author(request),
                            principal=principal_of(request))
    await _after_change(request)
    return RedirectResponse(f"/admin/packs?uninstalled={name}", status_code=303)


# --- export -----------------------------------------------------------------------------------
async def _export_page(request: Request, values: dict[str, str], errors: dict[str, list[str]] | None = None,
                       status: int = 200) -> Response:
    context = await base_context(request, title="Export a pack")
    view = {"values": values, "errors": errors or {}, "layers": packexport.LAYERS}
    return render(request, "designer_pack_export", {**context, **view}, twin=view, status=status)


async def export_page(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    return await _export_page(request, {"layer": "organisation", "name": "", "version": "1.0.0"})


def _exported(request: Request, layer: str, name: str, version: str) -> Pack:
    records = service(request)
    with request.app.state.engine.connect() as conn:
        pack, _ = packexport.export(conn, records.registry, layer=layer, name=name, version=version,
                                    functions=records.functions)
    return pack


def zipped(files: dict[str, str], folder: str) -> bytes:
    """A pack's files as a .zip under one top folder, as packexport.write writes one."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel, text in sorted(files.items()):
            archive.writestr(f"{folder}/{rel}", text)
    return out.getvalue()


async def export(request: Request) -> Response:
    """The exported pack as a .zip download, or the form with what stands in the way."""
    await checked_right(request, MANAGE_METAMODEL)
    async with request.form(max_files=0, max_fields=10) as form:
        values = {k: str(form.get(k) or "").strip() for k in ("layer", "name", "version")}
    errors: dict[str, list[str]] = {}
    if values["layer"] not in packexport.LAYERS:
        errors["layer"] = [f"choose one of {', '.join(packexport.LAYERS)}"]
    if not values["name"]:
        errors["name"] = ["give the exported pack a name"]
    if not values["version"]:
        errors["version"] = ["give it a version (semantic: 1.0.0)"]
    if errors:
        return await _export_page(request, values, errors, 422)
    try:
        pack = await run_in_threadpool(_exported, request, values["layer"], values["name"], values["version"])
    except DefinitionError as error:
        found = [f"{p.location}: {p.message}" if p.location.file else p.message for p in error.problems]
        return await _export_page(request, values, {"": found}, 422)
    folder = f"{values['name']}-{values['version']}"
    return Response(zipped(dict(pack.files), folder), media_type="application/zip",
                    headers={"content-disposition": f'attachment; filename="{folder}.zip"'})


routes = [
    Route("/admin/packs/upgrade", apply_upgrade, methods=["POST"]),
    Route("/admin/packs/export", export_page, methods=["GET"]),
    Route("/admin/packs/export", export, methods=["POST"]),
    Route("/admin/packs/{name}/uninstall", uninstall_page, methods=["GET"]),
    Route("/admin/packs/{name}/uninstall", apply_uninstall, methods=["POST"]),
]
