"""Runtime build: what a process does when a new metamodel revision appears.

A metamodel of N entities × M fields (all common field types, a reference every tenth
field) is installed; then, in a fresh process-side runtime, three costs are measured:
what a process pays before its first request (read the head revision, parse its
metamodel: tables and compiled entities are built on first use), what the first request
on one entity pays (a get by id: that entity's table and compiled form, those of the
entities its references name, one statement), and what compiling every entity costs
(paid once per revision by what needs them all: the OpenAPI document, global search).
The goal applies to the first. Process CPU time is given next to each wall time: on a
machine shared with other work the wall times also hold the waiting for a core.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class Costs:
    """Wall and CPU seconds of each step, one list entry per round."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.setdefault(name, []).append(time.perf_counter() - wall)
        self.cpu.setdefault(name, []).append(time.process_time() - cpu)

    def shown(self, name: str) -> str:
        return f"{median(self.wall[name]):.3f} s (CPU {median(self.cpu[name]):.3f} s)"


def run(engine: sa.Engine, registry: FieldTypeRegistry, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    install_pack(engine, registry, "bench-wide", "1.0.0", metamodel_entities(sizes.entities, sizes.fields))
    entity = f"thing{sizes.entities * 3 // 4}"
    made = RecordsService(engine, RuntimeHolder(engine, registry), registry).create(entity, {"f0": "first"})
    costs = Costs()
    for _ in range(3):
        with costs.step("start"):
            holder = RuntimeHolder(engine, registry)
            records = RecordsService(engine, holder, registry)
            records.snapshot()
        with costs.step("first"):
            got = records.get(entity, made.id)
        assert got.values["f0"] == "first"
        with costs.step("all"):
            compiled = dict(records.compiled().items())
        assert len(compiled) == sizes.entities
        runtime = holder.current()
        with costs.step("in memory"):
            again = build_runtime(runtime.revision, runtime.metamodel, registry)
            compile_entities(again.metamodel.entities, again.tables, registry)
    size = sizes.entities * sizes.fields
    shape = f"{sizes.entities} entities × {sizes.fields} fields"
    start, first = median(costs.wall["start"]), median(costs.wall["first"])
    return [
        Figure(f"runtime build, {shape}", db, size, start, 0.0, "s",
               f"≤ {GOAL} s", start <= GOAL,
               f"before the first request: read the head revision, parse the metamodel (tables and "
               f"entities are built on first use); median of 3: {costs.shown('start')}"),
        Figure(f"runtime build: first request on one entity (get by id), {shape}", db, size, first, 0.0,
               "s", "", None,
               f"{entity}'s table and compiled form and those its references name, one statement; "
               f"median of 3: {costs.shown('first')}; with the start-up: {start + first:.3f} s"),
        Figure(f"runtime build: every entity compiled (OpenAPI, global search), {shape}", db, size,
               median(costs.wall["all"]), 0.0, "s", "", None,
               f"once per revision, by the first request that needs them all; median of 3: "
               f"{costs.shown('all')}; tables and compiled entities built at once in memory: "
               f"{costs.shown('in memory')}"),
    ]
