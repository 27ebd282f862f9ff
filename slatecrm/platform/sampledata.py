"""Sample data for demos and manual testing, generated from the metamodel alone.

Knows no entity: it orders entities so that the targets of required references come
first, picks a value for each field from its type (and, for plain text, a hint in the
field's name: `email`, `city`, `first_name`…), spreads records over every stage of each
pipeline with the fields each stage requires, and writes everything through the records
service, so every record passes the same validation as one typed in a form.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from faker import Faker

from slatecrm.metamodel.fieldtypes.base import SampleSource

from .records.compiled import CompiledEntity, CompiledField
from .records.service import RecordsService
from .storage import system

BATCH = 200
#: Sample users, who own records.
USERS = 6

#: (hint in a text field's name, what to make): first match wins.
TEXT_HINTS: Sequence[tuple[str, Callable[[Faker], str]]] = (
    ("full_name", lambda f: f.name()),
    ("first_name", lambda f: f.first_name()),
    ("last_name", lambda f: f.last_name()),
    ("email", lambda f: f.email()),
    ("phone", lambda f: f.phone_number()),
    ("mobile", lambda f: f.phone_number()),
    ("city", lambda f: f.city()),
    ("country", lambda f: f.country()),
    ("state", lambda f: f.state()),
    ("street", lambda f: f.street_address()),
    ("address", lambda f: f.street_address()),
    ("postal", lambda f: f.postcode()),
    ("zip", lambda f: f.postcode()),
    ("company", lambda f: f.company()),
    ("job", lambda f: f.job()),
    ("title", lambda f: f.job()),
    ("website", lambda f: f.url()),
    ("subject", lambda f: f.sentence(nb_words=5).rstrip(".")),
    ("step", lambda f: f.sentence(nb_words=6).rstrip(".")),
    ("location", lambda f: f.city()),
    ("source", lambda f: f.word().capitalize()),
)


@dataclass
class Report:
    users: int = 0
    created: dict[str, int] = field(default_factory=dict)


def entity_order(compiled: dict[str, CompiledEntity]) -> list[str]:
    """Targets of references before the entities that point to them (cycles broken in
    definition order: such references are filled only when the target exists)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for target in compiled[name].references().values():
            if target in compiled and target != name:
                visit(target)
        visiting.discard(name)
        order.append(name)

    for name in compiled:
        visit(name)
    return order


class Generator:
    def __init__(self, records: RecordsService, *, seed: int = 1, today: dt.date | None = None):
        self.records = records
        self.random = random.Random(seed)
        self.fake = Faker()
        self.fake.seed_instance(seed)
        self.today = today or dt.date.today()
        self.ids: dict[str, list[int]] = {}
        self.users: list[int] = []
        self.serial = 0

    # --- users ------------------------------------------------------------------------------
    def ensure_users(self) -> int:
        """A few users to own records (made once; later runs reuse them)."""
        with self.records.engine.begin() as conn:
            existing = conn.execute(sa.select(system.users.c.id)).scalars().all()
            made = 0
            if not existing:
                now = dt.datetime.now(dt.UTC)
                rows = []
                for _ in range(USERS):
                    first, last = self.fake.unique.first_name(), self.fake.unique.last_name()
                    rows.append({"username": f"{first}.{last}".lower(), "display_name": f"{first} {last}",
                                 "created_at": now})
                conn.execute(system.users.insert(), rows)
                made = len(rows)
                existing = conn.execute(sa.select(system.users.c.id)).scalars().all()
        self.users = list(existing)
        return made

    # --- values -------------------------------------------------------------------------------
    def text(self, ce: CompiledEntity, compiled: CompiledField) -> str:
        name = compiled.name.lower()
        hinted = self._hinted(name)
        if hinted is not None:
            value = hinted
        elif name == ce.entity.title_field:
            referenced = sum(1 for other in self.records.compiled().values()
                             for target in other.references().values() if target == ce.name)
            value = self.fake.company() if referenced >= 2 else self.fake.catch_phrase()
        else:
            value = self.fake.sentence(nb_words=3).rstrip(".")
        if compiled.field.unique:
            self.serial += 1
            value = f"{value} {self.serial}"
        limit = compiled.field.settings.get("max_length")
        return value[: int(limit)] if limit else value

    def _hinted(self, name: str) -> str | None:
        for hint, make in TEXT_HINTS:
            if hint in name:
                return make(self.fake)
        return None

    def value(self, ce: CompiledEntity, compiled: CompiledField) -> Any:
        """A value from the field's type (`FieldType.sample`); plain text by a hint in the
        field's name, references to records made before."""
        if compiled.type.links_records:
            targets = self.ids.get(compiled.field.target or "")
            return self.random.choice(targets) if targets else None
        if compiled.type.sample_by_name:
            return self.text(ce, compiled)
        return compiled.type.sample(compiled.field, SampleSource(self.random, self.fake, self.today))

    def record(self, ce: CompiledEntity) -> dict[str, Any]:
        data: dict[str, Any] = {}
        needed: set[str] = set()
        # Fields that only later stages ask for (a loss reason) stay blank until then.
        later = {name for pipeline in ce.entity.pipelines for stage in pipeline.stages
                 for name in stage.requires}
        for pipeline in ce.entity.pipelines:
            if not pipeline.stages:
                continue
            # Earlier stages are fuller, as in a real funnel.
            weights = [len(pipeline.stages) - i + 1 for i in range(len(pipeline.stages))]
            stage = self.random.choices(pipeline.stages, weights=weights)[0]
            data[pipeline.field] = stage.key
            needed.update(stage.requires)
        for name, compiled in ce.fields.items():
            if name in data or not compiled.type.writable or name in ce.pipelines:
                continue
            if name in later and name not in needed and not compiled.field.required:
                continue
            wanted = compiled.field.required or name in needed or self.random.random() < 0.75
            if compiled.type.links_records and not compiled.field.required and name not in needed:
                wanted = self.random.random() < 0.6
            if not wanted:
                continue
            value = self.value(ce, compiled)
            if value is not None:
                data[name] = value
        if self.users:
            data["owner"] = self.random.choice(self.users)
        return data

    def run(self, count: int, *, progress: Callable[[str, int], None] | None = None) -> Report:
        report = Report(users=self.ensure_users())
        compiled = self.records.compiled()
        for name in entity_order(compiled):
            ce = compiled[name]
            made: list[int] = []
            for start in range(0, count, BATCH):
                batch = [self.record(ce) for _ in range(min(BATCH, count - start))]
                made += [r.id for r in self.records.create_many(name, batch)]
                if progress:
                    progress(name, len(made))
            self.ids[name] = made
            report.created[name] = len(made)
        return report
