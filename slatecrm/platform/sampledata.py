"""Sample data for demos and manual testing, generated from the metamodel alone.

Knows no entity: it orders entities so that the targets of required references come
first, picks a value for each field from its type (and, for plain text, a hint in the
field's name: `email`, `city`, `first_name`…), spreads records over every stage of each
pipeline with the fields each stage requires, and writes everything through the records
service, so every record passes the same validation as one typed in a form.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from faker import Faker

from slatecrm.metamodel.fieldtypes.base import SampleSource
from slatecrm.metamodel.roles import RECORD_SCOPES, Role
from slatecrm.metamodel.userattributes import UserAttribute

from .identity.passwords import Passwords
from .records.compiled import CompiledEntity, CompiledField
from .records.errors import ValidationFailed
from .records.service import RecordsService
from .storage import system

BATCH = 200
#: Records drawn again when one repeats a combination an entity's `unique` lists forbid.
REDRAWS = 20
#: Tries to get a batch past the validation rules (half of them repairing, then remaking).
ATTEMPTS = 10
#: Sample users, who own records: per team, a manager and reps reporting to them.
TEAMS = ("North", "South")
REPS_PER_TEAM = 2
USERS = len(TEAMS) * (1 + REPS_PER_TEAM)
#: Where sample users' e-mails are (a domain reserved for examples).
DOMAIN = "example.com"

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



def _refusals(errors: dict[str, list[str]], size: int) -> dict[int, set[str]]:
    """The refused field names by record index (`[3].amount`; a batch of one has no index)."""
    out: dict[int, set[str]] = {}
    for key in errors:
        index, name = 0, key
        if size > 1 and key.startswith("["):
            position, _, name = key[1:].partition("].")
            index = int(position)
        out.setdefault(index, set()).add(name)
    return out


@dataclass
class Report:
    users: int = 0
    created: dict[str, int] = field(default_factory=dict)
    #: The sample users made (e-mail, roles, team), and the password they share (shown once).
    logins: list[dict[str, Any]] = field(default_factory=list)
    password: str | None = None


def _breadth(role: Role) -> int:
    """How far a role reaches: its widest record scope over the entities it may change (a
    role that only reads everything is not a manager's)."""
    changing = [g for g in role.entities if g.actions - {"read", "export"}]
    return max((RECORD_SCOPES.index(g.scope) for g in changing), default=-1)


def team_attributes(defined: Sequence[UserAttribute], team: int) -> dict[str, str]:
    """The sample users' attribute values: for every choice attribute, the `team`-th option
    (cycling), so that each team stands in another region, unit, …: sharing rules that read
    them have something to tell apart. Other types are left unset."""
    return {a.name: a.options[team % len(a.options)] for a in defined if a.options}


def pick_roles(roles: Sequence[Role]) -> tuple[str | None, str | None]:
    """(the managers' role, the reps' role) from the defined roles, knowing no role by name:
    the one reaching furthest over records it changes, and the one reaching least."""
    ranked = sorted(roles, key=lambda r: (_breadth(r), r.name))
    if not ranked:
        return None, None
    return ranked[-1].name, ranked[0].name


def sample_password(passwords: Passwords) -> str:
    while True:
        password = secrets.token_urlsafe(12)
        if passwords.policy.problem(password) is None:
            return password


def entity_order(compiled: Mapping[str, CompiledEntity]) -> list[str]:
    """Targets of references (and of many-to-many links) before the entities that point to
    them (cycles broken in definition order: such references are filled only when the
    target exists)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        ce = compiled[name]
        linked = [relation.target for f in ce.fields.values() if f.type.stored_apart
                  and (relation := f.type.apart_related(f.field, name)) is not None]
        for target in [*ce.references().values(), *linked]:
            if target in compiled and target != name:
                visit(target)
        visiting.discard(name)
        order.append(name)

    for name in compiled:
        visit(name)
    return order


class Generator:
    def __init__(self, records: RecordsService, *, seed: int = 1, today: dt.date | None = None):
        # Silently: generated records are not events of the organisation's workflows (a
        # demo would otherwise reassign, remind and e-mail about hundreds of made-up records);
        # the run log says which workflows each batch kept quiet.
        self.records = records.silently()
        self.random = random.Random(seed)
        self.fake = Faker()
        self.fake.seed_instance(seed)
        self.today = today or dt.date.today()
        self.ids: dict[str, list[int]] = {}
        self.users: list[int] = []
        self.serial = 0

    # --- users ------------------------------------------------------------------------------
    def ensure_users(self, report: Report | None = None) -> int:
        """A few users to own records (made once; later runs reuse them): in each team a
        manager and reps who report to them, with the roles the metamodel defines (the
        widest-reaching for managers, the narrowest for reps), able to sign in with one
        generated password, which `report` gets to show once."""
        with self.records.engine.begin() as conn:
            existing = conn.execute(sa.select(system.users.c.id)).scalars().all()
            made = 0
            if not existing:
                made = self._make_users(conn, report if report is not None else Report())
                existing = conn.execute(sa.select(system.users.c.id)).scalars().all()
        self.users = list(existing)
        return made

    def _make_users(self, conn: sa.Connection, report: Report) -> int:
        now = dt.datetime.now(dt.UTC)
        passwords = Passwords.from_environment()
        password = sample_password(passwords)
        metamodel = self.records.snapshot().metamodel
        manager_role, rep_role = pick_roles(metamodel.roles)
        for index, team_name in enumerate(TEAMS):
            attributes = team_attributes(metamodel.user_attributes, index)
            team_id = conn.execute(system.teams.insert().values(name=team_name, created_at=now)
                                   .returning(system.teams.c.id)).scalar_one()
            manager: int | None = None
            for rank in range(1 + REPS_PER_TEAM):
                first, last = self.fake.unique.first_name(), self.fake.unique.last_name()
                email = f"{first}.{last}@{DOMAIN}".lower()
                role = manager_role if rank == 0 else rep_role
                user_id = conn.execute(system.users.insert().values(
                    username=email, display_name=f"{first} {last}", email=email, email_key=email,
                    active=True, manager_id=manager, created_at=now, updated_at=now,
                    password_hash=passwords.hash(password, context=[first, last, email]),
                    password_changed_at=now).returning(system.users.c.id)).scalar_one()
                manager = manager if rank else user_id
                conn.execute(system.team_members.insert().values(team_id=team_id, user_id=user_id))
                if role is not None:
                    conn.execute(system.user_roles.insert().values(user_id=user_id, role=role))
                for name, value in attributes.items():
                    conn.execute(system.user_attributes.insert().values(user_id=user_id, name=name,
                                                                        value=json.dumps(value)))
                report.logins.append({"login": email, "granted": role, "team": team_name,
                                      "manager": rank == 0, "attributes": attributes})
        report.password = password
        return USERS

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
        if compiled.type.links_records and not compiled.field.target:  # polymorphic: any target's
            pairs = [(t, i) for t in compiled.field.targets for i in self.ids.get(t, [])]
            entity, record = self.random.choice(pairs) if pairs else (None, None)
            return {"entity": entity, "id": record} if entity is not None else None
        if compiled.type.links_records:
            targets = self.ids.get(compiled.field.target or "")
            return self.random.choice(targets) if targets else None
        if compiled.type.stored_apart:  # links to one to three records made before, if any
            relation = compiled.type.apart_related(compiled.field, ce.name)
            targets = self.ids.get(relation.target, []) if relation is not None and relation.editable else []
            if not targets:
                return None
            return self.random.sample(targets, min(len(targets), self.random.randint(1, 3)))
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
            if name in data or not compiled.type.writable or name in ce.pipelines \
                    or compiled.field.formula is not None:  # computed: the pipeline fills it
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

    def fresh_record(self, ce: CompiledEntity, taken: list[set[str]]) -> dict[str, Any] | None:
        """A record whose combinations of the entity's composite `unique` lists are new (in
        `taken`, one set per list), or None when REDRAWS draws found none (a junction
        entity asked for more records than there are pairs): fewer records, never a refusal."""
        for _ in range(REDRAWS):
            data = self.record(ce)
            keys = [json.dumps([data.get(n) for n in composite.fields], sort_keys=True, default=str)
                    for composite in ce.entity.unique]
            blank = [any(data.get(n) is None for n in composite.fields) for composite in ce.entity.unique]
            if all(b or key not in seen for key, b, seen in zip(keys, blank, taken, strict=True)):
                for key, b, seen in zip(keys, blank, taken, strict=True):
                    if not b:
                        seen.add(key)
                return data
        return None
    def create(self, ce: CompiledEntity, batch: list[dict[str, Any]]) -> list[int]:
        """Create a batch through the write pipeline. The values are picked by type, so a
        validation rule may refuse some (`amount < 100`, "a phone or an e-mail, not both"):
        those records are repaired (the refused optional fields left blank, else made
        again) and the batch is tried again, so that any valid pack can be filled."""
        for attempt in range(ATTEMPTS):
            try:
                return [r.id for r in self.records.create_many(ce.name, batch)]
            except ValidationFailed as refused:
                if attempt == ATTEMPTS - 1:
                    raise
                for index, names in _refusals(refused.errors, len(batch)).items():
                    batch[index] = self.repair(ce, batch[index], names, again=attempt >= ATTEMPTS // 2)
        raise AssertionError("unreachable")

    def repair(self, ce: CompiledEntity, data: dict[str, Any], refused: set[str], *,
               again: bool) -> dict[str, Any]:
        """`data` without the optional fields a rule refused, or a new record when a refusal
        is on the record, on a required field or on one its stage requires (or `again`)."""
        needed = {name for pipeline in ce.entity.pipelines for stage in pipeline.stages
                  if data.get(pipeline.field) == stage.key for name in stage.requires}
        droppable = {name for name in refused if name in data and name in ce.fields
                     and not ce.fields[name].field.required and name not in needed}
        if again or droppable != refused:
            return self.record(ce)
        return {k: v for k, v in data.items() if k not in droppable}

    def run(self, count: int, *, progress: Callable[[str, int], None] | None = None) -> Report:
        report = Report()
        report.users = self.ensure_users(report)
        compiled = self.records.compiled()
        for name in entity_order(compiled):
            ce = compiled[name]
            made: list[int] = []
            taken: list[set[str]] = [set() for _ in ce.entity.unique]
            for start in range(0, count, BATCH):
                drawn = (self.fresh_record(ce, taken) for _ in range(min(BATCH, count - start)))
                batch = [record for record in drawn if record is not None]
                made += self.create(ce, batch) if batch else []
                if progress:
                    progress(name, len(made))
            self.ids[name] = made
            report.created[name] = len(made)
        return report
