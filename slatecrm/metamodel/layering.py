"""Merging installed packs, in dependency order, into one effective metamodel.

Rules: a pack defines entities (`kind: entity`) and may extend entities of the packs it
requires (`kind: extension`): add fields, stages and pipelines, override labels, help,
defaults and choice options. Defining an entity another pack already defines is an error
that names both packs. Later layers (the organisation's own edits) merge the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace

import semantic_version

from slatecrm import __version__ as PLATFORM_VERSION

from .byname import ORGANISATION_LAYER, merged_by_name
from .checks import check_metamodel, default_problem
from .errors import DefinitionError, Problem
from .fieldtypes import FieldTypeRegistry
from .layoutchecks import merge_layouts
from .model import ChoiceOption, Entity, Field, Metamodel, PackRef, Pipeline, renamed_note
from .names import suggest
from .packs import READ_ONLY_OPTIONS, Extension, FieldOverride, Pack, PipelineExtension, Requirement
from .rolechecks import merge_roles
from .rules.functions import NO_FUNCTIONS, RuleFunctions
from .userattributes import UserAttribute
from .viewchecks import merge_views
from .workflowchecks import merge_workflows


def parse_range(spec: str) -> semantic_version.SimpleSpec | None:
    try:
        return semantic_version.SimpleSpec(spec)
    except ValueError:
        return None


def dependency_order(packs: Sequence[Pack]) -> list[Pack]:
    """Packs sorted so that each comes after what it requires; every problem at once."""
    problems: list[Problem] = []
    by_name: dict[str, Pack] = {}
    for pack in packs:
        m = pack.manifest
        if m.name in by_name:
            problems.append(Problem(f"pack {m.name!r} is given twice ({by_name[m.name].origin} "
                                    f"and {pack.origin})", m.locate("name"), pack.origin))
            continue
        by_name[m.name] = pack
        if m.platform is not None:
            spec = parse_range(m.platform)
            if spec is None:
                problems.append(Problem(f"{m.platform!r} is not a version range (like "
                                        "'>=0.1.0,<1.0.0' or '^0.1')", m.locate("platform"), pack.origin))
            elif semantic_version.Version(PLATFORM_VERSION) not in spec:
                problems.append(Problem(f"needs SlateCRM {m.platform}, this is {PLATFORM_VERSION}",
                                        m.locate("platform"), pack.origin))
    for pack in by_name.values():
        for req in pack.manifest.requires:
            spec = parse_range(req.range)
            if spec is None:
                problems.append(Problem(f"{req.range!r} is not a version range "
                                        "(like '^1.2.0' or '>=1.0.0,<2.0.0')", req.source, pack.origin))
            elif req.pack not in by_name:
                problems.append(Problem(f"requires pack {req.pack!r} ({req.range}), which is not "
                                        "installed or given", req.source, pack.origin))
            elif semantic_version.Version(by_name[req.pack].version) not in spec:
                problems.append(Problem(
                    f"requires {req.pack} {req.range}, but {req.pack} "
                    f"{by_name[req.pack].version} is installed or given", req.source, pack.origin))
    order: list[Pack] = []
    state: dict[str, str] = {}

    def visit(pack: Pack, trail: list[str], via: Requirement | None) -> None:
        if state.get(pack.name) == "done":
            return
        if state.get(pack.name) == "visiting" and via is not None:
            # Reported at the requirement that closes the cycle: the line to change.
            cycle = " → ".join([*trail[trail.index(pack.name):], pack.name])
            problems.append(Problem(f"dependency cycle: {cycle}", via.source,
                                    by_name[trail[-1]].origin))
            return
        state[pack.name] = "visiting"
        for req in pack.manifest.requires:
            if req.pack in by_name:
                visit(by_name[req.pack], [*trail, pack.name], req)
        state[pack.name] = "done"
        order.append(pack)

    for pack in sorted(by_name.values(), key=lambda p: p.name):
        visit(pack, [], None)
    problems.extend(_namespace_clashes(order))
    if problems:
        raise DefinitionError(problems)
    return order


def _namespace_clashes(ordered: Sequence[Pack]) -> list[Problem]:
    """A namespace taken twice, blamed on the later pack in dependency order: a pack that
    requires crm-core has to give way to it, not the other way round."""
    problems: list[Problem] = []
    owners: dict[str, Pack] = {}
    for pack in ordered:
        m = pack.manifest
        if m.namespace in owners:
            problems.append(Problem(f"namespace {m.namespace!r} is already taken by pack "
                                    f"{owners[m.namespace].name!r}", m.locate("namespace"), pack.origin))
        owners.setdefault(m.namespace, pack)
    return problems


def _requires_transitively(by_name: dict[str, Pack], pack: str, other: str) -> bool:
    todo, seen = [pack], set()
    while todo:
        current = todo.pop()
        for req in by_name[current].manifest.requires:
            if req.pack == other:
                return True
            if req.pack in by_name and req.pack not in seen:
                seen.add(req.pack)
                todo.append(req.pack)
    return False


def merge(packs: Sequence[Pack], registry: FieldTypeRegistry,
          new: Collection[str] = frozenset(), *, functions: RuleFunctions = NO_FUNCTIONS) -> Metamodel:
    """The effective metamodel of `packs` (all of them: installed and new); its rules may
    call the plugins' `functions`.

    `new` names the packs being installed now: an entity both an installed pack and a new
    one define is reported in the new pack, the one whose author has something to change."""
    ordered = dependency_order(packs)
    by_name = {p.name: p for p in ordered}
    problems: list[Problem] = []
    entities: dict[str, Entity] = {}
    for pack in ordered:
        for entity in pack.entities:
            if entity.name in entities:
                first = entities[entity.name]
                culprit, other = pack, by_name[first.pack]
                if first.pack in new and pack.name not in new:
                    culprit, other = other, pack
                mine = entity if culprit is pack else first
                theirs = first if culprit is pack else entity
                problems.append(Problem(
                    f"entity {entity.name!r} is already defined by pack {other.name!r} "
                    f"({theirs.source}); pack {culprit.name!r} may extend it with kind: extension "
                    "but not define it again", mine.source, culprit.origin))
                continue
            entities[entity.name] = entity
        for extension in pack.extensions:
            base = entities.get(extension.entity)
            if base is None:
                hint = (renamed_note(extension.entity, entities.values())
                        or suggest(extension.entity, entities))
                problems.append(Problem(f"extends entity {extension.entity!r}, which no pack given, "
                                        f"installed or required defines{hint}",
                                        extension.source, pack.origin))
                continue
            if base.pack != pack.name and not _requires_transitively(by_name, pack.name, base.pack):
                problems.append(Problem(
                    f"extends {extension.entity!r} of pack {base.pack!r} without requiring "
                    f"{base.pack!r}: add it to requires in pack.yaml", extension.source, pack.origin))
                continue
            entities[extension.entity] = _extend(base, extension, pack, registry, problems)
    finished = _completed(tuple(_with_stage_fields(e, registry) for e in entities.values()), registry)
    attributes, attribute_problems = merge_user_attributes(ordered)
    problems.extend(attribute_problems)
    metamodel = Metamodel(
        entities=finished,
        packs=tuple(PackRef(p.name, p.version, p.manifest.namespace) for p in ordered),
        user_attributes=attributes,
    )
    problems.extend(check_metamodel(metamodel, registry, {p.name: p.origin for p in ordered}, functions))
    if problems:
        raise DefinitionError(problems)
    return _with_roles(metamodel, ordered, by_name, registry, functions)


def merge_user_attributes(ordered: Sequence[Pack]) -> tuple[tuple[UserAttribute, ...], list[Problem]]:
    """The user attributes of every pack, then the organisation's, which may replace a pack's
    of the same name (another type, other options); a pack may not, as with roles: two packs
    giving one name two meanings would make one of them read the other's values."""
    merged: dict[str, UserAttribute] = {}
    problems: list[Problem] = []
    for _pack, _origin, found in merged_by_name([(p.name, p.origin, p.user_attributes) for p in ordered],
                                                "user attribute", problems):
        merged[found.name] = found
    return tuple(merged.values()), problems


def _with_roles(metamodel: Metamodel, ordered: Sequence[Pack], by_name: dict[str, Pack],
                registry: FieldTypeRegistry, functions: RuleFunctions) -> Metamodel:
    """The roles, workflows, views and layouts of every pack, then the organisation's (which
    may replace a pack's by name; a pack may replace a view or a layout of a pack it
    requires), checked against the merged entities."""
    def may_name(pack: str, other: str) -> bool:
        if pack in (other, ORGANISATION_LAYER):
            return True
        return pack in by_name and _requires_transitively(by_name, pack, other)

    roles, problems = merge_roles([(p.name, p.origin, p.roles) for p in ordered], metamodel, may_name,
                                  registry, functions)
    # A manual trigger names roles: the workflows are checked against the merged roles too.
    workflows, workflow_problems = merge_workflows([(p.name, p.origin, p.workflows) for p in ordered],
                                                   replace(metamodel, roles=roles), may_name, registry,
                                                   functions)
    problems.extend(workflow_problems)
    views, view_problems = merge_views([(p.name, p.origin, p.views) for p in ordered], metamodel, may_name,
                                       registry, functions)
    problems.extend(view_problems)
    layouts, layout_problems = merge_layouts([(p.name, p.origin, p.layouts) for p in ordered], metamodel,
                                             may_name, registry)
    problems.extend(layout_problems)
    if problems:
        raise DefinitionError(problems)
    return replace(metamodel, roles=roles, workflows=workflows, views=views, layouts=layouts)


def _extend(base: Entity, ext: Extension, pack: Pack, registry: FieldTypeRegistry,
            problems: list[Problem]) -> Entity:
    fields = list(base.fields)
    names = {f.name: i for i, f in enumerate(fields)}
    for new in ext.fields:
        if new.name in names:
            problems.append(Problem(
                f"field {new.name!r} of {base.name!r} is already defined by pack "
                f"{fields[names[new.name]].pack!r}; use field_overrides to change its label, "
                "help, default or options", new.source, pack.origin))
            continue
        names[new.name] = len(fields)
        fields.append(new)
    for override in ext.field_overrides:
        if override.field not in names:
            problems.append(Problem(f"{base.name!r} has no field {override.field!r}"
                                    f"{suggest(override.field, names)}", override.source, pack.origin))
            continue
        current = fields[names[override.field]]
        changes: dict[str, object] = {}
        if override.label is not None:
            changes["label"] = override.label
        if override.help is not None:
            changes["help"] = override.help
        if override.has_default:
            changes["default"] = override.default
        if override.options:
            if not current.choices:
                problems.append(Problem(f"field {override.field!r} is a {current.type} field "
                                        "and has no options", override.source, pack.origin))
            else:
                changes["choices"] = _merge_choices(current.choices, override.options)
        for key in READ_ONLY_OPTIONS:
            given = getattr(override, key)
            if given is not None:
                changes[key] = given
        if override.logic:  # a rule given replaces the field's own; reported in this pack
            changes.update(override.logic)
            changes["rule_sources"] = {**current.rule_sources, **override.logic_sources}
            changes["rule_packs"] = {**current.rule_packs, **{key: pack.name for key in override.logic}}
        changed = replace(current, **changes)  # type: ignore[arg-type]
        _check_read_only_override(changed, override, registry, pack, problems)
        if override.has_default and changed.type != "stage":  # a stage's options come later
            reason = default_problem(changed, registry)
            if reason:
                # Reported here, in the pack that wrote it, and not applied: left in, it would
                # be reported again at the field's definition in the pack being extended.
                problems.append(Problem(reason, override.source, pack.origin))
                changed = replace(changed, default=current.default)
        fields[names[override.field]] = changed
    pipelines = list(base.pipelines)
    for pext in ext.pipelines:
        index = next((i for i, p in enumerate(pipelines) if p.name == pext.name), None)
        if index is None:
            if not pext.stages or pext.stage_overrides:
                hint = suggest(pext.name, [p.name for p in pipelines])
                problems.append(Problem(f"pipeline {pext.name!r} is new here: give its stages "
                                        f"(stage_overrides change the stages of an existing pipeline){hint}",
                                        pext.source, pack.origin))
                continue
            for addition in pext.stages:
                if addition.after is not None:
                    problems.append(Problem(f"after: pipeline {pext.name!r} is new here; the order "
                                            "of the list is the order of its stages",
                                            addition.stage.source, pack.origin))
            stages = tuple(a.stage for a in pext.stages)
            pipelines.append(Pipeline(
                name=pext.name, label=pext.label or pext.name.replace("_", " ").capitalize(),
                field=pext.field or "stage", stages=stages, pack=pack.name, source=pext.source))
        else:
            pipelines[index] = _extend_pipeline(pipelines[index], pext, pack, problems)
    return replace(
        base,
        label=ext.label or base.label,
        label_plural=ext.label_plural or base.label_plural,
        description=ext.description if ext.description is not None else base.description,
        fields=tuple(fields),
        pipelines=tuple(pipelines),
        validations=(*base.validations, *ext.validations),
        unique=(*base.unique, *ext.unique),
        indexes=(*base.indexes, *ext.indexes),
        default_sort=ext.default_sort or base.default_sort,
        extended_by=(*base.extended_by, pack.name),
    )


def _merge_choices(current: tuple[ChoiceOption, ...],
                   extra: tuple[ChoiceOption, ...]) -> tuple[ChoiceOption, ...]:
    merged = {o.key: o for o in current}
    top = max((o.order for o in current), default=0)
    for option in extra:
        if option.key in merged:
            merged[option.key] = replace(merged[option.key], label=option.label,
                                         colour=option.colour or merged[option.key].colour)
        else:
            top += 1
            merged[option.key] = replace(option, order=top)
    return tuple(sorted(merged.values(), key=lambda o: o.order))


def _check_read_only_override(changed: Field, override: FieldOverride, registry: FieldTypeRegistry,
                              pack: Pack, problems: list[Problem]) -> None:
    """A field made `read_only` or `read_only_after_create` by another pack or the organisation:
    the same rules as in its definition (packs.py `check_read_only`), reported at the
    override's option."""
    made = [key for key in READ_ONLY_OPTIONS if getattr(override, key) is True]
    if not made:
        return
    where = override.option_sources
    if changed.read_only and changed.read_only_after_create:
        key = "read_only_after_create" if "read_only_after_create" in made else made[0]
        problems.append(Problem("read_only already keeps people from setting the field, on a new record "
                                "too: give only one of read_only and read_only_after_create",
                                where.get(key, override.source), pack.origin))
    field_type = registry[changed.type] if changed.type in registry.names() else None
    if field_type is not None and not field_type.writable:
        why = f"a field of type {changed.type} is set by the system, never by people"
    elif changed.formula is not None:
        why = "a field with a formula is computed, never set by people"
    else:
        return
    for key in made:
        problems.append(Problem(f"{key}: {why}; leave it out", where.get(key, override.source), pack.origin))


def _extend_pipeline(base: Pipeline, pext: PipelineExtension, pack: Pack,
                     problems: list[Problem]) -> Pipeline:
    stages = list(base.stages)
    if pext.field and pext.field != base.field:
        problems.append(Problem(f"pipeline {base.name!r} runs on field {base.field!r}; an "
                                "extension cannot move it", pext.source, pack.origin))
    for addition in pext.stages:
        keys = [s.key for s in stages]
        if addition.stage.key in keys:
            problems.append(Problem(f"pipeline {base.name!r} already has a stage "
                                    f"{addition.stage.key!r}", addition.stage.source, pack.origin))
            continue
        if addition.after is None:
            stages.append(addition.stage)
        elif addition.after in keys:
            stages.insert(keys.index(addition.after) + 1, addition.stage)
        else:
            problems.append(Problem(f"after: pipeline {base.name!r} has no stage "
                                    f"{addition.after!r}", addition.stage.source, pack.origin))
    for override in pext.stage_overrides:
        keys = [s.key for s in stages]
        if override.key not in keys:
            problems.append(Problem(f"pipeline {base.name!r} has no stage {override.key!r}"
                                    f"{suggest(override.key, keys)}", override.source, pack.origin))
            continue
        index = keys.index(override.key)
        stages[index] = replace(stages[index], label=override.label or stages[index].label,
                                colour=override.colour or stages[index].colour)
    return replace(base, label=pext.label or base.label, stages=tuple(stages))


def _completed(entities: tuple[Entity, ...], registry: FieldTypeRegistry) -> tuple[Entity, ...]:
    """Each field completed by its type from the rest of the metamodel (`FieldType.complete`)."""
    whole = Metamodel(entities=entities)
    return tuple(replace(e, fields=tuple(
        registry[f.type].complete(f, e, whole) if f.type in registry else f for f in e.fields))
        for e in entities)


def _with_stage_fields(entity: Entity, registry: FieldTypeRegistry) -> Entity:
    """Each pipeline's stage field, made if not declared, with the stages as its options."""
    fields = list(entity.fields)
    for pipeline in entity.pipelines:
        options = tuple(ChoiceOption(s.key, s.label, s.colour, i) for i, s in enumerate(pipeline.stages))
        index = next((i for i, f in enumerate(fields) if f.name == pipeline.field), None)
        if index is None:
            fields.append(Field(name=pipeline.field, type="stage", label=pipeline.label,
                                choices=options, pack=pipeline.pack, source=pipeline.source))
        elif fields[index].type == "stage":
            fields[index] = replace(fields[index], choices=options)
    return replace(entity, fields=tuple(fields))


