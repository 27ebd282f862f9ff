"""Runtime build: what a process does when a new metamodel revision appears.

A metamodel of N entities × M fields (all common field types, a reference every tenth
field) is installed; then a fresh process-side runtime is built from the database —
read the head revision, parse its metamodel, build the tables, compile every entity for
the records service — the work done at start-up and after every live schema change.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.runtime import RuntimeHolder, build_runtime

from .common import Sizes, install_pack, median
from .report import Figure

GOAL = 0.5
KINDS: tuple[dict[str, Any], ...] = (
    {"type": "text", "max_length": 200},
    {"type": "integer", "min": 0},
    {"type": "decimal", "precision": 12, "scale": 2},
    {"type": "date"},
    {"type": "choice", "options": [{"key": f"o{i}", "label": f"Option {i}"} for i in range(5)]},
    {"type": "boolean"},
    {"type": "email"},
    {"type": "long_text"},
    {"type": "datetime"},
)


def metamodel_entities(entities: int, fields: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in range(entities):
        body: dict[str, Any] = {"f0": {"type": "text", "required": True}}
        for f in range(1, fields):
            if f % 10 == 0 and e > 0:
                body[f"f{f}"] = {"type": "reference", "target": f"thing{e - 1}", "on_delete": "set_null"}
            else:
                body[f"f{f}"] = dict(KINDS[f % len(KINDS)])
        out[f"thing{e}"] = {"title_field": "f0", "fields": body}
    return out


def run(engine: sa.Engine, registry: FieldTypeRegistry, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    install_pack(engine, registry, "bench-wide", "1.0.0", metamodel_entities(sizes.entities, sizes.fields))
    whole, in_memory = [], []
    for _ in range(3):
        started = time.perf_counter()
        holder = RuntimeHolder(engine, registry)
        compiled = RecordsService(engine, holder, registry).compiled()
        whole.append(time.perf_counter() - started)
        runtime = holder.current()
        started = time.perf_counter()
        again = build_runtime(runtime.revision, runtime.metamodel, registry)
        compile_entities(again.metamodel.entities, again.tables, registry)
        in_memory.append(time.perf_counter() - started)
        assert len(compiled) == sizes.entities
    size = sizes.entities * sizes.fields
    return [Figure(f"runtime build, {sizes.entities} entities × {sizes.fields} fields", db, size,
                   median(whole), 0.0, "s", f"≤ {GOAL} s", median(whole) <= GOAL,
                   f"read the revision, parse the metamodel, build tables, compile entities; median of 3; "
                   f"of which in memory (tables + compile): {median(in_memory):.3f} s")]
