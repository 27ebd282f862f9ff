"""What a new version of a pack changes, in the words of the three-way merge report.

The plan says what happens to the database (statements, rows at risk); this says what the
new version changes in the definitions, at the paths the organisation's customisations use
(`entity.field.attribute`, `entity.field.options.key`, `entity.pipeline.stage`), so that a
consultant reads the two side by side: what comes, what is kept, what conflicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from slatecrm.metamodel.model import ChoiceOption, Entity, Field, Metamodel, Pipeline, Stage

#: A field's attributes compared between versions (options are compared one by one).
FIELD_KEYS = ("type", "label", "help", "required", "unique", "indexed", "default", "settings",
              "formula", "default_expression", "read_only", "read_only_after_create")
ENTITY_KEYS = ("label", "label_plural", "description", "title_field", "title_template")


def version_changes(before: Metamodel, after: Metamodel, pack: str) -> list[str]:
    """Each change of `after` from `before` in what `pack` defines or extends, one line each."""
    lines: list[str] = []
    names = {e.name for e in (*before.entities, *after.entities) if _touched(e, pack)}
    for name in sorted(names):
        old, new = before.entity(name), after.entity(name)
        if old is None:
            lines.append(f"{name}: new entity")
        elif new is None:
            lines.append(f"{name}: removed (its table is retired, its data kept)")
        else:
            lines.extend(_entity(old, new))
    for kind in ("role", "user_attribute", "workflow"):
        olds = {d.name: d for d in getattr(before, f"{kind}s") if d.pack == pack}
        news = {d.name: d for d in getattr(after, f"{kind}s") if d.pack == pack}
        what = kind.replace("_", " ")
        for name in sorted({*olds, *news}):
            if name not in olds:
                lines.append(f"{kind}:{name}: new {what}")
            elif name not in news:
                lines.append(f"{kind}:{name}: removed")
            elif olds[name] != news[name]:
                lines.append(f"{kind}:{name}: changed")
    return lines


def _touched(entity: Entity, pack: str) -> bool:
    return entity.pack == pack or pack in entity.extended_by


def _entity(old: Entity, new: Entity) -> Iterator[str]:
    for key in ENTITY_KEYS:
        if getattr(old, key) != getattr(new, key):
            yield f"{new.name}.{key}: {getattr(old, key)!r} → {getattr(new, key)!r}"
    old_fields = {f.name: f for f in old.active_fields}
    new_fields = {f.name: f for f in new.active_fields}
    for name in sorted(new_fields.keys() - old_fields.keys()):
        yield f"{new.name}.{name}: new {new_fields[name].type} field"
    for name in sorted(old_fields.keys() - new_fields.keys()):
        yield f"{new.name}.{name}: removed (retired, its data kept)"
    staged = {p.field for p in new.pipelines}  # their options are the stages, reported with them
    for name in sorted(old_fields.keys() & new_fields.keys()):
        yield from _field(f"{new.name}.{name}", old_fields[name], new_fields[name], name not in staged)
    old_pipes = {p.name: p for p in old.pipelines}
    for pipeline in new.pipelines:
        before = old_pipes.pop(pipeline.name, None)
        if before is None:
            yield f"{new.name}.pipelines.{pipeline.name}: new pipeline"
        else:
            yield from _pipeline(f"{new.name}.{pipeline.name}", before, pipeline)
    for name in old_pipes:
        yield f"{new.name}.pipelines.{name}: removed"


def _field(path: str, old: Field, new: Field, options: bool) -> Iterator[str]:
    for key in FIELD_KEYS:
        if getattr(old, key) != getattr(new, key):
            yield f"{path}.{key}: {_text(getattr(old, key))} → {_text(getattr(new, key))}"
    if options:
        yield from _options(f"{path}.options", old.choices, new.choices)


def _options(path: str, old: Sequence[ChoiceOption], new: Sequence[ChoiceOption]) -> Iterator[str]:
    before = {o.key: o for o in old}
    for option in new:
        was = before.pop(option.key, None)
        if was is None:
            yield f"{path}.{option.key}: new option {option.label!r}"
        elif was.label != option.label:
            yield f"{path}.{option.key}.label: {was.label!r} → {option.label!r}"
    for key in before:
        yield f"{path}.{key}: option removed"


def _pipeline(path: str, old: Pipeline, new: Pipeline) -> Iterator[str]:
    if old.label != new.label:
        yield f"{path}.label: {old.label!r} → {new.label!r}"
    before: dict[str, Stage] = {s.key: s for s in old.stages}
    for stage in new.stages:
        was = before.pop(stage.key, None)
        if was is None:
            yield f"{path}.{stage.key}: new stage {stage.label!r}"
        elif was != stage:
            changed = [k for k in ("label", "category", "probability", "colour", "requires", "next",
                                   "condition") if getattr(was, k) != getattr(stage, k)]
            yield f"{path}.{stage.key}: {', '.join(changed) or 'changed'}" + (
                f" ({was.label!r} → {stage.label!r})" if "label" in changed else "")
    for key in before:
        yield f"{path}.{key}: stage removed"


def _text(value: Any) -> str:
    return repr(dict(value)) if hasattr(value, "items") else repr(value)
