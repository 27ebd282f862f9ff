"""`slatecrm pack export`: a configured database's definitions written out as a pack.

Two layers can be exported:

- `organisation` (the default): the organisation's own documents (slate_customisation:
  its entities, its extensions of the packs' entities, roles, user attributes, workflows),
  one file each, in a pack that `requires` every installed pack at a caret range of its
  installed version. Installed next to those packs on another database, it gives the same
  metamodel. A pack may not replace another pack's role, workflow or user attribute (only
  the organisation's layer may): such a replacement is refused by name rather than
  written into a pack that would not install.
- `all`: every installed pack's definitions and the organisation's, in one self-contained
  pack (no `requires`) for a database with no packs (`slatecrm init --no-default-packs`).
  Each source pack's files go under a folder numbered in dependency order
  (`00-crm-core/…`, `01-sales/…`, then `NN-organisation/…`): a pack applies its extensions
  in file order, so the packs' extensions land in the order they were merged in. A pack's
  role, workflow or user attribute the organisation replaced is left out for the
  organisation's, and a pack's layout replaced by a later pack or the organisation likewise.

Either way the pack is read back and merged before anything is written, so an export that
would not install is an error here, not on the customer's database.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from ruamel.yaml import YAML

from slatecrm.metamodel.errors import DefinitionError, Location, Problem
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import dependency_order, merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.packs import MANIFEST, Pack, pack_from_texts
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from .layers import ORGANISATION, Documents, documents, installed_packs

LAYERS = ("organisation", "all")
#: Definitions by name that only the organisation's layer may replace.
NAMED_KINDS = ("role", "workflow", "user_attribute")


def _yaml(document: object) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    text = io.StringIO()
    yaml.dump(document, text)
    return text.getvalue()


def folder(kind: str) -> str:
    """The folder of a kind's files, as in the shipped packs (entities/, roles/…)."""
    return "entities" if kind == "entity" else f"{kind}s"


def default_namespace(name: str) -> str:
    """A namespace from the pack's name: its letters and digits, at most 16."""
    namespace = re.sub(r"[^a-z0-9]", "", name.lower())[:16]
    return namespace if len(namespace) >= 2 else "export"


def _manifest(name: str, version: str, namespace: str | None, title: str | None,
              requires: Mapping[str, str]) -> str:
    manifest: dict[str, object] = {"name": name, "namespace": namespace or default_namespace(name),
                                   "version": version, "title": title or name.replace("-", " ").title()}
    if requires:
        manifest["requires"] = dict(requires)
    return _yaml(manifest)


def _named(pack: Pack, kind: str) -> Sequence[object]:
    return {"role": pack.roles, "workflow": pack.workflows, "user_attribute": pack.user_attributes}[kind]


#: The folder of one source pack's files in an `all` export: its place in dependency order, its name.
SOURCE_FOLDER = re.compile(r"^(\d{2,})-([^/]+)/")


def sources(pack: Pack) -> list[str]:
    """The packs whose definitions `pack` holds as an `--layer all` export (its `NN-<pack>/`
    folders; the organisation's layer is not a pack): an upgrade of one of them cannot be
    merged into the export, which claims their definitions as its own (packupgrade.py)."""
    found = {m.group(2) for rel in pack.files if (m := SOURCE_FOLDER.match(rel))}
    return sorted(found - {ORGANISATION})


def organisation_files(docs: Documents, installed: Sequence[Pack], *, name: str, version: str,
                       namespace: str | None = None, title: str | None = None) -> dict[str, str]:
    """The organisation's documents as the files of a pack requiring the installed packs."""
    if not docs:
        raise DefinitionError([Problem("the organisation has no customisations to export (export "
                                       "--layer all to export every installed pack)", Location())])
    replaced = [f"{kind.replace('_', ' ')} {doc_name!r} of pack {pack.name!r}"
                for kind, doc_name in sorted(docs) if kind in NAMED_KINDS
                for pack in installed for item in _named(pack, kind)
                if getattr(item, "name", None) == doc_name]
    if replaced:
        raise DefinitionError([Problem(
            "the organisation replaces " + ", ".join(replaced) + ": only the organisation's layer may "
            "replace a pack's definition, a pack may not, so this export would not install; give the "
            "organisation's its own name (or export --layer all)", Location())])
    files = {MANIFEST: _manifest(name, version, namespace, title,
                                 {p.name: f"^{p.version}" for p in installed})}
    for (kind, doc_name), document in sorted(docs.items()):
        files[f"{folder(kind)}/{doc_name}.yaml"] = _yaml(document)
    return files


def all_files(docs: Documents, installed: Sequence[Pack], *, name: str, version: str,
              namespace: str | None = None, title: str | None = None) -> dict[str, str]:
    """Every installed pack's definitions and the organisation's, as one pack's files."""
    ordered = dependency_order(installed)
    files = {MANIFEST: _manifest(name, version, namespace, title, {})}
    for number, pack in enumerate(ordered):
        skipped = {item.source.file for kind in NAMED_KINDS for item in _named(pack, kind)  # type: ignore[attr-defined]
                   if (kind, getattr(item, "name", "")) in docs}
        # A layout replaced by a later pack (one requiring this one) or by the organisation:
        # in one pack the two would be one name defined twice.
        later = {layout.name for other in ordered[number + 1:] for layout in other.layouts}
        skipped |= {layout.source.file for layout in pack.layouts
                    if layout.name in later or ("layout", layout.name) in docs}
        for rel, text in sorted(pack.files.items()):
            if rel == MANIFEST or rel in skipped or not rel.endswith((".yaml", ".yml")):
                continue
            files[f"{number:02d}-{pack.name}/{rel}"] = text
    for (kind, doc_name), document in sorted(docs.items()):
        files[f"{len(ordered):02d}-{ORGANISATION}/{folder(kind)}/{doc_name}.yaml"] = _yaml(document)
    return files


def export(conn: sa.Connection, registry: FieldTypeRegistry, *, layer: str, name: str, version: str,
           namespace: str | None = None, title: str | None = None,
           functions: RuleFunctions = NO_FUNCTIONS) -> tuple[Pack, Metamodel]:
    """The exported pack, checked: read back, and merged the way a fresh database will merge
    it (with the packs it requires, or alone); returns the pack and that metamodel."""
    if name == ORGANISATION:
        raise DefinitionError([Problem(f"the pack name {name!r} is reserved for the organisation's own "
                                       "customisations: give the export another --name", Location())])
    installed = installed_packs(conn, registry)
    docs = documents(conn)
    make = organisation_files if layer == ORGANISATION else all_files
    files = make(docs, installed, name=name, version=version, namespace=namespace, title=title)
    pack = pack_from_texts(files, registry, f"export {name} {version}")
    together = [pack] if layer == "all" else [*installed, pack]
    return pack, merge(together, registry, {pack.name}, functions=functions)


def write(files: Mapping[str, str], out: Path, *, folder: str) -> Path:
    """Write a pack's files to the directory `out` (new, or empty), or to a .zip when `out`
    ends in .zip (its files under one top `folder`, as a pack is usually downloaded)."""
    if out.suffix.lower() == ".zip":
        if out.exists():
            raise FileExistsError(f"{out} exists already: give a new file")
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for rel, text in sorted(files.items()):
                archive.writestr(f"{folder}/{rel}", text)
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty directory: give a new one")
    for rel, text in sorted(files.items()):
        target = out.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return out
