"""The designer's pack pages: `/admin/packs` lists the installed packs (name, version, title,
what they require and define) and takes a pack .zip upload; the upload is checked (its
problems shown at file:line) and planned, and installed on confirmation.

The upload is read within the app's upload limit and looked at before anything is unpacked:
a member with an absolute path or `..` is refused (naming it), and so is an archive that
unpacks to more than the limit. Nothing is written where a member's name says: the pack is
read from the archive in memory (metamodel/packs.py). The plan page carries the archive
back (base64, in a multipart form) so that Install re-checks and re-plans exactly what was
shown, and installs it only against the revision the plan was made on (as the CLI's `pack
install` does, through installer.py; an installed name is an upgrade from its version).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from slatecrm.metamodel.errors import DefinitionError, Problem
from slatecrm.metamodel.packs import Pack, load_pack

from .. import installer
from ..layers import installed_packs
from ..workflows.worker import reconcile
from .admin import MANAGE_METAMODEL
from .api import service
from .designer_plans import Outcome, decided, plan_page, shown
from .rights import checked_right, principal_of
from .templating import render
from .uicontext import base_context

#: The multipart part of the upload form, and the plan page's field carrying the archive back.
UPLOAD_PART = "pack"
ARCHIVE_FIELD = "archive"
NAME_FIELD = "filename"
#: Members an uploaded archive may hold.
MAX_MEMBERS = 2000
#: Installing needs this right besides manage_metamodel (the administrator holds both).
INSTALL_PACKS = "install_packs"


class Refused(Exception):
    """An upload refused before it is read as a pack: the problems to show."""

    def __init__(self, problems: list[dict[str, Any]]):
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems


def _problem(message: str, where: str = "") -> dict[str, Any]:
    return {"where": where, "path": "", "message": message}


def checked_archive(data: bytes, name: str, limit: int) -> None:
    """Refuse what is not a zip, a member that would land outside the pack (absolute, `..`),
    and an archive whose members add up past `limit` bytes (a zip bomb)."""
    if len(data) > limit:
        raise Refused([_problem(f"the file is larger than the upload limit of {limit:,} bytes", name)])
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Refused([_problem("is not a .zip file: upload the pack folder zipped", name)]) from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise Refused([_problem(f"holds {len(members):,} files; a pack holds at most {MAX_MEMBERS:,}",
                                    name)])
        unsafe = [m.filename for m in members if _escapes(m.filename)]
        if unsafe:
            raise Refused([_problem("a member's path is absolute or leaves the pack folder (..): refused",
                                    f"{name}/{u}") for u in unsafe[:20]])
        if sum(m.file_size for m in members) > 4 * limit:
            raise Refused([_problem(f"unpacks to more than {4 * limit:,} bytes", name)])


def _escapes(member: str) -> bool:
    """Whether a member's path is absolute (also a Windows drive or backslash root) or climbs out."""
    posix = member.replace("\\", "/")
    return posix.startswith("/") or ".." in PurePosixPath(posix).parts or (len(posix) > 1 and posix[1] == ":")


def read_upload(data: bytes, name: str, limit: int, registry: Any) -> Pack:
    """The uploaded archive as a pack, or Refused with its problems at file:line."""
    checked_archive(data, name, limit)
    with tempfile.TemporaryDirectory(prefix="slatecrm-pack-") as folder:
        path = Path(folder) / "upload.zip"
        path.write_bytes(data)
        try:
            return load_pack(path, registry)
        except DefinitionError as error:
            raise Refused([_placed(p, str(path), name) for p in error.problems]) from None


def _placed(problem: Problem, origin: str, name: str) -> dict[str, Any]:
    """A problem at its place: in the upload, `name/file:line`; else in the pack it names."""
    source = name if problem.pack == origin else problem.pack
    where = f"{source}/{problem.location}" if problem.location.file else source or str(problem.location)
    return {"where": where, "path": problem.location.path, "message": problem.message}


def _defines(pack: Pack) -> dict[str, list[str]]:
    return {"entities": [e.name for e in pack.entities],
            "extensions": [x.entity for x in pack.extensions],
            "roles": [r.name for r in pack.roles],
            "workflows": [w.name for w in pack.workflows]}


def pack_view(pack: Pack) -> dict[str, Any]:
    return {"name": pack.name, "version": pack.version, "title": pack.manifest.title,
            "description": pack.manifest.description,
            "requires": [f"{r.pack} {r.range}" for r in pack.manifest.requires], "defines": _defines(pack)}


def _installed(request: Request) -> list[dict[str, Any]]:
    records = service(request)
    with request.app.state.engine.connect() as conn:
        return [pack_view(p) for p in installed_packs(conn, records.registry)]


async def _packs_page(request: Request, *, problems: list[dict[str, Any]] | None = None,
                      status: int = 200) -> Response:
    installed = await run_in_threadpool(_installed, request)
    context = await base_context(request, title="Packs")
    return render(request, "designer_packs", {**context, "packs": installed, "problems": problems or [],
                                              "part": UPLOAD_PART},
                  twin={"data": installed, "problems": problems or []}, status=status)


async def packs_page(request: Request) -> Response:
    await checked_right(request, MANAGE_METAMODEL)
    return await _packs_page(request)


def _limit(request: Request) -> int:
    limit: int = service(request).files.max_upload
    return limit


async def upload(request: Request) -> Response:
    """The uploaded .zip checked and planned: its problems, or its plan with Install / Cancel."""
    await checked_right(request, MANAGE_METAMODEL)
    await checked_right(request, INSTALL_PACKS)
    async with request.form(max_files=1, max_fields=10) as form:
        part = form.get(UPLOAD_PART)
        if not isinstance(part, UploadFile) or not part.filename:
            return await _packs_page(request, problems=[_problem("choose a pack .zip file to upload")],
                                     status=422)
        name = PurePosixPath(part.filename.replace("\\", "/")).name or "pack.zip"
        data = await part.read(_limit(request) + 1)
    return await _planned(request, data, name, confirm=None)


async def install(request: Request) -> Response:
    """Install the archive the plan page carried back, if the plan is still the one shown."""
    await checked_right(request, MANAGE_METAMODEL)
    await checked_right(request, INSTALL_PACKS)
    limit = _limit(request)
    async with request.form(max_files=0, max_fields=10, max_part_size=2 * limit + 1024) as form:
        text, name = str(form.get(ARCHIVE_FIELD) or ""), str(form.get(NAME_FIELD) or "pack.zip")
        confirm = str(form.get("confirm") or "")
        fingerprint = form.get("plan_digest")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        damaged = _problem("the pack sent back is damaged: upload it again")
        return await _packs_page(request, problems=[damaged], status=422)
    return await _planned(request, data, name, confirm=confirm,
                         fingerprint=fingerprint if isinstance(fingerprint, str) else None)


async def _planned(request: Request, data: bytes, name: str, *, confirm: str | None,
                   fingerprint: str | None = None) -> Response:
    """Check and plan the archive; show its plan (designer_plans.plan_page), or install it when
    `confirm` and `fingerprint` are the plan's (designer_plans.decided)."""
    records = service(request)
    engine = request.app.state.engine
    try:
        pack = await run_in_threadpool(read_upload, data, name, _limit(request), records.registry)
        if confirm is None:  # a newer version of an installed pack: its three-way merge first
            from .designer_pack_lifecycle import is_upgrade, upgrade_review
            if await run_in_threadpool(is_upgrade, request, pack):
                return await upgrade_review(request, pack, data, name)
        installation = await run_in_threadpool(installer.plan_install, engine, [pack], records.registry,
                                               functions=records.functions)
    except Refused as refused:
        return await _packs_page(request, problems=refused.problems, status=422)
    except DefinitionError as error:
        return await _packs_page(request, problems=[_placed(p, pack.origin, name) for p in error.problems],
                                 status=422)
    plan = shown(installation.plan, installation.source, hashlib.sha256(data).hexdigest())
    sent = {} if confirm is None else {"confirm": confirm, "plan_digest": fingerprint}
    outcome = decided(plan, sent, replayed=True)
    if installation.is_empty:
        nothing = f"Pack {pack.name} {pack.version} is installed as it is: nothing to do."
        outcome = Outcome(plan, {"": [nothing]}, 200)
    if outcome is not None:
        changes = [{"name": c.name, "before": c.before, "after": c.after, "verb": c.verb}
                   for c in installation.pack_changes]
        return await plan_page(
            request, outcome, title=f"Install pack {pack.name} {pack.version}", back="/admin/packs",
            action="/admin/packs/install", template="designer_packs_plan", apply_label="Install",
            applicable=not installation.is_empty, multipart=True,
            fields=[(ARCHIVE_FIELD, base64.b64encode(data).decode()), (NAME_FIELD, name)],
            shows={"pack": pack_view(pack), "changes": changes})
    principal = principal_of(request)
    user = principal.user_id
    await run_in_threadpool(installer.install, engine, installation,
                            author=f"designer (user {user})" if user is not None else "designer",
                            principal=principal)
    records.holder.refresh()
    await run_in_threadpool(reconcile, engine, records, dt.datetime.now(dt.UTC))
    return RedirectResponse(f"/admin/packs?installed={pack.name}", status_code=303)


routes = [
    Route("/admin/packs", packs_page, methods=["GET"]),
    Route("/admin/packs/upload", upload, methods=["POST"]),
    Route("/admin/packs/install", install, methods=["POST"]),
]
