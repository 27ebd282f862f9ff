"""Installing packs: installed packs + new ones → merged metamodel → plan → apply.

The packs' files are stored with the installation, so the next install can merge the
installed packs again from exactly what was installed (not from whatever is on disk).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import semantic_version
import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError, Problem
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.packs import Pack, load_pack
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from . import threeway
from .identity import audit
from .identity.principal import SYSTEM, Principal
from .layers import ORGANISATION, Documents, documents, installed_packs, plan_layers
from .storage import identity_generation
from .storage import revisions as revision_store
from .storage.apply import apply
from .storage.plan import Plan
from .storage.system import is_initialised, system_metadata, upgrade
from .storage.system import packs as pack_table

DEFAULT_PACKS = ("crm-core", "sales")


def default_config_dir() -> Path:
    return Path(str(resources.files("slatecrm").joinpath("default_config")))


def resolve_pack_path(argument: str) -> Path:
    """A path as given, or the name of a pack shipped in slatecrm/default_config."""
    path = Path(argument)
    if not path.exists() and (default_config_dir() / argument).is_dir():
        return default_config_dir() / argument
    return path


def load_packs(arguments: Sequence[str], registry: FieldTypeRegistry) -> list[Pack]:
    """Load every pack given; the problems of all of them are reported together."""
    loaded: list[Pack] = []
    problems: list[Problem] = []
    for argument in arguments:
        try:
            loaded.append(load_pack(resolve_pack_path(argument), registry))
        except DefinitionError as error:
            problems.extend(error.problems)
    if problems:
        raise DefinitionError(problems)
    return loaded


def with_shipped_dependencies(given: Sequence[Pack], available: Sequence[str],
                              registry: FieldTypeRegistry) -> list[Pack]:
    """`given` plus the shipped packs they require that are neither given nor `available`
    (installed), so that `pack install sales` on an empty database brings crm-core along;
    the plan names every pack it installs."""
    packs = list(given)
    names = {p.name for p in given} | set(available)
    wanted = {r.pack for p in given for r in p.manifest.requires} - names
    while wanted:
        name = wanted.pop()
        if not (default_config_dir() / name).is_dir():
            continue  # merging reports it as missing
        dependency = load_pack(default_config_dir() / name, registry)
        packs.append(dependency)
        names.add(name)
        wanted |= {r.pack for r in dependency.manifest.requires} - names
    return packs


@dataclass(frozen=True)
class PackChange:
    name: str
    before: str | None
    after: str
    checksum: str

    @property
    def verb(self) -> str:
        return "install" if self.before is None else "upgrade"


@dataclass(frozen=True)
class Installation:
    plan: Plan
    packs: tuple[Pack, ...]
    pack_changes: tuple[PackChange, ...]
    purged: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        parts = [f"{c.verb} {c.name} {c.after}" for c in self.pack_changes]
        parts += [f"purge {entity}.{field}" for entity, field in self.purged]
        return ", ".join(parts) if parts else "no changes"

    @property
    def is_empty(self) -> bool:
        return self.plan.is_empty and not self.pack_changes


def plan_install(engine: sa.Engine, new: Sequence[Pack], registry: FieldTypeRegistry,
                 purge: Sequence[tuple[str, str]] = (), *,
                 functions: RuleFunctions = NO_FUNCTIONS) -> Installation:
    """`functions`: the plugins' rule functions the packs' rules may call."""
    with engine.connect() as conn:
        base, current = revision_store.current_metamodel(conn)
        installed = {p.name: p for p in installed_packs(conn, registry)}
        previous = list(installed.values())
        problems: list[Problem] = []
        changes: list[PackChange] = []
        for pack in with_shipped_dependencies(new, list(installed), registry):
            if pack.name == ORGANISATION:
                problems.append(Problem(f"the pack name {pack.name!r} is reserved for the organisation's "
                                        "own customisations", pack.manifest.source, pack.origin))
                continue
            old = installed.get(pack.name)
            if old is not None:
                before, after = semantic_version.Version(old.version), semantic_version.Version(pack.version)
                if after < before:
                    problems.append(Problem(f"pack {pack.name} {old.version} is installed; "
                                            f"{pack.version} is older (downgrades are refused)",
                                            pack.manifest.source, pack.origin))
                    continue
                if after == before and old.checksum != pack.checksum:
                    problems.append(Problem(f"pack {pack.name} {pack.version} is installed with other "
                                            "content: give the changed pack a new version",
                                            pack.manifest.source, pack.origin))
                    continue
                if after == before:
                    continue  # the same pack again: nothing to do
            changes.append(PackChange(pack.name, old.version if old else None, pack.version,
                                      pack.checksum))
            installed[pack.name] = pack
        if problems:
            raise DefinitionError(problems)
        docs = documents(conn)
        _refuse_conflicts(previous, list(installed.values()), docs, changes, registry, functions)
        plan = plan_layers(conn, registry, list(installed.values()), docs, current, base,
                           purge, new={c.name for c in changes}, functions=functions)
    return Installation(plan, tuple(installed[c.name] for c in changes), tuple(changes), tuple(purge))


def _refuse_conflicts(before: Sequence[Pack], after: Sequence[Pack], docs: Documents,
                      changes: Sequence[PackChange], registry: FieldTypeRegistry,
                      functions: RuleFunctions) -> None:
    """A newer version of a pack the organisation customised where the new version changed
    the same thing: refused here, so that the organisation's value does not silently hide
    the new version's (or break the merge in its name); `pack upgrade` shows and resolves it."""
    upgraded = [c.name for c in changes if c.before is not None]
    found = threeway.conflicts(before, after, docs, upgraded, registry, functions=functions)
    problems = []
    for pack in after:
        listed = "; ".join(f"{leaf.path} ({leaf.reason})" for name, leaf in found if name == pack.name)
        if listed:
            problems.append(Problem(
                f"the organisation's customisations conflict with {pack.name} {pack.version} at {listed}: "
                "upgrade it with `slatecrm pack upgrade`, which shows both sides and resolves them",
                pack.manifest.locate("version"), pack.origin))
    if problems:
        raise DefinitionError(problems)


def install(engine: sa.Engine, installation: Installation, *, author: str,
            principal: Principal = SYSTEM,
            also: Callable[[sa.Connection, int], None] | None = None) -> int:
    """Apply the installation; each pack installed or upgraded (and each purge) is an audit
    event of `principal` in the same transaction (for the system: named by `author`, the
    account that ran the command). `also(conn, revision)` joins that transaction too (a
    pack upgrade stores the organisation's documents it edited there)."""
    user_name = author if principal.unrestricted else None

    def store(conn: sa.Connection, revision: int) -> None:
        now = dt.datetime.now(dt.UTC)
        for pack in installation.packs:
            conn.execute(pack_table.delete().where(pack_table.c.name == pack.name))
            conn.execute(pack_table.insert().values(
                name=pack.name, namespace=pack.manifest.namespace, version=pack.version,
                title=pack.manifest.title, checksum=pack.checksum, origin=pack.origin,
                files=dict(pack.files), installed_at=now, revision_id=revision))
        for change in installation.pack_changes:
            audit.record(conn, f"pack.{change.verb}", principal=principal, user_name=user_name,
                         object_kind="pack", object_id=change.name, at=now,
                         detail={"name": change.name, "version": change.after,
                                 "previous_version": change.before, "revision": revision})
        if installation.purged:
            audit.record(conn, "metamodel.purge", principal=principal, user_name=user_name,
                         object_kind="revision", object_id=revision, at=now,
                         detail={"fields": [f"{e}.{f}" for e, f in installation.purged],
                                 "revision": revision})
        if also is not None:
            also(conn, revision)

    return apply(engine, installation.plan, source=installation.source, author=author, also=store)


def create_system_tables(engine: sa.Engine, *, audited_as: str | None = None) -> bool:
    """Create the platform's own tables that are missing (all of them in a new database,
    those a newer platform version added in an older one) and make the audit log
    append-only. True if the database was new. `audited_as`: the account running
    `slatecrm init`, logged as a "platform.init" event in the same transaction."""
    with engine.begin() as conn:
        new = not is_initialised(conn)
        system_metadata.create_all(conn, checkfirst=True)
        upgraded = upgrade(conn)
        audit.protect(conn)
        identity_generation.install(conn)
        if audited_as is not None:
            audit.record(conn, "platform.init", principal=SYSTEM, user_name=audited_as,
                         detail={"new": new, "upgraded": upgraded})
        return new


def plan_purge(engine: sa.Engine, fields: Sequence[tuple[str, str]],
               registry: FieldTypeRegistry, *, functions: RuleFunctions = NO_FUNCTIONS) -> Installation:
    """Drop the columns of retired fields for good (the only way data is deleted)."""
    return plan_install(engine, [], registry, purge=fields, functions=functions)
