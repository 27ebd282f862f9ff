"""Cross-checks of an effective metamodel: what no single file's schema can see."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import sqlalchemy as sa

from .errors import Problem
from .fieldtypes import ApartRelation, CoercionError, FieldTypeRegistry
from .model import ENTITY_TABLE_PREFIX, SORTABLE_SYSTEM, Entity, Field, Metamodel, renamed_note, unsortable
from .names import MAX_IDENTIFIER, name_problem, suggest
from .rules.functions import NO_FUNCTIONS, RuleFunctions
from .titles import TemplateError, template_fields


@dataclass
class _Context:
    metamodel: Metamodel
    registry: FieldTypeRegistry
    origins: Mapping[str, str]

    def problem(self, message: str, where: Any) -> Problem:
        """`where` is any definition with a source (entity, field, pipeline, stage)."""
        source = where.source
        pack = getattr(where, "pack", "")
        return Problem(message, source, self.origins.get(pack, pack))


def check_metamodel(metamodel: Metamodel, registry: FieldTypeRegistry,
                    origins: Mapping[str, str] | None = None,
                    functions: RuleFunctions = NO_FUNCTIONS) -> list[Problem]:
    ctx = _Context(metamodel, registry, origins or {})
    problems: list[Problem] = []
    for entity in metamodel.active_entities:
        problems.extend(_check_entity(ctx, entity))
    if not problems:  # rules are typed against a metamodel that is sound
        from .rules.definitions import check_rules

        problems.extend(check_rules(metamodel, ctx.origins, functions, ctx.registry))
    return problems


def _check_entity(ctx: _Context, entity: Entity) -> Iterator[Problem]:
    reason = name_problem(entity.name, "entity")
    if reason:
        yield ctx.problem(reason, entity)
    if len(entity.table_name) > MAX_IDENTIFIER:
        yield ctx.problem(f"entity name {entity.name!r} is too long: its table name "
                          f"{entity.table_name!r} has more than {MAX_IDENTIFIER} characters", entity)
    yield from _check_renamed_from(ctx, entity)
    names = [f.name for f in entity.active_fields]
    if entity.title_field and entity.title_field not in names:
        yield ctx.problem(f"title_field: {entity.name!r} has no field {entity.title_field!r}"
                          f"{suggest(entity.title_field, names)}", entity)
    if entity.title_template:
        try:
            for name in template_fields(entity.title_template):
                if name not in names:
                    yield ctx.problem(f"title_template: {entity.name!r} has no field {name!r}"
                                      f"{suggest(name, names)}", entity)
        except TemplateError as error:
            yield ctx.problem(f"title_template: {error}", entity)
    for field in entity.active_fields:
        yield from _check_field(ctx, entity, field)
    stage_fields: dict[str, str] = {}
    for pipeline in entity.pipelines:
        stage_field = entity.field(pipeline.field)
        if stage_field is not None and stage_field.type != "stage":
            yield ctx.problem(f"pipeline {pipeline.name!r} runs on field {pipeline.field!r}, which "
                              f"is a {stage_field.type} field; declare it with type: stage or leave it out",
                              pipeline)
        if pipeline.field in stage_fields:
            yield ctx.problem(f"pipelines {stage_fields[pipeline.field]!r} and {pipeline.name!r} "
                              f"both run on field {pipeline.field!r}; give each its own field", pipeline)
        stage_fields[pipeline.field] = pipeline.name
        if pipeline.close_date_field:
            closing = entity.field(pipeline.close_date_field)
            if closing is None or closing.type not in ("date", "datetime"):
                what = "does not exist" if closing is None else f"is a {closing.type} field"
                hint = suggest(pipeline.close_date_field, names)
                yield ctx.problem(f"close_date_field: {pipeline.close_date_field!r} {what}; it must be a "
                                  f"date or datetime field of {entity.name!r}{hint}", pipeline)
        keys = [s.key for s in pipeline.stages]
        for i, stage in enumerate(pipeline.stages):
            if stage.key in keys[:i]:  # the repeat is the one to fix, not the first
                first = pipeline.stages[keys.index(stage.key)].source
                yield ctx.problem(f"stage {stage.key!r} appears more than once in pipeline "
                                  f"{pipeline.name!r} (first at line {first.line})", stage)
            for required in stage.requires:
                if required not in names:
                    yield ctx.problem(f"stage {stage.key!r} requires field {required!r}, which "
                                      f"{entity.name!r} does not have{suggest(required, names)}", stage)
            for following in stage.next or ():
                if following not in keys:
                    yield ctx.problem(f"stage {stage.key!r}: next stage {following!r} is not a stage "
                                      f"of pipeline {pipeline.name!r}{suggest(following, keys)}", stage)
    for field in entity.active_fields:
        if field.type == "stage" and field.name not in stage_fields:
            yield ctx.problem(f"field {field.name!r} has type stage but no pipeline runs on it", field)
    yield from _check_composite_keys(ctx, entity, names)
    yield from _check_default_sort(ctx, entity, names)


def _check_renamed_from(ctx: _Context, entity: Entity) -> Iterator[Problem]:
    """An entity's `renamed_from` names a name no other entity has now, once."""
    old = entity.renamed_from
    if old is None:
        return
    if old == entity.name:
        yield ctx.problem(f"renamed_from: {old!r} is the entity's own name; leave renamed_from out", entity)
        return
    still = ctx.metamodel.entity(old)
    if still is not None:
        yield ctx.problem(f"renamed_from: entity {old!r} is still defined (at {still.source}): an "
                          "entity renamed takes the place of its old name; remove or rename the other",
                          entity)
    first = next(e for e in ctx.metamodel.active_entities if e.renamed_from == old)
    if first is not entity:
        yield ctx.problem(f"renamed_from: entity {first.name!r} is renamed from {old!r} already "
                          f"(at {first.source}); an entity is renamed to one name", entity)


def _check_default_sort(ctx: _Context, entity: Entity, names: list[str]) -> Iterator[Problem]:
    """`default_sort` names system fields or active, sortable fields of the entity, each
    once: what a request's `sort` accepts (records/listing.py), checked at install rather
    than when a list is first read."""
    order = entity.default_sort
    if order is None:
        return
    for name in order.names:
        field = entity.field(name)
        if name in SORTABLE_SYSTEM:
            continue
        if field is None:
            yield ctx.problem(f"default_sort: {entity.name!r} has no field {name!r}"
                              f"{suggest(name, [*names, *SORTABLE_SYSTEM])}", order)
        elif field.type in ctx.registry and not ctx.registry[field.type].sortable:
            yield ctx.problem(f"default_sort: {unsortable(name)}", order)
    repeated = sorted({n for n in order.names if order.names.count(n) > 1})
    for name in repeated:
        yield ctx.problem(f"default_sort: {name!r} is named more than once", order)


def _check_composite_keys(ctx: _Context, entity: Entity, names: list[str]) -> Iterator[Problem]:
    """`unique` and `indexes` name active, indexable fields of the entity, each list once."""
    for key, composites in (("unique", entity.unique), ("indexes", entity.indexes)):
        seen: set[tuple[str, ...]] = set()
        for composite in composites:
            listed = ", ".join(composite.fields)
            if composite.fields in seen:
                yield ctx.problem(f"[{listed}] is listed twice in {key}", composite)
            seen.add(composite.fields)
            for name in sorted({n for n in composite.fields if composite.fields.count(n) > 1}):
                yield ctx.problem(f"[{listed}] names field {name!r} twice", composite)
            for name in composite.fields:
                field = entity.field(name)
                if field is None:
                    yield ctx.problem(f"{entity.name!r} has no field {name!r}"
                                      f"{suggest(name, names)}", composite)
                elif (reason := index_refusal(field, ctx.registry)) is not None:
                    yield ctx.problem(f"field {name!r}: {reason}", composite)


def former_fields(field: Field) -> tuple[str, ...]:
    """The former fields whose data `field` takes: its `renamed_from`, or each field a
    composite field's parts are folded from."""
    if isinstance(field.renamed_from, Mapping):
        return tuple(field.renamed_from.values())
    return (field.renamed_from,) if field.renamed_from else ()


def _check_fold(ctx: _Context, entity: Entity, field: Field) -> Iterator[Problem]:
    """`renamed_from: {part: former field, …}`: only for a type with parts, each part known,
    each former field gone from the entity and taken by this field alone."""
    folded = field.renamed_from
    if not isinstance(folded, Mapping):
        return
    parts = [p.name for p in ctx.registry[field.type].parts(field)]
    if not parts:
        yield ctx.problem(f"renamed_from: a {field.type} field has no parts, so it cannot be made "
                          "from several fields; give the one former field's name", field)
        return
    for part, former in folded.items():
        if part not in parts:
            yield ctx.problem(f"renamed_from: {part!r} is not a part; the parts of {field.type} fields: "
                              f"{', '.join(parts)}{suggest(part, parts)}", field)
        still = entity.field(former)
        if still is not None:
            yield ctx.problem(f"renamed_from: field {former!r} (for part {part!r}) is still defined "
                              f"(at line {still.source.line}); remove it: its data moves into "
                              f"{field.name!r}", field)
    values = list(folded.values())
    for former in sorted({v for v in values if values.count(v) > 1}):
        yield ctx.problem(f"renamed_from: field {former!r} is folded into more than one part", field)
    for other in entity.active_fields:  # the later of two fields taking one former field is told
        if other is field or other.name == field.name:
            break
        for former in sorted(set(former_fields(other)) & set(values)):
            yield ctx.problem(f"renamed_from: field {former!r} is taken by field {other.name!r} "
                              f"(at line {other.source.line}) already", field)


def _check_field(ctx: _Context, entity: Entity, field: Field) -> Iterator[Problem]:
    reason = name_problem(field.name, "field")
    if reason:
        yield ctx.problem(reason, field)
        return
    if field.type not in ctx.registry:
        yield ctx.problem(f"{field.type!r} is not a field type; known types: "
                          f"{', '.join(ctx.registry.names())}", field)
        return
    field_type = ctx.registry[field.type]
    for column in field_type.columns(field):
        if len(column.column_name(field.name)) > MAX_IDENTIFIER:
            yield ctx.problem(f"field name {field.name!r} is too long for its column "
                              f"{column.column_name(field.name)!r}", field)
    yield from _check_fold(ctx, entity, field)
    for setting, message in field_type.check_definition(field):
        yield ctx.problem(f"{setting}: {message}", field)
    for message in field_type.check_in(field, entity, ctx.metamodel, ctx.registry):
        yield ctx.problem(message, field)
    # A stage field's options are its pipeline's stages: a repeated stage is reported there.
    keys = [o.key for o in field.choices] if field.type != "stage" else []
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        yield ctx.problem(f"option {key!r} appears more than once", field)
    low, high = field.settings.get("min"), field.settings.get("max")
    if _number(low) and _number(high) and low > high:  # a duration's "1h" is its type's to check
        yield ctx.problem(f"min {low} is larger than max {high}", field)
    if field_type.links_records:
        for target in dict.fromkeys(field.targets):
            if ctx.metamodel.entity(target) is None:
                known = [e.name for e in ctx.metamodel.active_entities]
                hint = renamed_note(target, ctx.metamodel.active_entities) or suggest(target, known)
                yield ctx.problem(f"reference target {target!r} is not an entity{hint}", field)
        if field.settings.get("on_delete") == "set_null" and field.required:
            yield ctx.problem("on_delete: set_null cannot apply to a required field", field)
    if field_type.stored_apart:
        yield from _check_apart(ctx, entity, field)
    if (field.unique or field.indexed) and (reason := index_refusal(field, ctx.registry)) is not None:
        yield ctx.problem(reason, field)
    reason = default_problem(field, ctx.registry)
    if reason:
        yield ctx.problem(reason, field)


def _check_apart(ctx: _Context, entity: Entity, field: Field) -> Iterator[Problem]:
    """A field stored apart that relates two entities (a many-to-many): its target is an
    entity, and the name the relation has on the target's side (`inverse`) is neither a
    field of the target nor the inverse name of another such field there."""
    relation = ctx.registry[field.type].apart_related(field, entity.name)
    if relation is None:
        return
    target = ctx.metamodel.entity(relation.target)
    if target is None:
        known = [e.name for e in ctx.metamodel.active_entities]
        yield ctx.problem(f"target {relation.target!r} is not an entity{suggest(relation.target, known)}",
                          field)
        return
    if not relation.editable:  # `through`: a link entity's records are the links
        yield from _check_through(ctx, entity, field, relation)
    inverse = relation.inverse
    if inverse is None:
        return
    if (reason := name_problem(inverse, "inverse")) is not None:
        yield ctx.problem(f"inverse: {reason}", field)
    elif target.field(inverse) is not None:
        yield ctx.problem(f"inverse: {inverse!r} is already a field of {target.name}; "
                          "give the links another name on that side", field)
    elif target.name == entity.name and inverse == field.name:
        yield ctx.problem(f"inverse: {inverse!r} is the field's own name", field)
    else:
        earlier = True  # only a field defined before this one: the clash is reported once
        for other in ctx.metamodel.active_entities:
            for each in other.active_fields:
                if other.name == entity.name and each.name == field.name:
                    earlier = False
                if not earlier or each.type not in ctx.registry:
                    continue
                found = ctx.registry[each.type].apart_related(each, other.name) \
                    if ctx.registry[each.type].stored_apart else None
                if found is not None and found.target == target.name and found.inverse == inverse:
                    yield ctx.problem(f"inverse: {inverse!r} is already the inverse name of "
                                      f"{other.name}.{each.name} on {target.name}", field)


def _check_through(ctx: _Context, entity: Entity, field: Field, relation: ApartRelation) -> Iterator[Problem]:
    """The link entity of a many-to-many `through` one: an entity with a reference to each
    side (`through_fields`), the pair unique together (one link per pair of records)."""
    link_name = relation.table.removeprefix(ENTITY_TABLE_PREFIX)
    link = ctx.metamodel.entity(link_name)
    if link is None:
        known = [e.name for e in ctx.metamodel.active_entities]
        yield ctx.problem(f"through: {link_name!r} is not an entity{suggest(link_name, known)}", field)
        return
    pair = (relation.source_column, relation.target_column)
    for name, wanted in zip(pair, (entity.name, relation.target), strict=True):
        found = link.field(name)
        if found is None or found.type not in ctx.registry or not ctx.registry[found.type].links_records \
                or found.target != wanted:
            yield ctx.problem(f"through: {link_name} needs a reference field {name!r} to {wanted} "
                              "(name the pair with through_fields: [to_this, to_target])", field)
            return
    if pair[0] == pair[1]:
        yield ctx.problem("through_fields: name two different reference fields", field)
        return
    if not any(set(key.fields) == set(pair) for key in link.unique):
        yield ctx.problem(f"through: {link_name} must keep one link per pair: add "
                          f"`unique: [[{pair[0]}, {pair[1]}]]` to it", field)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def index_refusal(field: Field, registry: FieldTypeRegistry) -> str | None:
    """Why `field` cannot be part of a unique constraint or an index, or None: a JSON column
    (a list of options) has no equality an index or a unique constraint could use."""
    if field.type not in registry:
        return None
    if registry[field.type].stored_apart:
        return f"a {field.type} field is kept in a table of its own (indexed already), not a column"
    if not registry[field.type].columns(field):
        return (f"a {field.type} field has no column in the entity's table (its values are kept "
                "elsewhere) and cannot be unique or indexed")
    if any(isinstance(c.type, sa.JSON) for c in registry[field.type].columns(field)):
        return f"a {field.type} field cannot be unique or indexed"
    return None


def default_problem(field: Field, registry: FieldTypeRegistry) -> str | None:
    """Why a field's default is not a value of its type, or None.

    Layering asks too, for a default set by field_overrides, to report it in that pack.
    """
    if field.default is None or field.type not in registry:
        return None
    field_type = registry[field.type]
    if not field_type.writable:
        return f"default: a {field.type} field gets its value from the engine"
    try:
        field_type.coerce(field.default, field)
    except CoercionError as error:
        return f"default: {error}"
    return None
