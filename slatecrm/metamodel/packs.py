"""Reading configuration packs: a directory or a .zip holding pack.yaml and definition files.

Every file is parsed and validated before anything is built, and every problem of the
pack is reported at once, each with its file:line:column.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from pathlib import Path, PurePosixPath
from typing import Any

import semantic_version

from .errors import DefinitionError, Location, Problem
from .fieldtypes import FieldTypeRegistry
from .layouts import RELATED_LIMIT, Layout, LayoutSection, LayoutTab, RelatedList
from .model import (
    LOGIC_KEYS,
    ChoiceOption,
    CompositeKey,
    Entity,
    Field,
    Pipeline,
    SortOrder,
    Stage,
    Validation,
)
from .names import name_problem, suggest
from .roles import ACTIONS, ADMINISTRATOR, EntityGrant, Role, SharingRule
from .schemas import pack_schema
from .userattributes import BUILT_IN, UserAttribute
from .views import OWN_KEYS, View
from .workflows import Action, Trigger, Workflow, offset_minutes
from .yamlsource import SourceDocument, parse_yaml

MANIFEST = "pack.yaml"
#: Definition kinds, and whether this platform version reads them yet.
KINDS: Mapping[str, bool] = {
    "entity": True,
    "extension": True,
    "workflow": True,
    "view": True,
    "layout": True,
    "role": True,
    "user_attribute": True,
    "report": False,
    "seed": False,
}
#: Files a pack may carry besides its definitions.
DOCUMENTATION_FILES = ("README.md", "README", "LICENSE", "LICENSE.md", "CHANGELOG.md")
MAX_FILE_BYTES = 2 * 1024 * 1024
#: What a zipped pack may hold: files, and bytes once unpacked.
MAX_ZIP_FILES = 2000
MAX_ZIP_BYTES = 64 * 1024 * 1024
#: A field's options keeping people (not the system) from setting it.
READ_ONLY_OPTIONS = ("read_only", "read_only_after_create")


@dataclass(frozen=True)
class Requirement:
    pack: str
    range: str
    source: Location = attribute(default_factory=Location, compare=False)


@dataclass(frozen=True)
class Manifest:
    name: str
    namespace: str
    version: str
    title: str
    description: str = ""
    requires: tuple[Requirement, ...] = ()
    platform: str | None = None
    source: Location = attribute(default_factory=Location, compare=False)
    #: Where each top-level key's value stands, so a problem with one points at its line.
    locations: Mapping[str, Location] = attribute(default_factory=dict, compare=False)

    def locate(self, key: str) -> Location:
        """The position of `key`'s value in pack.yaml, else of the manifest."""
        return self.locations.get(key, self.source)


@dataclass(frozen=True)
class FieldOverride:
    """What an extending pack may change on a field it did not define."""

    field: str
    label: str | None = None
    help: str | None = None
    has_default: bool = False
    default: Any = None
    options: tuple[ChoiceOption, ...] = ()
    #: `read_only` / `read_only_after_create` set (true) or lifted (false); None: as defined
    read_only: bool | None = None
    read_only_after_create: bool | None = None
    source: Location = attribute(default_factory=Location, compare=False)
    #: where each option given stands, by key
    option_sources: Mapping[str, Location] = attribute(default_factory=dict, compare=False)
    #: Form-logic rules given (model.LOGIC_KEYS), replacing the field's own, and where each
    #: stands (`rule_sources`' keys: `options_if.<option>` for one option's rule).
    logic: Mapping[str, Any] = attribute(default_factory=dict)
    logic_sources: Mapping[str, Location] = attribute(default_factory=dict, compare=False)


@dataclass(frozen=True)
class StageAddition:
    stage: Stage
    after: str | None


@dataclass(frozen=True)
class StageOverride:
    """What an extending pack (or the organisation) may change on a stage it did not define:
    how it reads, never how it behaves (its rules are its pack's)."""

    key: str
    label: str | None = None
    colour: str | None = None
    source: Location = attribute(default_factory=Location, compare=False)


@dataclass(frozen=True)
class PipelineExtension:
    name: str
    label: str | None
    field: str | None
    stages: tuple[StageAddition, ...]
    source: Location = attribute(default_factory=Location, compare=False)
    stage_overrides: tuple[StageOverride, ...] = ()


@dataclass(frozen=True)
class Extension:
    """`kind: extension`: a pack adding to an entity defined by a pack it requires."""

    entity: str
    label: str | None = None
    label_plural: str | None = None
    description: str | None = None
    fields: tuple[Field, ...] = ()
    validations: tuple[Validation, ...] = ()
    unique: tuple[CompositeKey, ...] = ()
    indexes: tuple[CompositeKey, ...] = ()
    #: Replaces the entity's default_sort when given.
    default_sort: SortOrder | None = None
    field_overrides: tuple[FieldOverride, ...] = ()
    pipelines: tuple[PipelineExtension, ...] = ()
    pack: str = ""
    source: Location = attribute(default_factory=Location, compare=False)


@dataclass(frozen=True)
class Pack:
    manifest: Manifest
    entities: tuple[Entity, ...]
    extensions: tuple[Extension, ...]
    #: The pack's files (path → text): stored with the installation so it can be re-read.
    files: Mapping[str, str] = attribute(compare=False)
    origin: str = attribute(default="", compare=False)
    #: `kind: role` definitions.
    roles: tuple[Role, ...] = ()
    #: `kind: user_attribute` definitions.
    user_attributes: tuple[UserAttribute, ...] = ()
    #: `kind: workflow` definitions.
    workflows: tuple[Workflow, ...] = ()
    #: `kind: view` definitions.
    views: tuple[View, ...] = ()
    #: `kind: layout` definitions.
    layouts: tuple[Layout, ...] = ()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def checksum(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path].encode() + b"\0")
        return digest.hexdigest()


# --- reading files ---------------------------------------------------------------------
def read_pack_files(path: Path) -> tuple[dict[str, bytes], str]:
    """The files of a pack directory or .zip, by POSIX path relative to the pack root."""
    files: dict[str, bytes] = {}
    if path.is_dir():
        for item in sorted(path.rglob("*")):
            rel = item.relative_to(path).as_posix()
            if item.is_file() and not any(p.startswith(".") for p in rel.split("/")):
                files[rel] = item.read_bytes()[: MAX_FILE_BYTES + 1]
    elif path.is_file() and zipfile.is_zipfile(path):
        try:
            files = _read_zip(path)
        except (zipfile.BadZipFile, OSError, EOFError) as error:  # a damaged or truncated archive
            raise DefinitionError([Problem(f"{path} is not a readable .zip file ({error})",
                                           Location(str(path)))]) from None
    else:
        what = "does not exist" if not path.exists() else "is neither a directory nor a .zip file"
        raise DefinitionError([Problem(f"{path} {what}", Location(str(path)))])
    return files, str(path)


def _read_zip(path: Path) -> dict[str, bytes]:
    """The archive's files, read into memory (nothing is extracted to disk). An archive
    naming a file outside itself (an absolute path, `..`, a drive), holding more than
    MAX_ZIP_FILES files or unpacking to more than MAX_ZIP_BYTES is refused whole: a pack
    is a few hundred small text files, anything else is a mistake or an attack. Each file
    is read up to one byte past MAX_FILE_BYTES whatever its header claims, so a file
    larger than allowed is reported as such by load_pack."""
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as archive:
        entries = [i for i in archive.infolist() if not i.is_dir()]
        unsafe = [i.filename for i in entries if _unsafe(i.filename)]
        if unsafe:
            raise DefinitionError([Problem(f"the archive names a file outside the pack ({name}): "
                                           "refused", Location(str(path))) for name in unsafe[:10]])
        if len(entries) > MAX_ZIP_FILES:
            raise DefinitionError([Problem(f"the archive holds {len(entries)} files; a pack may hold "
                                           f"at most {MAX_ZIP_FILES}", Location(str(path)))])
        if sum(i.file_size for i in entries) > MAX_ZIP_BYTES:
            raise DefinitionError([Problem(f"the archive unpacks to more than {MAX_ZIP_BYTES} bytes; "
                                           "refused", Location(str(path)))])
        names = [i.filename for i in entries if not _hidden(i.filename)]
        tops = {n.split("/", 1)[0] for n in names}
        strip = len(tops) == 1 and all("/" in n for n in names)
        total = 0
        for name in names:
            rel = name.split("/", 1)[1] if strip else name
            with archive.open(name) as handle:
                files[rel] = handle.read(MAX_FILE_BYTES + 1)
            total += len(files[rel])
            if total > MAX_ZIP_BYTES:  # the headers understated the sizes
                raise DefinitionError([Problem(f"the archive unpacks to more than {MAX_ZIP_BYTES} bytes; "
                                               "refused", Location(str(path)))])
    return files


def _unsafe(name: str) -> bool:
    """A name that would leave the pack's folder if extracted."""
    posix = name.replace("\\", "/")
    return (posix.startswith("/") or ".." in PurePosixPath(posix).parts
            or (len(posix) > 1 and posix[1] == ":"))


def load_pack(path: Path | str, registry: FieldTypeRegistry) -> Pack:
    raw, origin = read_pack_files(Path(path))
    problems: list[Problem] = []
    texts: dict[str, str] = {}
    for rel, content in raw.items():
        if len(content) > MAX_FILE_BYTES:
            problems.append(Problem(f"file is larger than {MAX_FILE_BYTES} bytes",
                                    Location(rel, 1, 1), origin))
            continue
        try:
            texts[rel] = content.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(Problem(f"not UTF-8 text ({error.reason} at byte {error.start})",
                                    _byte_location(rel, content, error.start), origin))
    try:
        pack = pack_from_texts(texts, registry, origin)
    except DefinitionError as error:
        raise DefinitionError([*problems, *error.problems]) from None
    if problems:
        raise DefinitionError(problems)
    return pack


def _byte_location(rel: str, content: bytes, offset: int) -> Location:
    """The line and column of a byte, so that an editor can jump to a bad one."""
    before = content[:offset]
    return Location(rel, before.count(b"\n") + 1, offset - (before.rfind(b"\n") + 1) + 1)


def pack_from_texts(texts: Mapping[str, str], registry: FieldTypeRegistry, origin: str) -> Pack:
    """Build a pack from its files' texts: the one path for files on disk and in the database."""
    reader = _PackReader(registry, origin)
    return reader.read(texts)


class _PackReader:
    def __init__(self, registry: FieldTypeRegistry, origin: str):
        self.registry = registry
        self.schema = pack_schema(registry)
        self.origin = origin
        self.problems: list[Problem] = []

    def problem(self, message: str, location: Location) -> None:
        self.problems.append(Problem(message, location, self.origin))

    def read(self, texts: Mapping[str, str]) -> Pack:
        manifest: Manifest | None = None
        if MANIFEST not in texts:
            self.problem("a pack needs a pack.yaml at its top (name, namespace, version, title)",
                         Location(MANIFEST, 1, 1))
        documents: list[SourceDocument] = []
        for rel in sorted(texts):
            name = PurePosixPath(rel).name
            if rel == MANIFEST:
                source = self.parse(texts[rel], rel)
                if (source is not None and self.validate("manifest", source)
                        and self.check_version(source)):
                    manifest = self.manifest(source)
            elif name.endswith((".yaml", ".yml")):
                source = self.parse(texts[rel], rel)
                if source is not None:
                    documents.append(source)
            elif name not in DOCUMENTATION_FILES:
                self.problem(
                    "unexpected file: a pack holds pack.yaml, definition files (*.yaml) and "
                    f"documentation ({', '.join(DOCUMENTATION_FILES)})", Location(rel, 1, 1))
        pack_name = manifest.name if manifest else ""
        entities: list[Entity] = []
        extensions: list[Extension] = []
        roles: list[Role] = []
        attributes: list[UserAttribute] = []
        workflows: list[Workflow] = []
        views: list[View] = []
        layouts: list[Layout] = []
        for source in documents:
            kind = self.kind(source)
            if kind == "entity" and self.validate("entity", source):
                entities.append(self.entity(source, pack_name))
            elif kind == "extension" and self.validate("extension", source):
                extensions.append(self.extension(source, pack_name))
            elif kind == "role" and self.validate("role", source):
                roles.append(self.role(source, pack_name))
            elif kind == "user_attribute" and self.validate("user_attribute", source):
                attributes.append(self.user_attribute(source, pack_name))
            elif kind == "workflow" and self.validate("workflow", source):
                workflows.append(self.workflow(source, pack_name))
            elif kind == "view" and self.validate("view", source):
                views.append(self.view(source, pack_name))
            elif kind == "layout" and self.validate("layout", source):
                layouts.append(self.layout(source, pack_name))
        self.check_duplicates(entities)
        self.check_roles(roles)
        self.check_user_attributes(attributes)
        self.check_workflows(workflows)
        self.check_views(views)
        self.check_layouts(layouts)
        if self.problems or manifest is None:
            raise DefinitionError(self.problems)
        return Pack(manifest, tuple(entities), tuple(extensions), dict(texts), self.origin,
                    roles=tuple(roles), user_attributes=tuple(attributes), workflows=tuple(workflows),
                    views=tuple(views), layouts=tuple(layouts))

    def parse(self, text: str, rel: str) -> SourceDocument | None:
        result = parse_yaml(text, rel)
        if isinstance(result, Problem):
            self.problem(result.message, result.location)
            return None
        if result.data is None:
            self.problem("the file is empty: a definition starts with kind: and its keys",
                         result.locate([]))
            return None
        if not isinstance(result.data, dict):
            got = "a list" if isinstance(result.data, list) else "a single value"
            self.problem(f"expected a mapping of keys to values at the top of the file, got {got}",
                         result.locate([]))
            return None
        return result

    def validate(self, definition: str, source: SourceDocument) -> bool:
        found = self.schema.check(definition, source, self.origin)
        self.problems.extend(found)
        return not found

    def kind(self, source: SourceDocument) -> str | None:
        kind = source.data.get("kind")
        if kind is None:
            self.problem(f"missing required key 'kind' (one of: {', '.join(KINDS)})", source.locate([]))
            return None
        if not isinstance(kind, str):  # a list or mapping cannot even be looked up
            self.problem(f"expected one word, one of: {', '.join(KINDS)}", source.locate(["kind"]))
            return None
        if kind not in KINDS:
            self.problem(f"{kind!r} is not a kind of definition{suggest(str(kind), KINDS)}; "
                         f"kinds: {', '.join(KINDS)}", source.locate(["kind"]))
            return None
        if not KINDS[kind]:
            from slatecrm import __version__

            self.problem(f"kind {kind!r} is not supported by SlateCRM {__version__} yet; "
                         f"supported kinds: {', '.join(k for k, ok in KINDS.items() if ok)}",
                         source.locate(["kind"]))
            return None
        return str(kind)

    def check_version(self, source: SourceDocument) -> bool:
        """The schema's pattern lets through versions semantic_version refuses ("1.0.0-01");
        refused here, they would fail later wherever versions are compared."""
        try:
            semantic_version.Version(source.data["version"])
        except ValueError as error:
            self.problem(f"{source.data['version']!r} is not a semantic version: {error}",
                         source.locate(["version"]))
            return False
        return True

    # --- building typed definitions from validated documents ------------------------
    def manifest(self, source: SourceDocument) -> Manifest:
        data = source.data
        requires = tuple(
            Requirement(name, str(spec), source.locate(["requires", name]))
            for name, spec in (data.get("requires") or {}).items()
        )
        return Manifest(
            name=data["name"], namespace=data["namespace"], version=data["version"],
            title=data["title"], description=data.get("description", ""), requires=requires,
            platform=data.get("platform"), source=source.locate([]),
            locations={key: source.locate([key]) for key in data},
        )

    def field(self, source: SourceDocument, path: list[Any], name: str, doc: dict[str, Any],
              pack: str) -> Field:
        field_type = self.registry[doc["type"]]
        settings = {k: v for k, v in doc.items()
                    if k in field_type.settings_schema and k != "options"}
        choices = _choices(doc.get("options", ()))
        self.check_read_only(source, [*path, name], doc, field_type.writable)
        return Field(
            name=name, type=doc["type"], label=doc.get("label") or _label(name),
            help=doc.get("help", ""), required=doc.get("required", False),
            unique=doc.get("unique", False), indexed=doc.get("indexed", False),
            read_only=doc.get("read_only", False),
            read_only_after_create=doc.get("read_only_after_create", False),
            default=doc.get("default"), settings=settings, choices=choices,
            renamed_from=doc.get("renamed_from"), pack=pack,
            source=source.locate([*path, name], key=True),
            formula=doc.get("formula"), default_expression=doc.get("default_expression"),
            rule_sources={**{key: source.locate([*path, name, key])
                             for key in ("formula", "default_expression") if key in doc},
                          **logic_sources(source, [*path, name], doc)},
            **{key: doc[key] for key in LOGIC_KEYS if key in doc},
        )

    def check_read_only(self, source: SourceDocument, path: list[Any], doc: dict[str, Any],
                        writable: bool) -> None:
        """`read_only` and `read_only_after_create` only where they add something, reported at
        the option's line: both at once say the same as `read_only` alone, and a field the
        system sets (its type) or computes (a formula) is read-only for everyone already."""
        given = [key for key in READ_ONLY_OPTIONS if doc.get(key) is True]
        if len(given) == 2:
            self.problem("read_only already keeps people from setting the field, on a new record "
                         "too: leave out read_only_after_create",
                         source.locate([*path, "read_only_after_create"], key=True))
        if not writable:
            why = f"a field of type {doc['type']} is set by the system, never by people"
        elif "formula" in doc:
            why = "a field with a formula is computed, never set by people"
        else:
            return
        for key in given:
            self.problem(f"{key}: {why}; leave it out", source.locate([*path, key], key=True))

    def fields(self, source: SourceDocument, data: dict[str, Any], pack: str) -> tuple[Field, ...]:
        return tuple(self.field(source, ["fields"], name, doc, pack)
                     for name, doc in (data.get("fields") or {}).items())

    def stage(self, source: SourceDocument, path: list[Any], doc: dict[str, Any], pack: str) -> Stage:
        return Stage(
            key=doc["key"], label=doc.get("label") or _label(doc["key"]),
            category=doc.get("category", "open"), probability=doc.get("probability"),
            colour=doc.get("colour"), requires=tuple(doc.get("requires", ())),
            next=tuple(doc["next"]) if "next" in doc else None, pack=pack,
            source=source.locate(path), condition=doc.get("condition"),
            condition_message=doc.get("condition_message"),
            condition_source=source.locate([*path, "condition"]),
        )

    def validations(self, source: SourceDocument, data: dict[str, Any], pack: str) -> tuple[Validation, ...]:
        return tuple(
            Validation(name=doc.get("name") or f"rule_{i + 1}", condition=doc["condition"],
                       message=doc["message"], field=doc.get("field"), pack=pack,
                       source=source.locate(["validations", i, "condition"]),
                       field_source=source.locate(["validations", i, "field" if "field" in doc
                                                   else "condition"]))
            for i, doc in enumerate(data.get("validations") or ())
        )

    def composite_keys(self, source: SourceDocument, data: dict[str, Any], key: str,
                       pack: str) -> tuple[CompositeKey, ...]:
        return tuple(CompositeKey(fields=tuple(n.lstrip("-") for n in names), pack=pack,
                                  source=source.locate([key, i]),
                                  descending=tuple(n[1:] for n in names if n.startswith("-")))
                     for i, names in enumerate(data.get(key) or ()))

    def sort_order(self, source: SourceDocument, data: dict[str, Any], pack: str) -> SortOrder | None:
        """The file's `default_sort`, located at its line (checked against the merged
        entity's fields in checks.py, where extensions have added theirs)."""
        if not data.get("default_sort"):
            return None
        return SortOrder(keys=tuple(data["default_sort"]), pack=pack, source=source.locate(["default_sort"]))

    def entity(self, source: SourceDocument, pack: str) -> Entity:
        data = source.data
        label = data.get("label") or _label(data["name"])
        pipelines = []
        for name, doc in (data.get("pipelines") or {}).items():
            stages = []
            for i, stage_doc in enumerate(doc["stages"]):
                if "after" in stage_doc:
                    self.problem("'after' places a stage added by an extension; here the order "
                                 "of the list is the order of the stages",
                                 source.locate(["pipelines", name, "stages", i, "after"], key=True))
                stages.append(self.stage(source, ["pipelines", name, "stages", i], stage_doc, pack))
            pipelines.append(Pipeline(
                name=name, label=doc.get("label") or _label(name), field=doc.get("field", "stage"),
                stages=tuple(stages), close_date_field=doc.get("close_date_field"), pack=pack,
                source=source.locate(["pipelines", name], key=True),
            ))
        return Entity(
            name=data["name"], label=label, label_plural=data.get("label_plural") or f"{label}s",
            description=data.get("description", ""), fields=self.fields(source, data, pack),
            pipelines=tuple(pipelines), title_field=data.get("title_field"),
            title_template=data.get("title_template"),
            validations=self.validations(source, data, pack),
            unique=self.composite_keys(source, data, "unique", pack),
            indexes=self.composite_keys(source, data, "indexes", pack),
            default_sort=self.sort_order(source, data, pack),
            renamed_from=data.get("renamed_from"),
            pack=pack, source=source.locate(["name"]),
        )

    def extension(self, source: SourceDocument, pack: str) -> Extension:
        data = source.data
        overrides = tuple(
            FieldOverride(
                field=name, label=doc.get("label"), help=doc.get("help"),
                has_default="default" in doc, default=doc.get("default"),
                options=_choices(doc.get("options", ())),
                read_only=doc.get("read_only"), read_only_after_create=doc.get("read_only_after_create"),
                source=source.locate(["field_overrides", name], key=True),
                option_sources={key: source.locate(["field_overrides", name, key], key=True)
                                for key in READ_ONLY_OPTIONS if key in doc},
                logic={key: doc[key] for key in LOGIC_KEYS if key in doc},
                logic_sources=logic_sources(source, ["field_overrides", name], doc),
            )
            for name, doc in (data.get("field_overrides") or {}).items()
        )
        pipelines = tuple(
            PipelineExtension(
                name=name, label=doc.get("label"), field=doc.get("field"),
                stages=tuple(
                    StageAddition(self.stage(source, ["pipelines", name, "stages", i], s, pack),
                                  s.get("after"))
                    for i, s in enumerate(doc.get("stages") or ())
                ),
                source=source.locate(["pipelines", name], key=True),
                stage_overrides=tuple(
                    StageOverride(key, o.get("label"), o.get("colour"),
                                  source.locate(["pipelines", name, "stage_overrides", key], key=True))
                    for key, o in (doc.get("stage_overrides") or {}).items()
                ),
            )
            for name, doc in (data.get("pipelines") or {}).items()
        )
        return Extension(
            entity=data["entity"], label=data.get("label"), label_plural=data.get("label_plural"),
            description=data.get("description"), fields=self.fields(source, data, pack),
            validations=self.validations(source, data, pack), field_overrides=overrides,
            unique=self.composite_keys(source, data, "unique", pack),
            indexes=self.composite_keys(source, data, "indexes", pack),
            default_sort=self.sort_order(source, data, pack),
            pipelines=pipelines, pack=pack,
            source=source.locate(["entity"]),
        )

    def role(self, source: SourceDocument, pack: str) -> Role:
        """A validated `kind: role` document; names it gives are checked against the
        effective metamodel when the packs are merged (metamodel/rolechecks.py)."""
        data = source.data
        grants = []
        for entity, doc in (data.get("entities") or {}).items():
            path = ["entities", entity]
            actions = ACTIONS if doc["actions"] == "all" else doc["actions"]
            sharing = tuple(
                SharingRule(rule["where"], rule.get("access", "read"),
                            source.locate([*path, "sharing", i, "where"]))
                for i, rule in enumerate(doc.get("sharing") or ()))
            fields = doc.get("fields") or {}
            grants.append(EntityGrant(
                entity=entity, actions=frozenset(actions), scope=doc.get("scope", "own"),
                sharing=sharing, fields=tuple(fields.items()), source=source.locate(path, key=True),
                field_sources={name: source.locate([*path, "fields", name], key=True) for name in fields},
            ))
        return Role(
            name=data["name"], label=data.get("label") or _label(data["name"]),
            description=data.get("description", ""), platform=frozenset(data.get("platform") or ()),
            entities=tuple(grants), pack=pack, source=source.locate(["name"]),
        )

    def check_roles(self, roles: list[Role]) -> None:
        first: dict[str, Role] = {}
        for role in roles:
            if role.name == ADMINISTRATOR:
                self.problem(f"{ADMINISTRATOR!r} is the built-in role (every right, every record); "
                             "give this role another name", role.source)
            elif role.name in first:
                self.problem(f"role {role.name!r} is defined twice in this pack "
                             f"(also at {first[role.name].source})", role.source)
            first.setdefault(role.name, role)

    def user_attribute(self, source: SourceDocument, pack: str) -> UserAttribute:
        """A validated `kind: user_attribute` document."""
        data = source.data
        return UserAttribute(
            name=data["name"], label=data.get("label") or _label(data["name"]), type=data["type"],
            description=data.get("description", ""), choices=_choices(data.get("choices") or ()),
            pack=pack, source=source.locate(["name"]))

    def check_user_attributes(self, attributes: list[UserAttribute]) -> None:
        """Names as a field's (they stand in rules), none of current_user's own, each once;
        options exactly for a choice, each key once."""
        first: dict[str, UserAttribute] = {}
        for found in attributes:
            problem = name_problem(found.name, "user attribute")
            if problem is None and found.name in BUILT_IN:
                problem = (f"{found.name!r} is already part of current_user ({', '.join(BUILT_IN)}); "
                           "give the attribute another name")
            if problem is not None:
                self.problem(problem, found.source)
            elif found.name in first:
                self.problem(f"user attribute {found.name!r} is defined twice in this pack "
                             f"(also at {first[found.name].source})", found.source)
            first.setdefault(found.name, found)
            if found.type == "choice" and not found.choices:
                self.problem(f"user attribute {found.name!r} is a choice: give its choices", found.source)
            elif found.type != "choice" and found.choices:
                self.problem(f"user attribute {found.name!r} is a {found.type}: only a choice has choices",
                             found.source)
            keys = [o.key for o in found.choices]
            for key in sorted({k for k in keys if keys.count(k) > 1}):
                self.problem(f"user attribute {found.name!r} names choice {key!r} twice", found.source)

    def workflow(self, source: SourceDocument, pack: str) -> Workflow:
        """A validated `kind: workflow` document; the names it gives (entity, fields, stages)
        and its rules and templates are checked against the effective metamodel when the packs
        are merged (metamodel/workflowchecks.py)."""
        data = source.data
        return Workflow(
            name=data["name"], label=data.get("label") or _label(data["name"]), entity=data["entity"],
            trigger=self.trigger(source, data["trigger"]), condition=data.get("condition"),
            actions=tuple(self.action(source, ["actions", i], doc) for i, doc in enumerate(data["actions"])),
            description=data.get("description", ""), active=data.get("active", True),
            timing=data.get("timing", "after_save"), retrigger=data.get("retrigger", False), pack=pack,
            source=source.locate(["name"]), entity_source=source.locate(["entity"]),
            condition_source=source.locate(["condition" if "condition" in data else "name"]),
            timing_source=source.locate(["timing" if "timing" in data else "name"]))

    def trigger(self, source: SourceDocument, doc: dict[str, Any]) -> Trigger:
        path: list[Any] = ["trigger"]
        locations = {key: source.locate([*path, key]) for key in doc}
        for name in doc.get("mapping") or {}:
            locations[f"mapping.{name}"] = source.locate([*path, "mapping", name], key=True)
        for i, name in enumerate(doc.get("fields") or ()):
            locations[f"fields.{name}"] = source.locate([*path, "fields", i])
        for i, name in enumerate(doc.get("roles") or ()):
            locations[f"roles.{name}"] = source.locate([*path, "roles", i])
        offset = doc.get("offset")
        return Trigger(
            kind=doc["kind"], fields=tuple(doc.get("fields") or ()), pipeline=doc.get("pipeline"),
            stage=doc.get("stage"), field=doc.get("field"), offset=offset,
            offset_minutes=(offset_minutes(offset) or 0) if offset is not None else 0,
            cron=doc.get("cron"), timezone=doc.get("timezone", "UTC" if doc["kind"] == "schedule" else None),
            filter=doc.get("filter"), mapping=tuple((doc.get("mapping") or {}).items()),
            idempotency_key=doc.get("idempotency_key"), match=doc.get("match"),
            roles=tuple(doc.get("roles") or ()), source=source.locate([*path, "kind"]),
            locations=locations)

    def action(self, source: SourceDocument, path: list[Any], doc: dict[str, Any]) -> Action:
        locations = {key: source.locate([*path, key]) for key in doc}
        for name in doc.get("set") or {}:
            locations[f"set.{name}"] = source.locate([*path, "set", name])
            locations[f"set.{name}:key"] = source.locate([*path, "set", name], key=True)
        kind = doc["kind"]
        strategy = doc.get("strategy", "fixed") if kind == "assign" else None
        timeout = doc.get("timeout", 10) if kind == "webhook" else None
        return Action(
            kind=kind, values=tuple((doc.get("set") or {}).items()), entity=doc.get("entity"),
            link=doc.get("link"), strategy=strategy, user=doc.get("user"), team=doc.get("team"),
            pipeline=doc.get("pipeline"), stage=doc.get("stage"), to=doc.get("to"),
            subject=doc.get("subject"), body=doc.get("body"), html=doc.get("html"), url=doc.get("url"),
            secret=doc.get("secret"), timeout_seconds=float(timeout) if timeout is not None else None,
            text=doc.get("text"), plugin=doc.get("name") if kind == "plugin" else None,
            params=dict(doc.get("params") or {}), source=source.locate([*path, "kind"]),
            locations=locations)

    def check_workflows(self, workflows: list[Workflow]) -> None:
        """Each name once in a pack; an assign action names the user or the team its strategy needs."""
        first: dict[str, Workflow] = {}
        for found in workflows:
            if found.name in first:
                self.problem(f"workflow {found.name!r} is defined twice in this pack "
                             f"(also at {first[found.name].source})", found.source)
            first.setdefault(found.name, found)
            for action in found.actions:
                if action.kind != "assign":
                    continue
                if action.strategy == "fixed" and action.user is None:
                    self.problem("assign: give the user (an e-mail address) to assign, or a strategy "
                                 "(round_robin, least_loaded) and a team", action.source)
                elif action.strategy != "fixed" and action.team is None:
                    self.problem(f"assign: strategy {action.strategy} picks a member of a team: "
                                 "give the team", action.locate("strategy"))
                if action.strategy == "fixed" and action.team is not None:
                    self.problem("assign: a fixed user needs no team (the team is for round_robin and "
                                 "least_loaded)", action.locate("team"))
                elif action.strategy != "fixed" and action.user is not None:
                    self.problem(f"assign: strategy {action.strategy} picks the user from the team; "
                                 "leave out user", action.locate("user"))

    def view(self, source: SourceDocument, pack: str) -> View:
        """A validated `kind: view` document; the names it gives (entity, fields, pipeline) and
        its filter are checked against the merged metamodel (metamodel/viewchecks.py)."""
        data = source.data
        locations = {key: source.locate([key]) for key in data}
        for key in ("columns", "card_fields", "sort"):
            for i, name in enumerate(data.get(key) or ()):
                locations[f"{key}.{name}"] = source.locate([key, i])
        return View(
            name=data["name"], label=data.get("label") or _label(data["name"]), entity=data["entity"],
            type=data.get("type", "list"), description=data.get("description", ""),
            columns=tuple(data.get("columns") or ()), filter=data.get("filter"),
            sort=tuple(data.get("sort") or ()), page_size=data.get("page_size"),
            pipeline=data.get("pipeline"), card_fields=tuple(data.get("card_fields") or ()),
            totals=data.get("totals"), field=data.get("field"), end_field=data.get("end_field"),
            duration_field=data.get("duration_field"), mode=data.get("mode"), pack=pack,
            source=source.locate(["name"]), locations=locations)

    def check_views(self, views: list[View]) -> None:
        """Each name once in a pack; a kanban view names its pipeline, a calendar view its
        date field, and each kind only takes its own keys (a list's columns mean nothing on a
        board)."""
        first: dict[str, View] = {}
        for found in views:
            if found.name in first:
                self.problem(f"view {found.name!r} is defined twice in this pack "
                             f"(also at {first[found.name].source})", found.source)
            first.setdefault(found.name, found)
            if found.type == "kanban" and found.pipeline is None:
                self.problem(f"view {found.name!r}: a kanban view names the pipeline whose stages are "
                             "its columns: give pipeline", found.locate("type"))
            if found.type == "calendar":
                self.check_calendar(found)
            for other, keys in OWN_KEYS.items():
                for key in keys:
                    if other != found.type and key in found.locations:
                        self.problem(f"view {found.name!r}: {key} is for a {other} view, this one is a "
                                     f"{found.type} view (type: {other} makes it one)", found.locate(key))

    def check_calendar(self, view: View) -> None:
        """A calendar places records by a date field, ends items by one field at most, and
        orders each day by its field (so takes no sort)."""
        if view.field is None:
            self.problem(f"view {view.name!r}: a calendar view names the date field that places "
                         "its records: give field", view.locate("type"))
        if view.end_field is not None and view.duration_field is not None:
            self.problem(f"view {view.name!r}: give end_field or duration_field, not both",
                         view.locate("duration_field"))
        if "sort" in view.locations:
            self.problem(f"view {view.name!r}: sort is for a list or kanban view; a calendar orders "
                         "each day by its field", view.locate("sort"))

    def layout(self, source: SourceDocument, pack: str) -> Layout:
        """A validated `kind: layout` document; the names it gives are checked against the
        merged metamodel (metamodel/layoutchecks.py), a field placed twice here."""
        data = source.data
        locations: dict[str, Location] = {"entity": source.locate(["entity"])}
        if "tabs" in data and "sections" in data:
            self.problem("give tabs (each with its sections) or sections (no tabs), not both",
                         source.locate(["sections"], key=True))
        untabbed = [{"label": "", "sections": data["sections"]}] if "sections" in data else []
        tab_docs = data.get("tabs") or untabbed
        tab_paths: list[list[Any]] = [["tabs", i] for i in range(len(tab_docs))] if "tabs" in data else \
            [[] for _ in tab_docs]
        tabs = []
        for tab_doc, tab_path in zip(tab_docs, tab_paths, strict=True):
            sections = []
            for j, doc in enumerate(tab_doc["sections"]):
                path: list[Any] = [*tab_path, "sections", j]
                for k, name in enumerate(doc["fields"]):
                    where = source.locate([*path, "fields", k])
                    if f"field:{name}" in locations:
                        self.problem(f"field {name!r} is placed twice (also at {locations[f'field:{name}']})",
                                     where)
                    locations.setdefault(f"field:{name}", where)
                sections.append(LayoutSection(doc.get("label", ""), doc.get("columns", 1),
                                              tuple(doc["fields"])))
            tabs.append(LayoutTab(tab_doc.get("label", ""), tuple(sections)))
        related = None
        if "related_lists" in data:
            related = []
            for i, doc in enumerate(data["related_lists"]):
                path = ["related_lists", i]
                locations[f"related:{i}"] = source.locate([*path, "entity"])
                locations[f"related:{i}:field"] = source.locate([*path, "field"])
                for k, name in enumerate(doc.get("columns") or ()):
                    locations[f"related:{i}:column:{name}"] = source.locate([*path, "columns", k])
                for k, key in enumerate(doc.get("sort") or ()):
                    locations[f"related:{i}:sort:{key}"] = source.locate([*path, "sort", k])
                related.append(RelatedList(doc["entity"], doc["field"], tuple(doc.get("columns") or ()),
                                           tuple(doc.get("sort") or ()), doc.get("limit", RELATED_LIMIT),
                                           doc.get("label")))
        compact = tuple((data.get("compact") or {}).get("fields") or ())
        for k, name in enumerate(compact):
            where = source.locate(["compact", "fields", k])
            if f"compact:{name}" in locations:
                self.problem(f"field {name!r} is in the compact layout twice", where)
            locations.setdefault(f"compact:{name}", where)
        return Layout(name=data.get("name") or data["entity"], entity=data["entity"], tabs=tuple(tabs),
                      related_lists=None if related is None else tuple(related), compact=compact,
                      pack=pack, source=source.locate(["name" if "name" in data else "entity"]),
                      locations=locations)

    def check_layouts(self, layouts: list[Layout]) -> None:
        """Each name once in a pack."""
        first: dict[str, Layout] = {}
        for found in layouts:
            if found.name in first:
                self.problem(f"layout {found.name!r} is defined twice in this pack "
                             f"(also at {first[found.name].source})", found.source)
            first.setdefault(found.name, found)

    def check_duplicates(self, entities: list[Entity]) -> None:
        first: dict[str, Entity] = {}
        for entity in entities:
            if entity.name in first:
                other = first[entity.name].source
                self.problem(f"entity {entity.name!r} is defined twice in this pack "
                             f"(also at {other})", entity.source)
            first.setdefault(entity.name, entity)


def logic_sources(source: SourceDocument, path: list[Any], doc: Mapping[str, Any]) -> dict[str, Location]:
    """Where each form-logic rule of a field's document stands: `options_if.<option>` for
    one option's rule of a choice, so that a problem with it points at its own line."""
    found = {key: source.locate([*path, key]) for key in LOGIC_KEYS if key in doc}
    if isinstance(doc.get("options_if"), Mapping):
        found.update({f"options_if.{option}": source.locate([*path, "options_if", option])
                      for option in doc["options_if"]})
    return found


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _choices(docs: Any) -> tuple[ChoiceOption, ...]:
    options = [
        ChoiceOption(key=d["key"], label=d.get("label") or _label(d["key"]), colour=d.get("colour"),
                     order=d.get("order", i))
        for i, d in enumerate(docs)
    ]
    return tuple(sorted(options, key=lambda o: o.order))


def _hidden(name: str) -> bool:
    """Files an archiver or a desktop adds (.DS_Store, __MACOSX/): skipped, as in directories."""
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))
