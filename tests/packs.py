"""Writing small packs for tests, and installing them the way the CLI does."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer


def write_pack(root: Path, name: str, version: str, entities: dict[str, dict[str, Any]],
               requires: dict[str, str] | None = None,
               extensions: list[dict[str, Any]] | None = None) -> Path:
    """A pack directory (JSON is YAML too) with one file per entity."""
    folder = root / f"{name}-{version}"
    (folder / "entities").mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "namespace": name.replace("-", "")[:16], "version": version,
                "title": name.title(), **({"requires": requires} if requires else {})}
    (folder / "pack.yaml").write_text(json.dumps(manifest, indent=2))
    for entity, body in entities.items():
        (folder / "entities" / f"{entity}.yaml").write_text(
            json.dumps({"kind": "entity", "name": entity, **body}, indent=2))
    for i, body in enumerate(extensions or []):
        (folder / "entities" / f"extension-{i}.yaml").write_text(
            json.dumps({"kind": "extension", **body}, indent=2))
    return folder


def write_files_pack(root: Path, files: dict[str, str], *, name: str, version: str = "1.0.0",
                     requires: dict[str, str] | None = None) -> Path:
    """A pack directory `root/name` with these files (path → YAML text, dedented), requiring
    `requires` (default: the sales pack)."""
    folder = root / name
    manifest = {"name": name, "namespace": name.replace("-", "")[:16], "version": version,
                "title": name.title(), "requires": {"sales": "^0.2.0"} if requires is None else requires}
    folder.mkdir(parents=True)
    (folder / "pack.yaml").write_text(json.dumps(manifest))
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(textwrap.dedent(text))
    return folder


def plan(engine: sa.Engine, registry: FieldTypeRegistry, *paths: Path | str,
         purge: tuple[tuple[str, str], ...] = ()) -> installer.Installation:
    installer.create_system_tables(engine)
    return installer.plan_install(engine, installer.load_packs([str(p) for p in paths], registry),
                                  registry, purge)


def install(engine: sa.Engine, registry: FieldTypeRegistry, *paths: Path | str,
            purge: tuple[tuple[str, str], ...] = ()) -> int:
    installation = plan(engine, registry, *paths, purge=purge)
    assert not installation.plan.blocked, [r.message for c in installation.plan.changes for r in c.risks]
    return installer.install(engine, installation, author="test")
