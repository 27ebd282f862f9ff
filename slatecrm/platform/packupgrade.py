"""Upgrading an installed pack: the three-way merge (threeway.py), then plan → apply.

`pack install` of a newer version replaces the installed one and merges the organisation's
layer on top as it stands: a customisation silently hides what the new version changed at
the same place, and one the new version no longer fits (a field both define, an override
of a removed field) fails the merge in the organisation's name. An upgrade compares first,
lists the kept customisations, the new version's changes and the conflicts, refuses while
a conflict is unresolved, and applies the resolutions (edits of the organisation's
documents) in the same transaction as the new version. The admin designer calls
`plan_upgrade` / `apply_upgrade` as the CLI does.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import semantic_version
import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError, Location, Problem
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.packs import Pack
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from . import installer, packexport
from .customisation import store_documents
from .identity import audit
from .identity.principal import SYSTEM, Principal
from .layers import Documents, documents, installed_packs, plan_layers
from .storage import revisions as revision_store
from .storage.plan import Plan
from .threeway import MINE, NEW, Leaf, followed, leaves, take_new
from .upgradechanges import version_changes


@dataclass(frozen=True)
class Upgrade:
    """A planned upgrade: the merge report, and the plan once no conflict is left."""

    pack: Pack
    before: str
    changes: tuple[str, ...]
    kept: tuple[Leaf, ...]
    conflicts: tuple[Leaf, ...]
    #: (path, "new" | "mine") as given, each for a conflict of the installed documents.
    resolved: tuple[tuple[Leaf, str], ...]
    #: The organisation's documents after the resolutions, and which of them changed.
    documents: Documents = field(default_factory=dict)
    changed: tuple[tuple[str, str], ...] = ()
    #: None while conflicts are left, or when the merge with them fails.
    plan: Plan | None = None

    @property
    def source(self) -> str:
        return f"upgrade {self.pack.name} {self.pack.version}"

    @property
    def refused(self) -> bool:
        return bool(self.conflicts) or self.plan is None or self.plan.blocked

    def as_dict(self) -> dict[str, Any]:
        return {
            "pack": self.pack.name, "from": self.before, "to": self.pack.version,
            "merge": {
                "changes": list(self.changes),
                "kept": [leaf.as_dict() for leaf in self.kept],
                "conflicts": [leaf.as_dict() for leaf in self.conflicts],
                "resolved": [{**leaf.as_dict(), "resolution": how} for leaf, how in self.resolved],
                "documents_changed": [f"{kind}/{name}" for kind, name in self.changed],
            },
            "plan": self.plan.as_dict() if self.plan is not None else None,
        }


def refuse(message: str, pack: Pack) -> DefinitionError:
    return DefinitionError([Problem(message, pack.manifest.locate("version"), pack.origin)])


def parse_resolutions(given: list[str]) -> dict[str, str]:
    """`PATH=new|mine` (as `--resolve` takes them), by path; a bad one is a usage error."""
    resolutions: dict[str, str] = {}
    for item in given:
        path, sep, how = item.rpartition("=")
        if not sep or not path or how not in (NEW, MINE):
            raise ValueError(f"--resolve {item!r}: write PATH=new or PATH=mine "
                             "(PATH as the conflict lists it)")
        resolutions[path] = how
    return resolutions


def plan_upgrade(engine: sa.Engine, pack: Pack, registry: FieldTypeRegistry,
                 resolutions: Mapping[str, str] = {}, *,
                 functions: RuleFunctions = NO_FUNCTIONS) -> Upgrade:
    """The three-way merge of `pack` (a newer version of an installed pack) with the
    installed version and the organisation's customisations, `resolutions` (path → "new"
    or "mine") applied; planned against the current revision when no conflict is left."""
    with engine.connect() as conn:
        base, current = revision_store.current_metamodel(conn)
        installed = installed_packs(conn, registry)
        old = next((p for p in installed if p.name == pack.name), None)
        if old is None:
            raise _not_installed(pack, installed)
        _check_newer(old, pack)
        upgraded = [pack if p.name == pack.name else p for p in installed]
        before = merge(installed, registry, functions=functions)
        after = merge(upgraded, registry, {pack.name}, functions=functions)
        stored = documents(conn)
        docs = followed(copy.deepcopy(stored), before, after)
        versions = (old, pack)
        found = leaves(docs, before, after, pack.name, versions=versions)
        resolved = _resolved(found, resolutions, pack)
        for leaf, how in resolved:
            if how == NEW:
                take_new(docs, leaf)
        adopted = tuple(leaf for leaf in found if leaf.adopts)
        for leaf in adopted:  # a replacement's key the organisation left as it was
            take_new(docs, leaf)
        kept_mine = {leaf.path for leaf, how in resolved if how == MINE}
        taken = {leaf.path for leaf in adopted}
        remaining = leaves(docs, before, after, pack.name, versions=versions)
        conflicts = tuple(leaf for leaf in remaining if leaf.conflicting and leaf.path not in kept_mine)
        # resolved ones: `resolved`
        kept = (*adopted, *(leaf for leaf in remaining if not leaf.conflicting and leaf.path not in taken))
        plan = None
        if not conflicts:
            plan = plan_layers(conn, registry, upgraded, docs, current, base, new={pack.name},
                               functions=functions)
    changed = tuple(sorted(k for k in {*stored, *docs} if stored.get(k) != docs.get(k)))
    return Upgrade(pack, old.version, tuple(version_changes(before, after, pack.name)), kept, conflicts,
                   tuple(resolved), docs, changed, plan)


def _not_installed(pack: Pack, installed: list[Pack]) -> DefinitionError:
    """Why there is nothing to upgrade. An `export --layer all` claims its source packs'
    definitions as its own: a new version of a source pack cannot be installed next to it
    (one entity defined twice), nor can the export next to its source packs; told so by
    name rather than advising an install the merge would refuse."""
    holder = next((p for p in installed if pack.name in packexport.sources(p)), None)
    if holder is not None:
        return refuse(f"pack {pack.name} is not installed here: its definitions were installed as part of "
                      f"pack {holder.name} {holder.version}, an `export --layer all` that claims them as "
                      f"its own, so a new version of {pack.name} cannot be merged into it (nor installed "
                      f"next to it); export --layer all again from a database where {pack.name} "
                      f"{pack.version} is installed, and upgrade {holder.name} with that export", pack)
    claimed = [p.name for p in installed if p.name in packexport.sources(pack)]
    if claimed:
        return refuse(f"pack {pack.name} is an `export --layer all` holding the definitions of "
                      f"{', '.join(claimed)}, installed here: it claims them as its own, so it cannot be "
                      "installed or upgraded next to them; it is for a database without them (`slatecrm "
                      f"init --no-default-packs`): upgrade {', '.join(claimed)} with their new versions",
                      pack)
    return refuse(f"pack {pack.name} is not installed here, so there is nothing to upgrade: "
                  f"install it with `slatecrm pack install {pack.origin or pack.name}`", pack)


def _check_newer(old: Pack, pack: Pack) -> None:
    before, after = semantic_version.Version(old.version), semantic_version.Version(pack.version)
    if after < before:
        raise refuse(f"pack {pack.name} {old.version} is installed; {pack.version} is older "
                     "(downgrades are refused)", pack)
    if after == before:
        same = old.checksum == pack.checksum
        raise refuse(f"pack {pack.name} {pack.version} is installed already"
                     + (": nothing to upgrade" if same else " with other content: give the changed "
                        "pack a new version"), pack)


def _resolved(found: list[Leaf], resolutions: Mapping[str, str], pack: Pack) -> list[tuple[Leaf, str]]:
    """The conflicts `resolutions` name, each with its resolution; a path that is no conflict,
    or `mine` where only the new version can win, is refused (naming the conflicts)."""
    conflicts = {leaf.path: leaf for leaf in found if leaf.conflicting}
    problems: list[Problem] = []
    resolved: list[tuple[Leaf, str]] = []
    for path, how in resolutions.items():
        leaf = conflicts.get(path)
        if leaf is None:
            listed = ", ".join(conflicts) or "none"
            problems.append(Problem(f"--resolve {path}={how}: there is no conflict at {path} "
                                    f"(conflicts: {listed})", Location(path=path), pack.origin))
        elif how not in leaf.choices:
            problems.append(Problem(f"--resolve {path}={how}: {leaf.reason}, so the organisation's cannot be "
                                    f"kept; resolve it with {path}=new (or change the organisation's "
                                    f"{leaf.document_name} first)", Location(path=path), pack.origin))
        else:
            resolved.append((leaf, how))
    if problems:
        raise DefinitionError(problems)
    return resolved


def apply_upgrade(engine: sa.Engine, upgrade: Upgrade, *, author: str,
                  principal: Principal = SYSTEM) -> int:
    """Apply a planned upgrade without conflicts: the new version, the resolutions' edits of
    the organisation's documents and the audit events, in one transaction and revision."""
    if upgrade.refused or upgrade.plan is None:
        raise refuse(f"the upgrade of {upgrade.pack.name} has {len(upgrade.conflicts)} conflict(s) "
                     "left or a plan that puts data at risk; nothing was changed", upgrade.pack)
    change = installer.PackChange(upgrade.pack.name, upgrade.before, upgrade.pack.version,
                                  upgrade.pack.checksum)
    installation = installer.Installation(upgrade.plan, (upgrade.pack,), (change,))

    def store(conn: sa.Connection, revision: int) -> None:
        if not upgrade.changed:
            return
        now = dt.datetime.now(dt.UTC)
        store_documents(conn, upgrade.documents, upgrade.changed, revision, now)
        audit.record(conn, "metamodel.change", principal=principal, at=now,
                     user_name=author if principal.unrestricted else None,
                     object_kind="revision", object_id=revision,
                     detail={"summary": f"conflicts resolved for {upgrade.source}", "revision": revision,
                             "resolved": [f"{leaf.path}={how}" for leaf, how in upgrade.resolved],
                             "changed": [f"{kind}/{name}" for kind, name in upgrade.changed]})

    return installer.install(engine, installation, author=author, principal=principal, also=store)
