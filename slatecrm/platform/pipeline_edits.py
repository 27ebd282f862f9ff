"""The designer's pipeline edits that customisation.py's stage functions do not make alone:
putting a pipeline's stages in a new order, and changing a stage where it stands.

They are edits in customisation.py's sense (`edit(documents, metamodel)`, raising
DefinitionError for a request they refuse), so they plan and apply like every other
change of the organisation's layer. The order of a pack's own stages is the pack's (an
extension only adds stages, placed with `after`): what the organisation may reorder are
its own pipelines' stages, and where the stages it added to a pack's pipeline stand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .customisation import put_stage, refuse
from .layers import ORGANISATION, Documents


def order_stages(entity: str, pipeline: str, keys: Sequence[str]) -> Any:
    """Put the stages of `entity`.`pipeline` in the order of `keys` (every stage, once)."""
    def edit(docs: Documents, current: Any) -> None:
        where = f"{entity}.{pipeline}"
        target = current.entity(entity)
        existing = next((p for p in target.pipelines if p.name == pipeline), None) if target else None
        if existing is None:
            raise refuse(f"there is no pipeline {where}", where)
        now = [s.key for s in existing.stages]
        if sorted(keys) != sorted(now) or len(set(keys)) != len(keys):
            raise refuse(f"give every stage of {where} once: {', '.join(now)}", where)
        if list(keys) == now:
            return
        own = docs.get(("entity", entity), {}).get("pipelines", {}).get(pipeline)
        if own is not None:
            by_key = {s.get("key"): s for s in own.get("stages", [])}
            own["stages"] = [by_key[k] for k in keys]
            return
        _order_additions(docs, entity, pipeline, existing, list(keys))
    return edit


def _order_additions(docs: Documents, entity: str, pipeline: str, existing: Any, keys: list[str]) -> None:
    """A pack's pipeline: its own stages keep their order; the organisation's additions move,
    each placed `after` the stage now before it."""
    fixed = [s.key for s in existing.stages if s.pack != ORGANISATION]
    if [k for k in keys if k in fixed] != fixed:
        owner = next(s.pack for s in existing.stages if s.pack != ORGANISATION)
        raise refuse(f"the stages of {entity}.{pipeline} that pack {owner!r} defines keep the pack's "
                     f"order ({', '.join(fixed)}); only the stages the organisation added can move",
                     f"{entity}.{pipeline}")
    section = docs.get(("extension", entity), {}).get("pipelines", {}).get(pipeline, {})
    additions = {s.get("key"): s for s in section.get("stages", [])}
    placed: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        if key in fixed:
            continue
        stage = {k: v for k, v in additions[key].items() if k != "after"}
        if i > 0:
            stage["after"] = keys[i - 1]
        elif fixed:  # before every pack stage: not expressible; keep it first among additions
            raise refuse(f"stage {key!r} cannot come before the stages pack "
                         f"{existing.stages[0].pack!r} defines", f"{entity}.{pipeline}.{key}")
        placed.append(stage)
    section["stages"] = placed


def change_stage(entity: str, pipeline: str, stage: str, body: Mapping[str, Any]) -> Any:
    """customisation.put_stage for a stage that exists, keeping its place: a stage the
    organisation added to a pack's pipeline keeps its `after`."""
    def edit(docs: Documents, current: Any) -> None:
        definition = dict(body)
        section = docs.get(("extension", entity), {}).get("pipelines", {}).get(pipeline, {})
        before = next((s for s in section.get("stages", []) if s.get("key") == stage), None)
        if before is not None and "after" in before and "after" not in definition:
            definition["after"] = before["after"]
        put_stage(entity, pipeline, stage, definition)(docs, current)
    return edit
