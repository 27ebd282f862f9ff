"""The typed metamodel: frozen definitions of packs, entities, fields, pipelines and stages.

These are values. Loading makes them from pack files (slatecrm.metamodel.packs), layering
merges them (slatecrm.metamodel.layering), the schema engine stores them with each
revision (as_dict / from_dict) and builds tables from them.

The stored form carries a format number (FORMAT_VERSION). Revisions stored before the
number existed are format 1 and read as they are; a format newer than this code knows
is refused with a clear error rather than half-read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as attribute
from typing import Any, TypeVar

from .errors import Location
from .layouts import Layout, layout_dict, layout_from
from .roles import EntityGrant, Role, SharingRule
from .userattributes import UserAttribute
from .views import View, view_dict, view_from
from .workflows import Action, Trigger, Workflow

#: The version of the stored form (as_dict). 1: the form before the number was stored;
#: 2: entities gain composite `unique` and `indexes` (absent in format 1, read as none);
#: 3: `roles` (absent in formats 1 and 2, read as none);
#: 4: `user_attributes` (absent before, read as none);
#: 5: `workflows` (absent before, read as none); a workflow's `timing`, `retrigger`,
#: `timing_source` and a trigger's `match` and `roles` came later within format 5 and read
#: as their defaults (after_save, false, none) when absent; a field's `read_only` and
#: `read_only_after_create` too, stored only when true (absent: false), so that a revision
#: without them is stored exactly as before; an entity's `default_sort` likewise, stored
#: only when given (absent: none), and its `renamed_from` (absent: none); a composite
#: index's `descending` fields likewise (absent: none). A field's `renamed_from` may be an
#: object (part → former field, a fold into a composite field) within format 5 too; `views`
#: and `layouts` likewise, each stored only when there are some (absent: none). A field's form
#: logic (`visible_if`, `required_if`, `read_only_if`, `options_if`, `rule_packs`) likewise,
#: stored only when given (absent: none).
FORMAT_VERSION = 5


#: A field's form-logic options (model.Field), in the order they are checked and documented.
LOGIC_KEYS = ("visible_if", "required_if", "read_only_if", "options_if")


class MetamodelFormatError(ValueError):
    """A stored metamodel in a format this version of SlateCRM cannot read."""


@dataclass(frozen=True)
class ChoiceOption:
    key: str
    label: str
    colour: str | None = None
    order: int = 0


@dataclass(frozen=True, eq=True)
class Field:
    name: str
    type: str
    label: str
    help: str = ""
    required: bool = False
    unique: bool = False
    indexed: bool = False
    default: Any = None
    #: Type-specific settings (max_length, min, max, precision, scale, target, …).
    settings: Mapping[str, Any] = attribute(default_factory=dict)
    choices: tuple[ChoiceOption, ...] = ()
    #: The field's former name (its column is renamed), or, for a type with parts (address,
    #: person name), part → former field: several fields folded into this one's parts.
    renamed_from: str | Mapping[str, str] | None = None
    #: A retired field keeps its column (and data) but is hidden until re-added or purged.
    retired: bool = False
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    #: A computed field's rule: its value, stored, recomputed on every write, read-only.
    formula: str | None = None
    #: A rule giving the value of a new record that does not give one.
    default_expression: str | None = None
    #: Where `formula` and `default_expression` stand in the pack, by key.
    rule_sources: Mapping[str, Location] = attribute(default_factory=dict, compare=False)
    #: Shown to people but never set by them (API, forms, bulk edits); the system (workflows,
    #: sample data, the CLI, imports) sets it. Enforced with the roles' read-only fields
    #: (identity/access.py), so that one check refuses both.
    read_only: bool = False
    #: Given by a person on a new record only; after that as `read_only`.
    read_only_after_create: bool = False
    #: Form logic (docs/packs.md, "Form logic"): rules over the record as it will be saved.
    #: Shown to people, and writable by them, only while `visible_if` is true.
    visible_if: str | None = None
    #: Required (API writes too) while true.
    required_if: str | None = None
    #: Not changeable by people while true.
    read_only_if: str | None = None
    #: Which options people may pick: for a choice, option key → rule (an option without a
    #: rule is always offered); for a reference, one rule in which the field stands for
    #: the candidate record (`contact.account = account`).
    options_if: str | Mapping[str, str] | None = None
    #: The pack that wrote a form-logic rule, by key, when another pack's (or the
    #: organisation's) `field_overrides` gave it: a problem with it is reported there.
    rule_packs: Mapping[str, str] = attribute(default_factory=dict, compare=False)

    @property
    def has_logic(self) -> bool:
        """Whether any form-logic rule decides about the field."""
        return any(getattr(self, key) is not None for key in LOGIC_KEYS)

    @property
    def target(self) -> str | None:
        """The entity a reference points to (None for a polymorphic one: see `targets`)."""
        target = self.settings.get("target")
        return str(target) if target is not None else None

    @property
    def targets(self) -> tuple[str, ...]:
        """Every entity a reference may point to: its `target`, or the `targets` of a
        polymorphic reference ("related to" one of several entities)."""
        if self.target is not None:
            return (self.target,)
        targets = self.settings.get("targets")
        return tuple(str(t) for t in targets) if isinstance(targets, list | tuple) else ()


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    category: str = "open"
    probability: int | None = None
    colour: str | None = None
    requires: tuple[str, ...] = ()
    #: Stages a record may move to from this one; None means any.
    next: tuple[str, ...] | None = None
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    #: A rule a record must meet to enter the stage, and what to tell when it does not.
    condition: str | None = None
    condition_message: str | None = None
    condition_source: Location = attribute(default_factory=Location, compare=False)


@dataclass(frozen=True)
class Pipeline:
    name: str
    label: str
    field: str
    stages: tuple[Stage, ...]
    #: A date or datetime field set when a record enters a won or lost stage.
    close_date_field: str | None = None
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)

    def stage(self, key: str) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)


@dataclass(frozen=True)
class Validation:
    """A rule every saved record must meet: when `condition` is false, `message` is shown
    on `field` (or on the record as a whole). An unknown (null) condition passes, like an
    SQL CHECK constraint."""

    name: str
    condition: str
    message: str
    field: str | None = None
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    #: Where `field` stands in the pack (a problem with the field is reported there).
    field_source: Location = attribute(default_factory=Location, compare=False)


@dataclass(frozen=True)
class CompositeKey:
    """Several fields of one entity taken together, in order: a composite unique
    constraint (no two records share the combination) or a composite index."""

    fields: tuple[str, ...]
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)
    #: The fields of `fields` whose columns an index holds descending (`-field` in `indexes`).
    descending: tuple[str, ...] = ()


#: The system fields a list may sort on (besides the entity's sortable fields).
SORTABLE_SYSTEM = ("id", "created_at", "updated_at", "owner", "version")


def unsortable(name: str) -> str:
    """Why a field whose type is not `sortable` cannot order a list: the same words for a
    request's `sort` and for a pack's `default_sort`."""
    return f"{name!r} holds several options and cannot be sorted on"


@dataclass(frozen=True)
class SortOrder:
    """An entity's `default_sort`: the order of its lists when a request gives no sort.
    Each key is a field name, `-` first for descending; the id always ends the order
    (records/keyset.py), so the keys need not be unique."""

    keys: tuple[str, ...]
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        """The field names, without the `-` of a descending key."""
        return tuple(key.lstrip("-") for key in self.keys)


@dataclass(frozen=True)
class Entity:
    name: str
    label: str
    label_plural: str
    description: str = ""
    fields: tuple[Field, ...] = ()
    pipelines: tuple[Pipeline, ...] = ()
    title_field: str | None = None
    #: `{field} …` placeholders; when set, it names the record instead of title_field.
    title_template: str | None = None
    retired: bool = False
    validations: tuple[Validation, ...] = ()
    #: Combinations of fields that must be unique together, and composite indexes.
    unique: tuple[CompositeKey, ...] = ()
    indexes: tuple[CompositeKey, ...] = ()
    #: The order of the entity's lists when a request gives none; None: by id.
    default_sort: SortOrder | None = None
    #: The entity's name before: the schema planner renames its table and everything that
    #: names it (storage/plan.py) instead of retiring one entity and creating another.
    renamed_from: str | None = None
    #: The pack that defines the entity, and those that extend it, in merge order.
    pack: str = ""
    extended_by: tuple[str, ...] = ()
    source: Location = attribute(default_factory=Location, compare=False)

    @property
    def table_name(self) -> str:
        return ENTITY_TABLE_PREFIX + self.name

    @property
    def active_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.retired)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name and not f.retired), None)

    def any_field(self, name: str) -> Field | None:
        """A field by name, retired or not."""
        return next((f for f in self.fields if f.name == name), None)


def renamed_note(name: str, entities: Iterable[Entity]) -> str:
    """'; entity X was renamed to Y (at file:line): name Y' when an entity of `entities` is
    `renamed_from` `name`, else '': what a pack that still names the old entity is told."""
    for entity in entities:
        if entity.renamed_from == name and not entity.retired:
            return (f"; entity {name!r} was renamed to {entity.name!r} (at "
                    f"{entity.source}): name {entity.name!r} instead")
    return ""


#: Entity tables are `x_<name>`; system tables are `slate_<name>`. Entity names may not
#: start with "slate", so the two never meet.
ENTITY_TABLE_PREFIX = "x_"


@dataclass(frozen=True)
class PackRef:
    name: str
    version: str
    namespace: str


@dataclass(frozen=True)
class Metamodel:
    """The effective model: every entity, in merge order, plus retired ones."""

    entities: tuple[Entity, ...] = ()
    packs: tuple[PackRef, ...] = ()
    #: `kind: role` definitions (slatecrm.metamodel.roles), packs' and the organisation's.
    roles: tuple[Role, ...] = ()
    #: `kind: user_attribute` definitions: what rules may read as current_user.<name>.
    user_attributes: tuple[UserAttribute, ...] = ()
    #: `kind: workflow` definitions (slatecrm.metamodel.workflows), packs' and the organisation's.
    workflows: tuple[Workflow, ...] = ()
    #: `kind: view` definitions (slatecrm.metamodel.views), packs' and the organisation's.
    views: tuple[View, ...] = ()
    #: `kind: layout` definitions (slatecrm.metamodel.layouts), at most one per entity.
    layouts: tuple[Layout, ...] = ()

    @property
    def active_entities(self) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if not e.retired)

    def entity(self, name: str) -> Entity | None:
        return next((e for e in self.entities if e.name == name and not e.retired), None)

    def any_entity(self, name: str) -> Entity | None:
        return next((e for e in self.entities if e.name == name), None)

    def with_entities(self, entities: tuple[Entity, ...]) -> Metamodel:
        return replace(self, entities=entities)

    # --- storage form (kept with each revision) --------------------------------------
    def as_dict(self) -> dict[str, Any]:
        data = {
            "format": FORMAT_VERSION,
            "packs": [vars(p).copy() for p in self.packs],
            "entities": [_entity_dict(e) for e in self.entities],
            "roles": [_role_dict(r) for r in self.roles],
            "user_attributes": [_user_attribute_dict(a) for a in self.user_attributes],
            "workflows": [_workflow_dict(w) for w in self.workflows],
            **({"layouts": [layout_dict(layout) for layout in self.layouts]} if self.layouts else {}),
        }
        if self.views:  # absent when none: a revision without views is stored as before
            data["views"] = [view_dict(v) for v in self.views]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metamodel:
        """The metamodel stored as `data`, in any format up to FORMAT_VERSION."""
        version = data.get("format", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise MetamodelFormatError(f"the stored metamodel has an invalid format {version!r}")
        if version > FORMAT_VERSION:
            raise MetamodelFormatError(
                f"the stored metamodel has format {version}, newer than this version of SlateCRM "
                f"reads (up to {FORMAT_VERSION}): upgrade SlateCRM to read it")
        return cls(
            entities=tuple(_entity_from(e) for e in data.get("entities", [])),
            packs=tuple(PackRef(**p) for p in data.get("packs", [])),
            roles=tuple(_role_from(r) for r in data.get("roles", [])),
            user_attributes=tuple(_user_attribute_from(a) for a in data.get("user_attributes", [])),
            workflows=tuple(_workflow_from(w) for w in data.get("workflows", [])),
            views=tuple(view_from(v) for v in data.get("views", [])),
            layouts=tuple(layout_from(layout) for layout in data.get("layouts", [])),
        )

    def role(self, name: str) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)

    def user_attribute(self, name: str) -> UserAttribute | None:
        return next((a for a in self.user_attributes if a.name == name), None)

    def workflow(self, name: str) -> Workflow | None:
        return next((w for w in self.workflows if w.name == name), None)

    def view(self, name: str) -> View | None:
        return next((v for v in self.views if v.name == name), None)

    def views_of(self, entity: str, type: str | None = None) -> tuple[View, ...]:
        """The views of `entity` (of one `type`: list, kanban), in merge order."""
        return tuple(v for v in self.views if v.entity == entity and type in (None, v.type))
    def layout(self, name: str) -> Layout | None:
        return next((layout for layout in self.layouts if layout.name == name), None)

    def layout_of(self, entity: str) -> Layout | None:
        """The layout of `entity`'s record page, form and cards (None: the default ones)."""
        return next((layout for layout in self.layouts if layout.entity == entity), None)


def _location_dict(location: Location) -> dict[str, Any] | None:
    return vars(location).copy() if location.file else None


#: Where a definition made by code rather than read from a pack stands (shared: it is frozen).
_NOWHERE = Location()


def _location_from(data: Mapping[str, Any] | None) -> Location:
    return _restored(Location, data) if data else _NOWHERE


D = TypeVar("D")


Shape = tuple[frozenset[str], frozenset[str], dict[str, Any], dict[str, Callable[[], Any]]]


def _shape(cls: type[Any]) -> Shape:
    """A frozen dataclass's field names, the required ones, the defaults and the
    default factories."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__; restore it through its __init__")
    fields = dataclasses.fields(cls)
    names = frozenset(f.name for f in fields)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    factories = {f.name: f.default_factory for f in fields if f.default_factory is not dataclasses.MISSING}
    return names, names - defaults.keys() - factories.keys(), defaults, factories


#: The classes a revision holds thousands of, restored by `_restored`.
_SHAPES: dict[type[Any], Shape] = {cls: _shape(cls) for cls in (Location, ChoiceOption, Field)}


def _restored(cls: type[D], values: Mapping[str, Any]) -> D:
    """The frozen dataclass `cls` with `values`, from the stored form (which `as_dict`
    wrote, so the values are already of the right kinds).

    Made without the generated `__init__`, which sets each attribute through
    `object.__setattr__` (the price of `frozen`): a revision of 200 entities × 50 fields
    spent most of its parse there, 6× what setting the attributes at once costs. Unknown
    or missing keys go through `__init__` after all, for its TypeError naming the key.
    """
    names, required, defaults, factories = _SHAPES[cls]
    if not (values.keys() <= names and required <= values.keys()):
        return cls(**values)
    instance = object.__new__(cls)
    attributes = instance.__dict__
    attributes.update(defaults)
    for name, factory in factories.items():
        if name not in values:
            attributes[name] = factory()
    attributes.update(values)
    return instance


def _field_dict(f: Field) -> dict[str, Any]:
    return {
        "name": f.name, "type": f.type, "label": f.label, "help": f.help,
        "required": f.required, "unique": f.unique, "indexed": f.indexed, "default": f.default,
        "settings": dict(f.settings), "choices": [vars(c).copy() for c in f.choices],
        "renamed_from": f.renamed_from if not isinstance(f.renamed_from, Mapping) else dict(f.renamed_from),
        "retired": f.retired, "pack": f.pack,
        "source": _location_dict(f.source), "formula": f.formula,
        "default_expression": f.default_expression,
        "rule_sources": {k: _location_dict(v) for k, v in f.rule_sources.items()},
        **_true_flags(f, _SPARSE_FLAGS),
        **_logic_dict(f),
    }


def _logic_dict(f: Field) -> dict[str, Any]:
    """The field's form logic, stored only when given (a revision without any stays as it was)."""
    data: dict[str, Any] = {key: (dict(value) if isinstance(value, Mapping) else value)
                            for key in LOGIC_KEYS if (value := getattr(f, key)) is not None}
    if f.rule_packs:
        data["rule_packs"] = dict(f.rule_packs)
    return data


#: Field flags stored only when true (they came later within format 5; absent reads as false).
_SPARSE_FLAGS = ("read_only", "read_only_after_create")


def _true_flags(f: Field, names: tuple[str, ...]) -> dict[str, bool]:
    """The flags of `f` among `names` that are set: a revision without any stays as it was."""
    return {name: True for name in names if getattr(f, name)}


def _field_from(d: Mapping[str, Any]) -> Field:
    return _restored(Field, {
        **d,
        "settings": dict(d.get("settings", {})),
        "rule_sources": {k: _location_from(v) for k, v in (d.get("rule_sources") or {}).items()},
        "choices": tuple(_restored(ChoiceOption, c) for c in d.get("choices", [])),
        "source": _location_from(d.get("source")),
        **({"renamed_from": dict(d["renamed_from"])} if isinstance(d.get("renamed_from"), Mapping) else {}),
        **({"options_if": dict(d["options_if"])} if isinstance(d.get("options_if"), Mapping) else {}),
        **({"rule_packs": dict(d["rule_packs"])} if d.get("rule_packs") else {}),
    })


def _stage_dict(s: Stage) -> dict[str, Any]:
    data = vars(s).copy()
    data["requires"] = list(s.requires)
    data["next"] = None if s.next is None else list(s.next)
    data["source"] = _location_dict(s.source)
    data["condition_source"] = _location_dict(s.condition_source)
    return data


def _stage_from(d: Mapping[str, Any]) -> Stage:
    return Stage(
        **{k: v for k, v in d.items() if k not in ("requires", "next", "source", "condition_source")},
        requires=tuple(d.get("requires", ())),
        condition_source=_location_from(d.get("condition_source")),
        next=None if d.get("next") is None else tuple(d["next"]),
        source=_location_from(d.get("source")),
    )


def _entity_dict(e: Entity) -> dict[str, Any]:
    return {
        "name": e.name, "label": e.label, "label_plural": e.label_plural,
        "description": e.description, "title_field": e.title_field,
        "title_template": e.title_template,
        "retired": e.retired, "pack": e.pack,
        "extended_by": list(e.extended_by), "source": _location_dict(e.source),
        "fields": [_field_dict(f) for f in e.fields],
        "validations": [{**vars(v), "source": _location_dict(v.source),
                         "field_source": _location_dict(v.field_source)} for v in e.validations],
        "unique": [_key_dict(k) for k in e.unique],
        "indexes": [_key_dict(k) for k in e.indexes],
        **({} if e.default_sort is None else {"default_sort": _sort_dict(e.default_sort)}),
        **({} if e.renamed_from is None else {"renamed_from": e.renamed_from}),
        "pipelines": [
            {"name": p.name, "label": p.label, "field": p.field, "pack": p.pack,
             "close_date_field": p.close_date_field,
             "source": _location_dict(p.source), "stages": [_stage_dict(s) for s in p.stages]}
            for p in e.pipelines
        ],
    }


def _entity_from(d: Mapping[str, Any]) -> Entity:
    return Entity(
        **{k: v for k, v in d.items()
           if k not in ("fields", "pipelines", "extended_by", "source", "validations", "unique",
                        "indexes", "default_sort")},
        default_sort=_sort_from(d.get("default_sort")),
        unique=tuple(_key_from(k) for k in d.get("unique", ())),
        indexes=tuple(_key_from(k) for k in d.get("indexes", ())),
        extended_by=tuple(d.get("extended_by", ())),
        validations=tuple(Validation(**{**v, "source": _location_from(v.get("source")),
                                        "field_source": _location_from(v.get("field_source"))})
                          for v in d.get("validations", [])),
        source=_location_from(d.get("source")),
        fields=tuple(_field_from(f) for f in d.get("fields", [])),
        pipelines=tuple(
            Pipeline(
                name=p["name"], label=p["label"], field=p["field"], pack=p.get("pack", ""),
                close_date_field=p.get("close_date_field"),
                source=_location_from(p.get("source")),
                stages=tuple(_stage_from(s) for s in p["stages"]),
            )
            for p in d.get("pipelines", [])
        ),
    )


def _sort_dict(order: SortOrder) -> dict[str, Any]:
    return {"keys": list(order.keys), "pack": order.pack, "source": _location_dict(order.source)}


def _sort_from(d: Mapping[str, Any] | None) -> SortOrder | None:
    """A stored default_sort; revisions stored before there was one have none."""
    if not d:
        return None
    return SortOrder(keys=tuple(d["keys"]), pack=d.get("pack", ""), source=_location_from(d.get("source")))


def _key_dict(k: CompositeKey) -> dict[str, Any]:
    return {"fields": list(k.fields), "pack": k.pack, "source": _location_dict(k.source),
            **({"descending": list(k.descending)} if k.descending else {})}


def _key_from(d: Mapping[str, Any]) -> CompositeKey:
    return CompositeKey(fields=tuple(d["fields"]), pack=d.get("pack", ""),
                        source=_location_from(d.get("source")),
                        descending=tuple(d.get("descending", ())))


def _role_dict(r: Role) -> dict[str, Any]:
    return {
        "name": r.name, "label": r.label, "description": r.description,
        "platform": sorted(r.platform), "pack": r.pack, "source": _location_dict(r.source),
        "entities": [
            {"entity": g.entity, "actions": sorted(g.actions), "scope": g.scope,
             "sharing": [{"condition": s.condition, "access": s.access, "source": _location_dict(s.source)}
                         for s in g.sharing],
             "fields": [list(pair) for pair in g.fields], "source": _location_dict(g.source),
             "field_sources": {k: _location_dict(v) for k, v in g.field_sources.items()}}
            for g in r.entities
        ],
    }


def _role_from(d: Mapping[str, Any]) -> Role:
    return Role(
        name=d["name"], label=d["label"], description=d.get("description", ""),
        platform=frozenset(d.get("platform", ())), pack=d.get("pack", ""),
        source=_location_from(d.get("source")),
        entities=tuple(
            EntityGrant(
                entity=g["entity"], actions=frozenset(g.get("actions", ())), scope=g.get("scope", "own"),
                sharing=tuple(SharingRule(s["condition"], s.get("access", "read"),
                                          _location_from(s.get("source"))) for s in g.get("sharing", ())),
                fields=tuple((name, access) for name, access in g.get("fields", ())),
                source=_location_from(g.get("source")),
                field_sources={k: _location_from(v) for k, v in (g.get("field_sources") or {}).items()},
            )
            for g in d.get("entities", ())
        ),
    )


def _user_attribute_dict(a: UserAttribute) -> dict[str, Any]:
    return {"name": a.name, "label": a.label, "type": a.type, "description": a.description,
            "choices": [vars(o).copy() for o in a.choices], "pack": a.pack,
            "source": _location_dict(a.source)}


def _user_attribute_from(d: Mapping[str, Any]) -> UserAttribute:
    return UserAttribute(name=d["name"], label=d["label"], type=d["type"],
                         description=d.get("description", ""),
                         choices=tuple(ChoiceOption(**o) for o in d.get("choices", ())),
                         pack=d.get("pack", ""), source=_location_from(d.get("source")))


def _locations_dict(locations: Mapping[str, Location]) -> dict[str, Any]:
    return {k: _location_dict(v) for k, v in locations.items()}


def _locations_from(data: Mapping[str, Any] | None) -> dict[str, Location]:
    return {k: _location_from(v) for k, v in (data or {}).items()}


def _trigger_dict(t: Trigger) -> dict[str, Any]:
    return {"kind": t.kind, "fields": list(t.fields), "pipeline": t.pipeline, "stage": t.stage,
            "field": t.field, "offset": t.offset, "offset_minutes": t.offset_minutes, "cron": t.cron,
            "timezone": t.timezone, "filter": t.filter, "mapping": [list(pair) for pair in t.mapping],
            "idempotency_key": t.idempotency_key, "match": t.match, "roles": list(t.roles),
            "source": _location_dict(t.source),
            "locations": _locations_dict(t.locations)}


def _trigger_from(d: Mapping[str, Any]) -> Trigger:
    return Trigger(**{k: v for k, v in d.items()
                      if k not in ("fields", "mapping", "roles", "source", "locations")},
                   fields=tuple(d.get("fields", ())), roles=tuple(d.get("roles", ())),
                   mapping=tuple((name, path) for name, path in d.get("mapping", ())),
                   source=_location_from(d.get("source")), locations=_locations_from(d.get("locations")))


def _action_dict(a: Action) -> dict[str, Any]:
    data = {f.name: getattr(a, f.name) for f in dataclasses.fields(a)}
    data["values"] = [list(pair) for pair in a.values]
    data["params"] = dict(a.params)
    data["source"] = _location_dict(a.source)
    data["locations"] = _locations_dict(a.locations)
    return data


def _action_from(d: Mapping[str, Any]) -> Action:
    return Action(**{k: v for k, v in d.items() if k not in ("values", "params", "source", "locations")},
                  values=tuple((name, text) for name, text in d.get("values", ())),
                  params=dict(d.get("params") or {}), source=_location_from(d.get("source")),
                  locations=_locations_from(d.get("locations")))


def workflow_dict(w: Workflow) -> dict[str, Any]:
    """The stored form of a workflow (what a revision keeps)."""
    return _workflow_dict(w)


def _workflow_dict(w: Workflow) -> dict[str, Any]:
    return {"name": w.name, "label": w.label, "entity": w.entity, "description": w.description,
            "active": w.active, "timing": w.timing, "retrigger": w.retrigger, "pack": w.pack,
            "condition": w.condition,
            "trigger": _trigger_dict(w.trigger), "actions": [_action_dict(a) for a in w.actions],
            "source": _location_dict(w.source), "entity_source": _location_dict(w.entity_source),
            "condition_source": _location_dict(w.condition_source),
            "timing_source": _location_dict(w.timing_source)}


def _workflow_from(d: Mapping[str, Any]) -> Workflow:
    return Workflow(name=d["name"], label=d["label"], entity=d["entity"],
                    description=d.get("description", ""), active=d.get("active", True),
                    timing=d.get("timing", "after_save"), retrigger=d.get("retrigger", False),
                    pack=d.get("pack", ""), condition=d.get("condition"),
                    trigger=_trigger_from(d["trigger"]),
                    actions=tuple(_action_from(a) for a in d.get("actions", ())),
                    source=_location_from(d.get("source")),
                    entity_source=_location_from(d.get("entity_source")),
                    condition_source=_location_from(d.get("condition_source")),
                    timing_source=_location_from(d.get("timing_source")))
