"""The organisation's own layer: an admin's edits, stored in the database, merged on top.

Each edit is a document in the form of a pack file (`kind: entity` for a custom object of
the organisation, `kind: extension` for changes to a pack's entity, `kind: role` for a role
of its own or one replacing a pack's role of the same name, `kind: user_attribute` likewise), kept in
slate_customisation. At merge time the documents become one more pack, `organisation`,
that requires every installed pack, so that the same schema, the same layering rules
(base packs < dependent packs < organisation) and the same plan / apply serve admin edits
and pack installs alike, and a pack upgrade keeps the organisation's changes.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError, Location, Problem
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import LOGIC_KEYS
from slatecrm.metamodel.roles import ADMINISTRATOR
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from .entitydocument import entity_document
from .identity import audit
from .identity.principal import SYSTEM, Principal
from .layers import ORGANISATION, Documents, documents, installed_packs, plan_layers
from .storage import revisions as revision_store
from .storage.apply import apply
from .storage.entityrename import rename_in_documents
from .storage.plan import Plan
from .storage.system import customisations

#: What an extension may change on a field a pack defines.
OVERRIDABLE = frozenset({"label", "help", "default", "options", "read_only", "read_only_after_create",
                         *LOGIC_KEYS})
#: What the organisation may change on a stage a pack defines (how it reads, not its rules).
STAGE_OVERRIDABLE = frozenset({"label", "colour"})


@dataclass(frozen=True)
class Customisation:
    plan: Plan
    documents: Documents
    changed: tuple[tuple[str, str], ...]
    summary: str


def plan_edit(engine: sa.Engine, registry: FieldTypeRegistry, summary: str,
              edit: Any, *, functions: RuleFunctions = NO_FUNCTIONS) -> Customisation:
    """Plan an edit: `edit(documents, metamodel)` changes a copy of the documents in place
    (raising DefinitionError for a request it refuses); rules may call the plugins' `functions`."""
    with engine.connect() as conn:
        base, current = revision_store.current_metamodel(conn)
        stored = documents(conn)
        docs = copy.deepcopy(stored)
        edit(docs, current)
        plan = plan_layers(conn, registry, installed_packs(conn, registry), docs, current, base,
                           functions=functions)
    changed = tuple(sorted(k for k in {*stored, *docs} if stored.get(k) != docs.get(k)))
    return Customisation(plan, docs, changed, summary)


def apply_edit(engine: sa.Engine, customisation: Customisation, *, author: str,
               principal: Principal = SYSTEM, address: str | None = None) -> int:
    """Apply a planned edit; the change is an audit event of `principal` ("metamodel.change")
    in the same transaction as the new revision."""
    def store(conn: sa.Connection, revision: int) -> None:
        now = dt.datetime.now(dt.UTC)
        store_documents(conn, customisation.documents, customisation.changed, revision, now)
        audit.record(conn, "metamodel.change", principal=principal, address=address, at=now,
                     object_kind="revision", object_id=revision,
                     detail={"summary": customisation.summary, "revision": revision,
                             "changed": [f"{kind}/{name}" for kind, name in customisation.changed]})

    return apply(engine, customisation.plan, source=f"organisation: {customisation.summary}",
                 author=author, also=store)


def store_documents(conn: sa.Connection, docs: Documents, changed: Collection[tuple[str, str]],
                    revision: int, now: dt.datetime) -> None:
    """Write the `changed` documents of `docs` (a missing one is deleted) with `revision`."""
    for kind, name in changed:
        key = (customisations.c.kind == kind) & (customisations.c.name == name)
        conn.execute(customisations.delete().where(key))
        document = docs.get((kind, name))
        if document is not None:
            conn.execute(customisations.insert().values(kind=kind, name=name, document=document,
                                                        updated_at=now, revision_id=revision))


def refuse(message: str, path: str = "") -> DefinitionError:
    return DefinitionError([Problem(message, Location(path=path), ORGANISATION)])


# --- the edits an admin can make --------------------------------------------------------------
def put_entity(name: str, body: Mapping[str, Any]) -> Any:
    """Define or redefine a custom object of the organisation."""
    def edit(docs: Documents, current: Any) -> None:
        existing = current.entity(name)
        if existing is not None and existing.pack != ORGANISATION:
            raise refuse(f"entity {name!r} is defined by pack {existing.pack!r}; change its fields, "
                         "pipelines and labels one by one instead", name)
        old = body.get("renamed_from")
        if isinstance(old, str) and old != name and ("entity", old) in docs:
            # The organisation's entity takes its new name; its documents naming it follow.
            del docs[("entity", old)]
            renamed = rename_in_documents(docs, {old: name})
            docs.clear()
            docs.update(renamed)
        docs[("entity", name)] = {"kind": "entity", **{k: v for k, v in body.items() if k != "kind"},
                                  "name": name}
    return edit


def delete_entity(name: str) -> Any:
    def edit(docs: Documents, current: Any) -> None:
        if ("entity", name) not in docs:
            existing = current.entity(name)
            why = f"is defined by pack {existing.pack!r}" if existing else "does not exist"
            raise refuse(f"entity {name!r} {why}; only the organisation's own entities can be removed",
                         name)
        del docs[("entity", name)]
    return edit


def restore_entity(name: str) -> Any:
    """Bring back the organisation's retired entity: retiring removed its document and kept
    the entity, retired, in the metamodel with its table and rows; its document is written
    again from that entity (entitydocument.py), and the plan restores the table, rows and all.
    A pack's retired entity comes back with its pack, not here."""
    def edit(docs: Documents, current: Any) -> None:
        if current.entity(name) is not None:
            raise refuse(f"entity {name!r} is not retired", name)
        retired = current.any_entity(name)
        if retired is None:
            raise refuse(f"there is no retired entity {name!r}", name)
        if retired.pack != ORGANISATION:
            raise refuse(f"entity {name!r} was retired with pack {retired.pack!r}; install the pack again "
                         "to bring it back", name)
        docs[("entity", name)] = entity_document(retired)
    return edit


def put_field(entity: str, field: str, body: Mapping[str, Any]) -> Any:
    """Add or change a field: in the organisation's own entity, or through an extension of
    a pack's entity (where a pack's own field takes only OVERRIDABLE: label, help, default,
    options, the read-only flags and its form logic)."""
    def edit(docs: Documents, current: Any) -> None:
        target = current.entity(entity)
        if target is None:
            raise refuse(f"there is no entity {entity!r}", entity)
        if ("entity", entity) in docs:
            fields = docs[("entity", entity)].setdefault("fields", {})
            renamed = body.get("renamed_from")
            for former in (renamed.values() if isinstance(renamed, Mapping) else [renamed]):
                if isinstance(former, str) and former in fields and former != field:
                    del fields[former]
            fields[field] = dict(body)
            return
        extension = docs.setdefault(("extension", entity), {"kind": "extension", "entity": entity})
        owned = target.field(field)
        if owned is not None and owned.pack != ORGANISATION:
            extra = set(body) - OVERRIDABLE - {"type"}
            if extra or body.get("type", owned.type) != owned.type:
                raise refuse(f"field {entity}.{field} is defined by pack {owned.pack!r}: the organisation "
                             f"may change its {', '.join(sorted(OVERRIDABLE))}, not "
                             f"{', '.join(sorted(extra)) or 'its type'}", f"{entity}.{field}")
            overrides = {k: v for k, v in body.items() if k in OVERRIDABLE}
            extension.setdefault("field_overrides", {})[field] = overrides
        else:
            extension.setdefault("fields", {})[field] = dict(body)
    return edit


def delete_field(entity: str, field: str) -> Any:
    def edit(docs: Documents, current: Any) -> None:
        for kind, key in (("entity", "fields"), ("extension", "fields"), ("extension", "field_overrides")):
            section = docs.get((kind, entity), {}).get(key, {})
            if field in section:
                del section[field]
                _drop_empty(docs, entity)
                return
        target = current.entity(entity)
        owner = target.field(field).pack if target is not None and target.field(field) else None
        why = f"is defined by pack {owner!r}" if owner else "is not a field of the organisation"
        raise refuse(f"field {entity}.{field} {why}; it cannot be removed here", f"{entity}.{field}")
    return edit


def revert_field(entity: str, field: str) -> Any:
    """Remove the organisation's override of a pack's field (its label, help, default,
    options, read-only flags or form logic): the pack's own definition shows again."""
    def edit(docs: Documents, current: Any) -> None:
        overrides = docs.get(("extension", entity), {}).get("field_overrides", {})
        if field not in overrides:
            raise refuse(f"the organisation does not override field {entity}.{field}; there is nothing "
                         "to revert", f"{entity}.{field}")
        del overrides[field]
        if not overrides:
            del docs[("extension", entity)]["field_overrides"]
        _drop_empty(docs, entity)
    return edit


def add_pipeline(entity: str, pipeline: str, body: Mapping[str, Any]) -> Any:
    """A new pipeline (`put_pipeline`), refused when the entity has one of that name already
    (whoever defined it): a new pipeline never replaces one."""
    put = put_pipeline(entity, pipeline, body)

    def edit(docs: Documents, current: Any) -> None:
        target = current.entity(entity)
        if target is not None and any(p.name == pipeline for p in target.pipelines):
            raise refuse(f"{entity} has a pipeline {pipeline!r} already: change it on its own page",
                         f"{entity}.{pipeline}")
        put(docs, current)
    return edit


def put_pipeline(entity: str, pipeline: str, body: Mapping[str, Any]) -> Any:
    def edit(docs: Documents, current: Any) -> None:
        target = current.entity(entity)
        if target is None:
            raise refuse(f"there is no entity {entity!r}", entity)
        if ("entity", entity) in docs:
            docs[("entity", entity)].setdefault("pipelines", {})[pipeline] = dict(body)
            return
        extension = docs.setdefault(("extension", entity), {"kind": "extension", "entity": entity})
        extension.setdefault("pipelines", {})[pipeline] = dict(body)
    return edit


def put_stage(entity: str, pipeline: str, stage: str, body: Mapping[str, Any]) -> Any:
    """Add or change one stage. In the organisation's own entity any stage may change, and
    `after` places it; a pack's pipeline takes new stages only (through an extension), since
    a pack's own stage rules are the pack's."""
    def edit(docs: Documents, current: Any) -> None:
        target = current.entity(entity)
        existing = next((p for p in target.pipelines if p.name == pipeline), None) if target else None
        if target is None or existing is None:
            raise refuse(f"there is no pipeline {entity}.{pipeline}", f"{entity}.{pipeline}")
        definition = {k: v for k, v in body.items() if k != "after"}
        definition["key"] = stage
        after = body.get("after")
        if ("entity", entity) in docs and pipeline in docs[("entity", entity)].get("pipelines", {}):
            stages = docs[("entity", entity)]["pipelines"][pipeline].setdefault("stages", [])
            keys = [s.get("key") for s in stages]
            if after is not None and after not in keys:
                raise refuse(f"after: pipeline {pipeline!r} has no stage {after!r}; stages: "
                             f"{', '.join(str(k) for k in keys)}", f"{entity}.{pipeline}.{stage}")
            if stage in keys:
                index = keys.index(stage)
                if after is None:
                    stages[index] = definition
                    return
                del stages[index]
                keys.pop(index)
            stages.insert(keys.index(after) + 1 if after is not None else len(stages), definition)
            return
        owned = next((s for s in existing.stages if s.key == stage), None)
        extension = docs.setdefault(("extension", entity), {"kind": "extension", "entity": entity})
        if owned is not None and owned.pack != ORGANISATION:
            looks = {k: v for k, v in definition.items() if k != "key"}
            if after is not None or not looks or set(looks) - STAGE_OVERRIDABLE:
                raise refuse(f"stage {stage!r} of {entity}.{pipeline} is defined by pack {owned.pack!r}; the "
                             "organisation can add stages to it and change the pack's own "
                             f"{', '.join(sorted(STAGE_OVERRIDABLE))}, not its rules or place",
                             f"{entity}.{pipeline}.{stage}")
            section = extension.setdefault("pipelines", {}).setdefault(pipeline, {})
            section.setdefault("stage_overrides", {})[stage] = looks
            return
        additions = extension.setdefault("pipelines", {}).setdefault(pipeline, {}).setdefault("stages", [])
        additions[:] = [s for s in additions if s.get("key") != stage]
        additions.append({**definition, **({"after": after} if after is not None else {})})
    return edit


def delete_stage(entity: str, pipeline: str, stage: str) -> Any:
    def edit(docs: Documents, current: Any) -> None:
        for kind in ("entity", "extension"):
            section = docs.get((kind, entity), {}).get("pipelines", {}).get(pipeline, {})
            stages = section.get("stages", [])
            if any(s.get("key") == stage for s in stages):
                if kind == "entity" and len(stages) == 1:
                    raise refuse(f"stage {stage!r} is the last of {entity}.{pipeline}; a pipeline needs "
                                 "at least one stage", f"{entity}.{pipeline}.{stage}")
                section["stages"] = [s for s in stages if s.get("key") != stage]
                if kind == "extension" and not section["stages"]:
                    del section["stages"]
                    if not section.get("stage_overrides"):
                        del docs[(kind, entity)]["pipelines"][pipeline]
                    _drop_empty(docs, entity)
                return
        if _drop_stage_override(docs, entity, pipeline, stage):
            return
        raise refuse(f"stage {stage!r} of {entity}.{pipeline} is not the organisation's; it cannot be "
                     "removed here", f"{entity}.{pipeline}.{stage}")
    return edit


def revert_stage(entity: str, pipeline: str, stage: str) -> Any:
    """Remove the organisation's relabel (or recolour) of a pack's stage: the pack's look
    shows again."""
    def edit(docs: Documents, current: Any) -> None:
        if not _drop_stage_override(docs, entity, pipeline, stage):
            raise refuse(f"the organisation does not override stage {stage!r} of {entity}.{pipeline}; there "
                         "is nothing to revert", f"{entity}.{pipeline}.{stage}")
    return edit


def _drop_stage_override(docs: Documents, entity: str, pipeline: str, stage: str) -> bool:
    """Removing a pack's stage the organisation only relabelled (or recoloured) removes that
    override, as removing a pack's field removes the organisation's field override: the
    pack's own look comes back, and nothing is left extending the stage (an uninstall of
    its pack would otherwise be refused for it)."""
    pipelines = docs.get(("extension", entity), {}).get("pipelines", {})
    section = pipelines.get(pipeline, {})
    overrides = section.get("stage_overrides", {})
    if stage not in overrides:
        return False
    del overrides[stage]
    if not overrides:
        del section["stage_overrides"]
    if not section:
        del pipelines[pipeline]
    _drop_empty(docs, entity)
    return True


def relabel_entity(entity: str, label: str, label_plural: str) -> Any:
    """Rename an entity for people (its labels; its name, table and API stay): the
    organisation's own entity takes them in its definition, a pack's through an extension."""
    def edit(docs: Documents, current: Any) -> None:
        if current.entity(entity) is None:
            raise refuse(f"there is no entity {entity!r}", entity)
        key = ("entity", entity) if ("entity", entity) in docs else ("extension", entity)
        document = docs.setdefault(key, {"kind": "extension", "entity": entity})
        document["label"], document["label_plural"] = label, label_plural
    return edit


def revert_entity_labels(entity: str) -> Any:
    """Remove the organisation's labels of a pack's entity: the pack's labels show again."""
    def edit(docs: Documents, current: Any) -> None:
        extension = docs.get(("extension", entity), {})
        if "label" not in extension and "label_plural" not in extension:
            raise refuse(f"the organisation does not relabel entity {entity!r}; there is nothing to revert",
                         entity)
        extension.pop("label", None)
        extension.pop("label_plural", None)
        _drop_empty(docs, entity)
    return edit


def put_validation(entity: str, name: str, body: Mapping[str, Any]) -> Any:
    """Add or replace the organisation's validation `name` of an entity (a pack's own
    validations are the pack's: one of the same name is refused by the merge)."""
    def edit(docs: Documents, current: Any) -> None:
        if current.entity(entity) is None:
            raise refuse(f"there is no entity {entity!r}", entity)
        key = ("entity", entity) if ("entity", entity) in docs else ("extension", entity)
        document = docs.setdefault(key, {"kind": "extension", "entity": entity})
        rules = [v for v in document.get("validations", []) if v.get("name") != name]
        document["validations"] = [*rules, {**body, "name": name}]
    return edit


def delete_validation(entity: str, name: str) -> Any:
    def edit(docs: Documents, current: Any) -> None:
        for kind in ("entity", "extension"):
            document = docs.get((kind, entity), {})
            rules = document.get("validations", [])
            if any(v.get("name") == name for v in rules):
                document["validations"] = [v for v in rules if v.get("name") != name]
                _drop_empty(docs, entity)
                return
        raise refuse(f"validation {name!r} of {entity} is not the organisation's; it cannot be removed here",
                     f"{entity}.{name}")
    return edit


def _drop_empty(docs: Documents, entity: str) -> None:
    extension = docs.get(("extension", entity))
    sections = ("fields", "field_overrides", "pipelines", "validations", "label", "label_plural",
                "description", "unique", "indexes", "default_sort")
    if extension is not None and not any(extension.get(k) for k in sections):
        del docs[("extension", entity)]


# --- definitions by name (roles, user attributes, workflows, views, layouts): a new revision, no DDL
def _put_named(kind: str, name: str, body: Mapping[str, Any]) -> Any:
    """The organisation's definition of `kind` named `name`: its own, or its replacement of a
    pack's of the same name (the pack's comes back when this one is removed)."""
    def edit(docs: Documents, current: Any) -> None:
        docs[(kind, name)] = {"kind": kind, **{k: v for k, v in body.items() if k != "kind"}, "name": name}
    return edit


def _delete_named(kind: str, name: str) -> Any:
    """Remove the organisation's definition (only its own, or its replacement of a pack's)."""
    what = kind.replace("_", " ")

    def edit(docs: Documents, current: Any) -> None:
        if (kind, name) not in docs:
            existing = getattr(current, kind)(name)
            why = f"is defined by pack {existing.pack!r}" if existing else "does not exist"
            raise refuse(f"{what} {name!r} {why}; only the organisation's own {what}s (and its "
                         "replacements of a pack's) can be removed", name)
        del docs[(kind, name)]
    return edit


def put_role(name: str, body: Mapping[str, Any]) -> Any:
    """Define an organisation's role, or replace a pack's role of the same name."""
    edit = _put_named("role", name, body)

    def guarded(docs: Documents, current: Any) -> None:
        if name == ADMINISTRATOR:
            raise refuse(f"{ADMINISTRATOR!r} is the built-in role (every right, every record); it "
                         "cannot be redefined", name)
        edit(docs, current)
    return guarded


def delete_role(name: str) -> Any:
    return _delete_named("role", name)


def put_user_attribute(name: str, body: Mapping[str, Any]) -> Any:
    """Define an organisation's user attribute, or replace a pack's of the same name (other
    options, another type: users' stored values it no longer admits then read as null)."""
    return _put_named("user_attribute", name, body)


def delete_user_attribute(name: str) -> Any:
    """Remove the organisation's user attribute (a pack's replaced one comes back); users'
    values are kept, unused, until it is defined again."""
    return _delete_named("user_attribute", name)


def put_workflow(name: str, body: Mapping[str, Any]) -> Any:
    """Define an organisation's workflow, or replace a pack's of the same name (to change it,
    or to deactivate it with `active: false`). Checked like a pack's workflow, against the
    merged metamodel."""
    return _put_named("workflow", name, body)


def delete_workflow(name: str) -> Any:
    return _delete_named("workflow", name)


def put_view(name: str, body: Mapping[str, Any]) -> Any:
    """Define an organisation's view, or replace a pack's of the same name (other columns, another
    filter). Checked like a pack's view, against the merged metamodel; no DDL."""
    return _put_named("view", name, body)


def delete_view(name: str) -> Any:
    """Remove the organisation's view (a pack's it replaced comes back)."""
    return _delete_named("view", name)


def put_layout(name: str, body: Mapping[str, Any]) -> Any:
    """Define an organisation's layout, or replace a pack's of the same name (by default a
    layout is named after its entity). Checked like a pack's layout, against the merged
    metamodel; a new revision, no DDL."""
    return _put_named("layout", name, body)


def delete_layout(name: str) -> Any:
    """Remove the organisation's layout (a pack's replaced one comes back)."""
    return _delete_named("layout", name)
