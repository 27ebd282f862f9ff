"""The three-way merge of a pack upgrade: installed version (base), new version, and the
organisation's customisations on top.

The organisation's layer is a set of documents (customisation.py) written against what the
installed version defined. Merged as they are over a new version, they would silently win
over what the new version changed (a label both relabelled), or break the merge in the
organisation's name (a field both define, an override of a field the new version removed).
So before an upgrade each thing a document customises (a *leaf*: a path such as
`<entity>.<field>.options.<option>.label`) is compared between the merged metamodels
of the installed packs before and after the upgrade (without the organisation's layer):

- the new version did not change it, or changed it to the organisation's value: the
  customisation is kept;
- both changed it, differently: a conflict, resolved `new` (the customisation is removed
  from its document, the new version's value shows) or `mine` (kept, it wins as before);
- the new version removed what it customises, or now defines something of the name the
  organisation added: a conflict only `new` resolves (a customisation of nothing, or two
  definitions of one name, cannot be kept).

Every kind of document the organisation's layer holds is compared, and every key of it:
an extension's labels, description, default sort, fields, field overrides (each key, the
form-logic rules too, and each option), pipelines (label, stages, stage overrides),
validations (by name), composite unique keys and indexes; its own entities (by name); its
roles, user attributes, workflows, views and layouts key by key (threeway_named.py). What
names an entity or a field the new version removes is a conflict only `new` resolves too:
an own field referring to the entity, a role's grant on it, a workflow or view of it, a
column, sort key or placed field of a view or layout, a validation's or index's field.

Pure: metamodels and documents in, leaves out; nothing here reads the database.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import LOGIC_KEYS, Entity, Field, Metamodel, Pipeline
from slatecrm.metamodel.packs import Pack
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from .layers import Documents
from .storage.entityrename import entity_renames, rename_in_documents
from .threeway_named import INDEX, ITEM, NAMED_KINDS, changed_keys, field_uses, named_in, pack_documents

#: A step into a document: a mapping key, or (attribute, value) for the item of a list whose
#: `attribute` is `value` (("key", k): the stage or option k; ("name", n): the validation n),
#: or (COMPOSITE, "a+b") for the list item that is the composite key [a, b].
Step = str | tuple[str, str]
COMPOSITE = "+"

NEW, MINE = "new", "mine"
#: A field override's keys compared one by one (options are compared per option).
OVERRIDE_KEYS = ("label", "help", "default", "read_only", "read_only_after_create", *LOGIC_KEYS)
ENTITY_KEYS = ("label", "label_plural", "description")
#: Keys a document keeps when taking the new version's leaves them empty (an entity has fields).
REQUIRED = {"entity": ("fields",)}

_ABSENT = object()


@dataclass(frozen=True)
class Leaf:
    """One thing the organisation customised, with its value in the installed version
    (`base`), in the new one (`new`) and the organisation's (`mine`)."""

    path: str
    document: tuple[str, str]
    #: Where the customisation stands in its document: removing it there takes the new version's.
    steps: tuple[Step, ...]
    base: Any
    new: Any
    mine: Any
    #: "value": compared three ways; "gone": the new version removed what it customises;
    #: "taken": the new version now defines the name the organisation gave its own.
    kind: str = "value"
    #: Taking the new version's writes its value at `steps` (a key of a whole replacement,
    #: threeway_named.py) instead of removing the customisation there.
    sets: bool = False

    @property
    def adopts(self) -> bool:
        """Whether the upgrade writes the new version's value into the organisation's
        document by itself: a key of a replacement the organisation left as the pack had
        it, which the new version changed (kept as it is, it would hide the change)."""
        return self.sets and self.kind == "value" and self.mine == self.base and self.new != self.base

    @property
    def document_name(self) -> str:
        return f"{self.document[0]}/{self.document[1]}"

    @property
    def conflicting(self) -> bool:
        if self.kind != "value":
            return True
        return bool(self.mine != self.base and self.new != self.base and self.new != self.mine)

    @property
    def choices(self) -> tuple[str, ...]:
        return (NEW, MINE) if self.kind == "value" else (NEW,)

    @property
    def reason(self) -> str:
        if self.kind == "gone":
            return "the new version removes what the organisation customised"
        if self.kind == "taken":
            return "the new version now defines this name, which the organisation gave its own definition"
        if self.adopts:
            return "the organisation's replacement left it as the pack had it: the new version's is taken"
        if not self.conflicting:
            if self.new == self.base:
                return "the new version does not change it"
            return "the new version agrees" if self.new == self.mine else "the organisation's value"
        if self.new is _ABSENT or (self.new is None and self.base is not None):
            return "the organisation changed it and the new version removes it"
        return "the organisation and the new version both changed it, differently"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "document": self.document_name, "kind": self.kind,
                "installed": _shown(self.base), "new": _shown(self.new), "organisation": _shown(self.mine),
                "reason": self.reason, **({"resolutions": list(self.choices)} if self.conflicting else {}),
                **({"adopted": True} if self.adopts else {})}


def _shown(value: Any) -> Any:
    return None if value is _ABSENT else value


def leaves(docs: Documents, before: Metamodel, after: Metamodel, pack: str, *,
           versions: tuple[Pack | None, Pack | None] = (None, None)) -> list[Leaf]:
    """Every customisation of `docs` touching what `pack` defines or extends, compared
    between `before` and `after` (the installed packs' merged metamodels without the
    organisation's layer, before and after the upgrade). `versions` (the installed and the
    new version of `pack`) give its definitions by name as written, so that the
    organisation's replacements of them are compared key by key."""
    renames = entity_renames(before, after)
    former = {new: old for old, new in renames.items()}
    gone = _gone_entities(before, after, pack, former)
    found: list[Leaf] = []
    for (kind, name), document in sorted(followed(docs, before, after).items()):
        if kind == "extension":
            entity = str(document.get("entity", name))
            old, new = before.entity(former.get(entity, entity)), after.entity(entity)
            if _touches(old, pack) or _touches(new, pack):
                found.extend(_extension(document, (kind, name), entity, old, new, gone))
            else:
                found.extend(_references(document, (kind, name), entity, gone))
        elif kind == "entity":
            found.extend(_references(document, (kind, name), name, gone))
            taken = after.entity(name)
            if taken is not None and taken.pack == pack and before.entity(name) is None:
                found.append(Leaf(f"entity:{name}", (kind, name), (), None, f"entity of pack {pack}",
                                  "the organisation's entity", "taken"))
        elif kind in NAMED_KINDS:
            found.extend(_definition((kind, name), document, before, after, pack, versions, former, gone))
    return found


def _definition(key: tuple[str, str], document: Mapping[str, Any], before: Metamodel, after: Metamodel,
                pack: str, versions: tuple[Pack | None, Pack | None], former: Mapping[str, str],
                gone: set[str]) -> list[Leaf]:
    """A role, user attribute, workflow, view or layout of the organisation: its replacement
    of `pack`'s definition of that name (key by key where both versions' documents are at
    hand), and what in it names an entity or field the new version removes."""
    kind, name = key
    found: list[Leaf] = []
    old_named, new_named = getattr(before, kind)(name), getattr(after, kind)(name)
    owners = (getattr(old_named, "pack", None), getattr(new_named, "pack", None))
    if pack in owners:
        old_doc, new_doc = pack_documents(versions[0]).get(key), pack_documents(versions[1]).get(key)
        if old_doc is not None and new_doc is not None and owners == (pack, pack):
            found.extend(_named_keys(key, document, old_doc, new_doc))
        else:
            found.append(_named(kind, name, old_named, new_named))
    adopted = {leaf.steps[0] for leaf in found if leaf.adopts}  # the new version's value replaces these
    if kind in ("view", "layout"):
        found.extend(_uses(kind, name, document, before, after, pack, former, adopted))
    elif kind == "role" and "entities" not in adopted:
        found.extend(Leaf(f"role:{name}.entities.{entity}", key, ("entities", entity), f"entity {entity}",
                          None, grant, "gone")
                     for entity, grant in (document.get("entities") or {}).items() if entity in gone)
    elif kind == "workflow" and document.get("entity") in gone and "entity" not in adopted:
        found.append(Leaf(f"workflow:{name}", key, (), f"entity {document['entity']}", None,
                          "the organisation's workflow", "gone"))
    return found


def _uses(kind: str, name: str, document: Mapping[str, Any], before: Metamodel, after: Metamodel,
          pack: str, former: Mapping[str, str], adopted: set[Any]) -> Iterator[Leaf]:
    """The organisation's view or layout (its own, or its replacement of a pack's) naming a
    field of `pack`'s entity that the new version removes, or that entity: a conflict only
    `new` resolves (the column, sort key or placed field is dropped; where only the whole
    document can go, a filter or a calendar's date field, it goes)."""
    entity = str(document.get("entity", ""))
    old, new = before.entity(former.get(entity, entity)), after.entity(entity)
    if not (_touches(old, pack) or _touches(new, pack)):
        return
    key = (kind, name)
    if new is None:
        yield Leaf(f"{kind}:{name}", key, (), f"entity {entity}", None, f"the organisation's {kind}", "gone")
        return
    removed = _removed_fields(old, new)
    for steps, part, field in field_uses(kind, document, removed):
        if part in adopted:
            continue  # the new version's value replaces the organisation's, which named it
        path = f"{kind}:{name}.{part}.{field}" if steps else f"{kind}:{name}.{part}"
        yield Leaf(path, key, steps, f"field {entity}.{field}", None, field, "gone")


def _named_keys(key: tuple[str, str], document: Mapping[str, Any], old: Mapping[str, Any],
                new: Mapping[str, Any]) -> Iterator[Leaf]:
    """The organisation's replacement of a pack's definition, key by key (threeway_named.py)."""
    for name, base, after, mine in changed_keys(old, new, document, _ABSENT):
        yield Leaf(f"{key[0]}:{key[1]}.{name}", key, (name,), base, after, mine, sets=True)


def followed(docs: Documents, before: Metamodel, after: Metamodel) -> Documents:
    """`docs` following the entities the new version renames (`renamed_from`), as the merge
    will have them (layers.py): compared, and resolved, under the new names."""
    renames = entity_renames(before, after)
    return rename_in_documents(docs, renames) if renames else docs


def conflicts(installed: Sequence[Pack], upgraded: Sequence[Pack], docs: Documents, names: Sequence[str],
              registry: FieldTypeRegistry, *,
              functions: RuleFunctions = NO_FUNCTIONS) -> list[tuple[str, Leaf]]:
    """The conflicts (pack name, leaf) of `docs` with the packs `names` going from `installed` to `upgraded`
    (every installed pack, before and after): what `pack install` of a newer version checks,
    so that it never silently hides a change under a customisation. Empty when either
    side does not merge (the install's own merge reports why)."""
    if not docs or not names:
        return []
    try:
        before = merge(installed, registry, functions=functions)
        after = merge(upgraded, registry, set(names), functions=functions)
    except DefinitionError:
        return []
    olds = {p.name: p for p in installed}
    news = {p.name: p for p in upgraded}
    # An adoption is made by `pack upgrade` only: an install would hide the new version's value.
    return [(name, leaf) for name in names
            for leaf in leaves(docs, before, after, name, versions=(olds.get(name), news.get(name)))
            if leaf.conflicting or leaf.adopts]


def _touches(entity: Entity | None, pack: str) -> bool:
    return entity is not None and (entity.pack == pack or pack in entity.extended_by)


def _named(kind: str, name: str, old: Any, new: Any) -> Leaf:
    """A role, user attribute or workflow the organisation replaced as a whole: kept unless
    the new version changed (or newly defines) the pack's one it replaces."""
    def shown(definition: Any, what: str) -> str | None:
        return None if definition is None else f"{what} of pack {definition.pack}"

    base = shown(old, "as installed")
    changed = new is None or old is None or new != old
    after = shown(new, "changed by the new version" if old is not None else "new in the new version")
    return Leaf(f"{kind}:{name}", (kind, name), (), base, after if changed else base,
                "the organisation's replacement")


def _targets(body: Mapping[str, Any], entities: set[str]) -> list[str]:
    """The entities of `entities` a field the organisation defines refers to (its `target`,
    or its `targets`)."""
    targets = body.get("targets")
    named = [body.get("target"), *(targets if isinstance(targets, list) else [])]
    return sorted({str(t) for t in named if t in entities})


def _gone_entities(before: Metamodel, after: Metamodel, pack: str, former: Mapping[str, str]) -> set[str]:
    """The entities `pack` defined that the new version removes (one it renames is not gone)."""
    kept = {former.get(e.name, e.name) for e in after.active_entities}
    return {e.name for e in before.active_entities if e.pack == pack and e.name not in kept}


def _references(document: Mapping[str, Any], key: tuple[str, str], entity: str,
                gone: set[str]) -> Iterator[Leaf]:
    """The organisation's own fields (of its entity, or of an extension of an entity the
    upgrade does not touch) referring to an entity the new version removes."""
    for name, body in (document.get("fields") or {}).items():
        if targets := _targets(body, gone):
            yield Leaf(f"{entity}.{name}", key, ("fields", name), f"entity {', '.join(targets)}", None,
                       f"a {body.get('type')} field of the organisation", "gone")


def _extension(document: Mapping[str, Any], key: tuple[str, str], entity: str,
               old: Entity | None, new: Entity | None, removed_entities: set[str]) -> Iterator[Leaf]:
    def leaf(path: str, steps: tuple[Step, ...], base: Any, after: Any, mine: Any,
             kind: str = "value") -> Leaf:
        return Leaf(f"{entity}.{path}" if path else entity, key, steps, base, after, mine, kind)

    if new is None:
        yield leaf("", (), "defined", None, "extended by the organisation", "gone")
        return
    for attribute in ENTITY_KEYS:
        if attribute in document:
            yield leaf(attribute, (attribute,), getattr(old, attribute, None), getattr(new, attribute),
                       document[attribute])
    own = set(document.get("fields") or {})
    removed = _removed_fields(old, new) - own
    if "default_sort" in document:
        sort = list(document["default_sort"])
        gone = sorted(removed & {str(k).lstrip("-") for k in sort})
        yield leaf("default_sort", ("default_sort",), _sort(old), _sort(new) if not gone else None, sort,
                   "gone" if gone else "value")
    for name, body in (document.get("fields") or {}).items():
        defined = new.field(name)
        mine = f"a {body.get('type')} field of the organisation"
        if defined is not None and (old is None or old.field(name) is None):
            yield leaf(name, ("fields", name), None, f"a {defined.type} field of pack {defined.pack}",
                       mine, "taken")
        elif gone := _targets(body, removed_entities):
            yield leaf(name, ("fields", name), f"entity {', '.join(gone)}", None, mine, "gone")
        else:
            yield leaf(name, ("fields", name), None, None, mine)
    for name, override in (document.get("field_overrides") or {}).items():
        yield from _override(leaf, name, override, old.field(name) if old else None, new.field(name))
    for name, section in (document.get("pipelines") or {}).items():
        yield from _pipeline(leaf, name, section, _pipeline_of(old, name), _pipeline_of(new, name))
    yield from _validations(leaf, document.get("validations") or (), new, removed)
    for section in ("unique", "indexes"):
        yield from _composites(leaf, section, document.get(section) or (), new, removed)


def _removed_fields(old: Entity | None, new: Entity) -> set[str]:
    """The fields the installed version has and the new one no longer has (or retires)."""
    return {f.name for f in old.active_fields} - {f.name for f in new.active_fields} if old else set()


def _validations(leaf: Any, rules: Any, new: Entity, removed: set[str]) -> Iterator[Leaf]:
    """The organisation's validations of a pack's entity, by name: kept unless the new
    version now has a validation of that name, or removes a field the rule names."""
    for rule in rules:
        name = str(rule.get("name"))
        where: tuple[Step, ...] = ("validations", ("name", name))
        mine = {k: v for k, v in rule.items() if k != "name"}
        theirs = next((v for v in new.validations if v.name == name), None)
        uses = sorted({*named_in(str(rule.get("condition", "")), removed),
                       *([rule["field"]] if rule.get("field") in removed else [])})
        if theirs is not None:
            shown = {"condition": theirs.condition, "message": theirs.message,
                     **({"field": theirs.field} if theirs.field else {})}
            yield leaf(f"validations.{name}", where, None, shown, mine, "taken")
        elif uses:
            yield leaf(f"validations.{name}", where, f"fields {', '.join(uses)}", None, mine, "gone")
        else:
            yield leaf(f"validations.{name}", where, None, None, mine)


def _composites(leaf: Any, section: str, keys: Any, new: Entity, removed: set[str]) -> Iterator[Leaf]:
    """The organisation's composite unique keys or indexes of a pack's entity: kept unless
    the new version now declares the same combination (listed twice, the merge refuses it)
    or removes one of its fields."""
    declared = {c.fields for c in getattr(new, section)}
    for key in keys:
        names = tuple(str(n).lstrip("-") for n in key)
        joined = COMPOSITE.join(str(n) for n in key)
        where: tuple[Step, ...] = (section, (COMPOSITE, joined))
        gone = sorted(removed & set(names))
        if names in declared:
            yield leaf(f"{section}.{joined}", where, None, f"declared by pack {new.pack}", list(key), "taken")
        elif gone:
            yield leaf(f"{section}.{joined}", where, f"fields {', '.join(gone)}", None, list(key), "gone")
        else:
            yield leaf(f"{section}.{joined}", where, None, None, list(key))


def _override(leaf: Any, name: str, override: Mapping[str, Any], old: Field | None,
              new: Field | None) -> Iterator[Leaf]:
    steps: tuple[Step, ...] = ("field_overrides", name)
    if new is None:
        yield leaf(name, steps, "defined", None, "customised by the organisation", "gone")
        return
    for attribute in OVERRIDE_KEYS:
        if attribute in override:
            yield leaf(f"{name}.{attribute}", (*steps, attribute), _plain(getattr(old, attribute, None)),
                       _plain(getattr(new, attribute)), _plain(override[attribute]))
    for option in override.get("options") or ():
        key = str(option.get("key"))
        label = option.get("label") or key.replace("_", " ").capitalize()
        where = (*steps, "options", ("key", key))
        yield leaf(f"{name}.options.{key}", where, _option(old, key), _option(new, key), label)
        if "colour" in option:
            yield leaf(f"{name}.options.{key}.colour", (*where, "colour"), _option(old, key, "colour"),
                       _option(new, key, "colour"), option["colour"])


def _plain(value: Any) -> Any:
    """A mapping (a choice's `options_if`) as a dict, so the three sides compare equal."""
    return dict(value) if isinstance(value, Mapping) else value


def _option(field: Field | None, key: str, attribute: str = "label") -> str | None:
    found = next((o for o in field.choices if o.key == key), None) if field else None
    return getattr(found, attribute) if found is not None else None


def _pipeline_of(entity: Entity | None, name: str) -> Pipeline | None:
    return next((p for p in entity.pipelines if p.name == name), None) if entity else None


def _pipeline(leaf: Any, name: str, section: Mapping[str, Any], old: Pipeline | None,
              new: Pipeline | None) -> Iterator[Leaf]:
    steps: tuple[Step, ...] = ("pipelines", name)
    if old is None:
        # The organisation's own pipeline: only a pipeline of that name in the new version meets it.
        theirs = f"a pipeline of pack {new.pack}" if new is not None else None
        yield leaf(f"pipelines.{name}", steps, None, theirs, "the organisation's pipeline",
                   "taken" if new is not None else "value")
        return
    if new is None:
        yield leaf(f"pipelines.{name}", steps, "defined", None, "customised by the organisation", "gone")
        return
    if "label" in section:
        yield leaf(f"{name}.label", (*steps, "label"), old.label, new.label, section["label"])
    keys = [s.key for s in new.stages]
    added: list[str] = []  # an added stage may follow one the organisation added before it
    for stage in section.get("stages") or ():
        key = str(stage.get("key"))
        where = (*steps, "stages", ("key", key))
        if key in keys:
            yield leaf(f"{name}.{key}", where, None, f"a stage of pack {new.pack}",
                       "the organisation's stage", "taken")
        elif stage.get("after") is not None and stage["after"] not in (*keys, *added):
            yield leaf(f"{name}.{key}.after", (*where, "after"), stage["after"], None, stage["after"], "gone")
        else:
            yield leaf(f"{name}.{key}", where, None, None, "the organisation's stage")
        added.append(key)
    for key, looks in (section.get("stage_overrides") or {}).items():
        where = (*steps, "stage_overrides", key)
        old_stage, new_stage = old.stage(key), new.stage(key)
        if new_stage is None:
            yield leaf(f"{name}.{key}", where, "defined", None, "customised by the organisation", "gone")
            continue
        for attribute in ("label", "colour"):
            if attribute in looks:
                before = getattr(old_stage, attribute, None)
                yield leaf(f"{name}.{key}.{attribute}", (*where, attribute), before,
                           getattr(new_stage, attribute), looks[attribute])


def _sort(entity: Entity | None) -> list[str] | None:
    return list(entity.default_sort.keys) if entity is not None and entity.default_sort else None


def take_new(docs: Documents, leaf: Leaf) -> None:
    """Resolve `leaf` for the new version: remove the customisation from its document (and
    whatever it leaves empty; an extension left with nothing to add goes)."""
    document = docs.get(leaf.document)
    if document is None:
        return
    if not leaf.steps:
        del docs[leaf.document]
        return
    trail: list[Any] = [document]
    for step in leaf.steps[:-1]:
        node = _child(trail[-1], step)
        if node is _ABSENT:
            return
        trail.append(node)
    if leaf.sets and leaf.new is not _ABSENT and isinstance(trail[-1], dict):
        trail[-1][leaf.steps[-1]] = copy.deepcopy(leaf.new)  # a key of a whole replacement
        return
    _remove(trail[-1], leaf.steps[-1])
    for parent, step in zip(reversed(trail[:-1]), reversed(leaf.steps[:-1]), strict=True):
        node = _child(parent, step)
        if node in ({}, []) and not (parent is document and step in REQUIRED.get(leaf.document[0], ())):
            _remove(parent, step)
    if leaf.document[0] == "extension" and not set(document) - {"kind", "entity"}:
        del docs[leaf.document]


def _matches(item: Any, step: tuple[str, str]) -> bool:
    if step[0] == ITEM:
        return bool(item == step[1])
    if step[0] == COMPOSITE:
        return isinstance(item, list) and COMPOSITE.join(str(n) for n in item) == step[1]
    return isinstance(item, dict) and item.get(step[0]) == step[1]


def _child(node: Any, step: Step) -> Any:
    if isinstance(step, tuple) and step[0] == INDEX:
        index = int(step[1])
        return node[index] if isinstance(node, list) and index < len(node) else _ABSENT
    if isinstance(step, tuple):
        return next((item for item in node if _matches(item, step)), _ABSENT) \
            if isinstance(node, list) else _ABSENT
    return node.get(step, _ABSENT) if isinstance(node, dict) else _ABSENT


def _remove(node: Any, step: Step) -> None:
    if isinstance(step, tuple) and isinstance(node, list):
        node[:] = [item for item in node if not _matches(item, step)]
    elif isinstance(node, dict):
        node.pop(step, None)
