"""`slatecrm pack uninstall`: the installed packs without one → merged metamodel → plan → apply.

Uninstalling is one more metamodel change, planned from the current revision like an
install: the pack's entities and the fields it added to other packs' entities are retired
(tables, columns and data kept, hidden; installing the pack again brings them back), its
roles, workflows and user attributes leave the metamodel. With `purge`, the same plan drops
them instead (the planner's purge of retired fields, and of retired entities' tables), in
the same transaction; the rows it deletes are counted in the plan, and the command makes
the person confirm those counts.

Refused, naming what stands in the way: another installed pack requiring it, the
organisation's own extensions of its entities (they would extend nothing: export or remove
them first), and the organisation's overrides of the fields and stages it added to other
packs' entities (they would override nothing). The organisation's other documents naming
the pack's entities (a reference field to one, a role's grant) fail the merge with their
own problems.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError, Location, Problem
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from .identity import audit
from .identity.principal import SYSTEM, Principal
from .layers import ORGANISATION, Documents, documents, installed_packs, plan_layers
from .storage import revisions as revision_store
from .storage.apply import apply
from .storage.plan import Plan
from .storage.system import packs as pack_table

#: The plan's changes that delete data (their risks count the rows).
DELETING = ("purge column", "drop apart table", "purge table")


@dataclass(frozen=True)
class Uninstallation:
    plan: Plan
    name: str
    version: str
    purge: bool

    @property
    def deleted_rows(self) -> tuple[tuple[str, int], ...]:
        """What a purge deletes: (change, rows) for each change that deletes data."""
        return tuple((c.summary, sum(r.rows for r in c.risks)) for c in self.plan.changes
                     if c.action in DELETING)

    @property
    def rows_total(self) -> int:
        return sum(rows for _, rows in self.deleted_rows)

    @property
    def source(self) -> str:
        return f"uninstall {self.name} {self.version}" + (" (purge)" if self.purge else "")


def refuse(message: str) -> DefinitionError:
    return DefinitionError([Problem(message, Location())])


def _overrides_of(current: Metamodel, docs: Documents, pack: str, owned: list[str]) -> list[str]:
    """The organisation's overrides (a field's label, a stage's label or colour...) of the
    fields and stages `pack` added to other packs' entities, as `path in extension/entity`:
    without the pack they would override nothing, and the merge would fail at their line."""
    found: list[str] = []
    for (kind, doc), body in sorted(docs.items()):
        entity = current.entity(str(body.get("entity", ""))) if kind == "extension" else None
        if entity is None or entity.name in owned:
            continue
        paths = [f"{entity.name}.{f}" for f in body.get("field_overrides", {})
                 if (field := entity.field(f)) is not None and field.pack == pack]
        for pipeline in entity.pipelines:
            overrides = body.get("pipelines", {}).get(pipeline.name, {}).get("stage_overrides", {})
            paths += [f"{entity.name}.{pipeline.name}.{s.key}" for s in pipeline.stages
                      if s.key in overrides and s.pack == pack]
        found += [f"{path} in {kind}/{doc}" for path in paths]
    return found


def plan_uninstall(engine: sa.Engine, name: str, registry: FieldTypeRegistry, *, purge: bool = False,
                   functions: RuleFunctions = NO_FUNCTIONS) -> Uninstallation:
    with engine.connect() as conn:
        base, current = revision_store.current_metamodel(conn)
        installed = {p.name: p for p in installed_packs(conn, registry)}
        pack = installed.pop(name, None)
        if pack is None:
            what = "the organisation's layer is not a pack (its documents are edited, not uninstalled)" \
                if name == ORGANISATION else f"installed: {', '.join(installed) or 'none'}"
            raise refuse(f"pack {name!r} is not installed ({what})")
        dependants = sorted(p.name for p in installed.values()
                            if any(r.pack == name for r in p.manifest.requires))
        if dependants:
            raise refuse(f"pack {name!r} is required by the installed pack(s) {', '.join(dependants)}: "
                         "uninstall those first")
        owned = [e.name for e in pack.entities]
        docs = documents(conn)
        extending = sorted(f"{kind}/{doc}" for (kind, doc), body in docs.items()
                           if kind == "extension" and body.get("entity") in owned)
        if extending:
            raise refuse(f"the organisation's customisations {', '.join(extending)} extend entities of pack "
                         f"{name!r}: remove them first (export them with `slatecrm pack export` to keep "
                         "them)")
        overriding = _overrides_of(current, docs, name, owned)
        if overriding:
            raise refuse(f"the organisation's customisations override what pack {name!r} adds to other "
                         f"packs' entities ({', '.join(overriding)}): remove those overrides first (removing "
                         "the field or stage in the designer or the admin API removes the override)")
        fields = [(e.name, f.name) for e in current.active_entities if e.name not in owned
                  for f in e.active_fields if f.pack == name] if purge else []
        plan = plan_layers(conn, registry, list(installed.values()), docs, current, base, fields,
                           functions=functions, purge_entities=owned if purge else ())
    return Uninstallation(plan, name, pack.version, purge)


def uninstall(engine: sa.Engine, uninstallation: Uninstallation, *, author: str,
              principal: Principal = SYSTEM) -> int:
    """Apply it: the new revision, the pack's row removed and an audit event
    ("pack.uninstall") in one transaction."""
    user_name = author if principal.unrestricted else None

    def store(conn: sa.Connection, revision: int) -> None:
        conn.execute(pack_table.delete().where(pack_table.c.name == uninstallation.name))
        audit.record(conn, "pack.uninstall", principal=principal, user_name=user_name,
                     object_kind="pack", object_id=uninstallation.name, at=dt.datetime.now(dt.UTC),
                     detail={"name": uninstallation.name, "version": uninstallation.version,
                             "purge": uninstallation.purge, "deleted_rows": uninstallation.rows_total,
                             "revision": revision})

    return apply(engine, uninstallation.plan, source=uninstallation.source, author=author, also=store)
