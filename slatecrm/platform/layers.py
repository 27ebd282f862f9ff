"""The effective metamodel's layers: installed packs, then the organisation's own layer.

Installing packs (installer.py) and an admin's edits (customisation.py) both end in the
same sequence: read the installed packs and the organisation's documents, make the
documents one more pack on top, merge, and plan the change from the current revision.
That sequence lives here, once, so neither of those modules needs the other.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.layering import merge
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.packs import Pack, pack_from_texts
from slatecrm.metamodel.rules.functions import NO_FUNCTIONS, RuleFunctions

from .storage.entityrename import entity_renames, rename_in_documents
from .storage.plan import Plan, Planner
from .storage.system import customisations
from .storage.system import packs as pack_table

#: The name of the organisation's layer; no pack may take it.
ORGANISATION = "organisation"

Documents = dict[tuple[str, str], dict[str, Any]]


def installed_packs(conn: sa.Connection, registry: FieldTypeRegistry) -> list[Pack]:
    """The installed packs, read back from the files stored with their installation."""
    rows = conn.execute(sa.select(pack_table).order_by(pack_table.c.name)).all()
    return [_stored_pack(json.dumps(row.files, sort_keys=True), registry, row.name) for row in rows]


@lru_cache(maxsize=64)
def _stored_pack(files: str, registry: FieldTypeRegistry, name: str) -> Pack:
    """A stored pack, parsed once per text and registry: every admin edit, install and plan
    reads all installed packs back, and parsing them (YAML, JSON Schema) cost more than the
    rest of an edit. A pack is immutable, so the parsed one can be shared."""
    return pack_from_texts(json.loads(files), registry, name)


def documents(conn: sa.Connection) -> Documents:
    """The organisation's documents, keyed by (kind, name)."""
    rows = conn.execute(sa.select(customisations)).all()
    return {(row.kind, row.name): row.document for row in rows}


def layer_pack(docs: Documents, installed: Sequence[Pack], registry: FieldTypeRegistry) -> Pack | None:
    """The organisation's documents as a pack that requires every installed pack."""
    if not docs:
        return None
    manifest = {"name": ORGANISATION, "namespace": "org", "version": "1.0.0",
                "title": "This organisation's customisations",
                "requires": {p.name: ">=0.0.0" for p in installed if p.name != ORGANISATION}}
    files = {"pack.yaml": json.dumps(manifest, indent=2)}
    for (kind, name), document in sorted(docs.items()):
        files[f"{kind}s/{name}.yaml"] = json.dumps(document, indent=2)
    return pack_from_texts(files, registry, ORGANISATION)


def plan_layers(conn: sa.Connection, registry: FieldTypeRegistry, packs: Sequence[Pack],
                docs: Documents, current: Metamodel, base: int,
                purge: Sequence[tuple[str, str]] = (), new: Collection[str] = frozenset(), *,
                functions: RuleFunctions = NO_FUNCTIONS, purge_entities: Sequence[str] = ()) -> Plan:
    """Merge `packs` with the organisation's layer made of `docs` and plan the change from
    `current` (revision `base`) to the result (dropping the tables of `purge_entities`
    among the entities it retires). `new` names the packs being installed now
    (merge reports a clash with an installed pack in them).

    The documents follow the packs' entity renames (`renamed_from`): changed in place, so
    that an admin's edit stores them so; the plan renames the stored ones too
    (storage/entityrename.py)."""
    renames = entity_renames(current, Metamodel(entities=tuple(e for p in packs for e in p.entities)))
    if renames and docs:
        renamed = rename_in_documents(docs, renames)
        docs.clear()
        docs.update(renamed)
    organisation = layer_pack(docs, packs, registry)
    target = merge([*packs, *([organisation] if organisation else [])], registry, new, functions=functions)
    return Planner(conn, registry, current, target, base, purge, purge_entities).plan()
