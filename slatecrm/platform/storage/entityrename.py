"""Renaming an entity (`renamed_from` on an entity definition): what besides its table names it.

The schema planner (plan.py) plans the table's rename as one change; this module holds
what that change does to everything else that names the entity, so that one place lists
it:

- the metamodel itself: the entity, every reference field whose `target` names it, role
  grants and workflows (`renamed_metamodel`, what the planner compares the target with:
  a rename is not a retired entity and a new one);
- the records' columns that hold entity names (`rename_values`: a polymorphic reference's
  entity, FieldType.entity_name_columns);
- the platform's rows that name entities (`rename_rows`, a data step of the change): auto
  numbers (slate_sequence), record history and stage history, the workflows' outbox, job
  queue and run log, uploaded files (slate_file), and the organisation's customisations
  (slate_customisation), whose
  documents follow a pack's rename (`rename_in_document`: an extension of the entity, a
  reference to it, a role's grant of it, a workflow on it). A pack that still names the old
  entity is refused at its file:line instead (metamodel/model.py `renamed_note`): a pack's
  files are its author's, the organisation's layer is kept by SlateCRM.

The audit log (slate_audit) is left as it is: it is append-only (identity/audit.py) and
tells what happened under the names of the time; the revision that renamed the entity
says when the name changed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.layouts import Layout
from slatecrm.metamodel.model import Entity, Field, Metamodel
from slatecrm.metamodel.roles import Role
from slatecrm.metamodel.workflows import Workflow

from .system import (
    customisations,
    files,
    history,
    saved_views,
    sequences,
    stage_history,
    workflow_events,
    workflow_jobs,
    workflow_runs,
)

#: The platform's tables with an `entity` column naming an entity, in the order updated.
ENTITY_COLUMNS = (sequences, history, stage_history, workflow_jobs, workflow_runs, files, saved_views)


def entity_renames(current: Metamodel, target: Metamodel) -> dict[str, str]:
    """Old name → new name of each entity of `target` whose `renamed_from` names an entity
    of `current` (retired ones too) that `target` no longer has, and whose new name
    `current` has not taken. Applied once: afterwards `current` has the new name."""
    renames: dict[str, str] = {}
    for entity in target.active_entities:
        old = entity.renamed_from
        if (old is None or old in renames or current.any_entity(entity.name) is not None
                or current.any_entity(old) is None or target.any_entity(old) is not None):
            continue
        renames[old] = entity.name
    return renames


def _field(f: Field, renames: Mapping[str, str]) -> Field:
    target, targets = f.target, f.settings.get("targets")
    if isinstance(targets, list | tuple) and any(t in renames for t in targets):
        return replace(f, settings={**f.settings, "targets": [renames.get(t, t) for t in targets]})
    if target is None or target not in renames:
        return f
    return replace(f, settings={**f.settings, "target": renames[target]})


def _entity(e: Entity, renames: Mapping[str, str]) -> Entity:
    fields = tuple(_field(f, renames) for f in e.fields)
    return replace(e, name=renames.get(e.name, e.name), fields=fields)


def _role(r: Role, renames: Mapping[str, str]) -> Role:
    return replace(r, entities=tuple(replace(g, entity=renames.get(g.entity, g.entity)) for g in r.entities))


def _workflow(w: Workflow, renames: Mapping[str, str]) -> Workflow:
    actions = tuple(replace(a, entity=renames[a.entity]) if a.entity is not None and a.entity in renames
                    else a for a in w.actions)
    return replace(w, entity=renames.get(w.entity, w.entity), actions=actions)


def renamed_metamodel(metamodel: Metamodel, renames: Mapping[str, str]) -> Metamodel:
    """`metamodel` as it reads once the entities of `renames` have their new names."""
    if not renames:
        return metamodel
    return replace(metamodel, entities=tuple(_entity(e, renames) for e in metamodel.entities),
                   roles=tuple(_role(r, renames) for r in metamodel.roles),
                   workflows=tuple(_workflow(w, renames) for w in metamodel.workflows),
                   views=tuple(replace(v, entity=renames.get(v.entity, v.entity)) for v in metamodel.views),
                   layouts=tuple(_layout(layout, renames) for layout in metamodel.layouts))


def _layout(layout: Layout, renames: Mapping[str, str]) -> Layout:
    """A layout naming the new names: its entity and its related lists' entities."""
    related = None if layout.related_lists is None else tuple(
        replace(r, entity=renames.get(r.entity, r.entity)) for r in layout.related_lists)
    return replace(layout, entity=renames.get(layout.entity, layout.entity), related_lists=related)


# --- the organisation's documents (pack files, as JSON) ----------------------------------------
def rename_in_document(kind: str, name: str, document: Mapping[str, Any],
                       renames: Mapping[str, str]) -> tuple[str, str, dict[str, Any]]:
    """The (kind, name, document) of a customisation once the entities of `renames` have
    their new names: an extension of one moves to the new name, references, role grants
    and workflows name the new name."""
    doc = copy.deepcopy(dict(document))
    if kind == "extension" and doc.get("entity") in renames:
        doc["entity"] = renames[doc["entity"]]
        name = doc["entity"]
    for field in (doc.get("fields") or {}).values():
        if isinstance(field, dict) and field.get("target") in renames:
            field["target"] = renames[field["target"]]
        if isinstance(field, dict) and isinstance(field.get("targets"), list):
            field["targets"] = [renames.get(t, t) for t in field["targets"]]
    if kind == "role" and isinstance(doc.get("entities"), dict):
        doc["entities"] = {renames.get(k, k): v for k, v in doc["entities"].items()}
    if kind == "view" and doc.get("entity") in renames:
        doc["entity"] = renames[doc["entity"]]
    if kind == "workflow":
        if doc.get("entity") in renames:
            doc["entity"] = renames[doc["entity"]]
        for action in doc.get("actions") or ():
            if isinstance(action, dict) and action.get("entity") in renames:
                action["entity"] = renames[action["entity"]]
    return kind, name, doc


def rename_in_documents(docs: Mapping[tuple[str, str], dict[str, Any]],
                        renames: Mapping[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for (kind, name), document in docs.items():
        new_kind, new_name, doc = rename_in_document(kind, name, document, renames)
        out[(new_kind, new_name)] = doc
    return out


# --- the platform's rows ------------------------------------------------------------------------
def rename_rows(old: str, new: str) -> Callable[[sa.Connection], None]:
    """The data step renaming `old` to `new` in the platform's rows (in the plan's transaction)."""
    renames = {old: new}

    def run(conn: sa.Connection) -> None:
        for table in ENTITY_COLUMNS:
            conn.execute(table.update().where(table.c.entity == old).values(entity=new))
        for row in conn.execute(sa.select(workflow_events.c.id, workflow_events.c.jobs)).all():
            event = json.loads(row.jobs)
            records = (event.get("records") if isinstance(event, dict) else None) or []
            if not any(isinstance(r, dict) and r.get("entity") == old for r in records):
                continue
            for record in records:
                if isinstance(record, dict) and record.get("entity") == old:
                    record["entity"] = new
            conn.execute(workflow_events.update().where(workflow_events.c.id == row.id)
                         .values(jobs=json.dumps(event)))
        for row in conn.execute(sa.select(customisations)).all():
            kind, name, doc = rename_in_document(row.kind, row.name, row.document, renames)
            if (kind, name, doc) == (row.kind, row.name, row.document):
                continue
            key = (customisations.c.kind == row.kind) & (customisations.c.name == row.name)
            conn.execute(customisations.update().where(key).values(kind=kind, name=name, document=doc))
    return run


def rename_values(old: str, new: str,
                  columns: list[tuple[str, str, str]]) -> Callable[[sa.Connection], None]:
    """The data step renaming `old` to `new` in the records' own columns that hold entity
    names (a polymorphic reference's entity: `columns` as (table now, table after, column));
    a table renamed by a later change of the same plan is found under its name of the moment."""
    def run(conn: sa.Connection) -> None:
        present = set(sa.inspect(conn).get_table_names())
        for now, after, column in columns:
            name = after if after in present else now
            table = sa.table(name, sa.column(column))
            conn.execute(table.update().where(table.c[column] == old).values({column: new}))
    return run


def described(old: str, new: str) -> str:
    tables = ", ".join(t.name for t in (*ENTITY_COLUMNS, workflow_events, customisations))
    return f"rename entity {old} → {new} in the platform's rows ({tables})"
