"""Keeping roll-ups exact (metamodel/fieldtypes/rollup.py): in the transaction of every write
of a child record, the aggregate of each parent the write touches is computed again from the
children, with one statement per roll-up and set of parents:

    UPDATE parent SET total = (SELECT sum(c.amount) FROM child c WHERE c.parent = parent.id
                               AND <filter>)
    WHERE parent.id IN (…) AND total IS DISTINCT FROM (that same aggregate)

Never an increment (+1, -amount) that could drift: the value is always the aggregate of the
children as this transaction sees them, and the statement's row count is the number of parents
whose value changed (what `slatecrm recompute` reports).

Concurrency. On PostgreSQL the parents are first locked (SELECT … FOR NO KEY UPDATE, in id
order), and the UPDATE is a statement of its own: under READ COMMITTED a statement that starts
after the lock was granted sees every child the transaction that held it committed, so two
transactions adding children to one parent both count. (One UPDATE with the aggregate in it
would wait for the lock too, but then compute with the snapshot it started with, missing the
other's child.) FOR NO KEY UPDATE does not conflict with the KEY SHARE lock a child's foreign
key check takes, so two writers of children of one parent do not deadlock. SQLite has one
writer at a time (BEGIN IMMEDIATE).

What a roll-up is not: a change of the parent (no new version, no history entry, no workflow
event): it is data derived from the children, whose own writes have all of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.util import ClauseAdapter

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.fieldtypes.rollup import filter_fields
from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.rules.python import RuleContext

from . import rules as rule_hooks

#: Ids of parents in one statement (the bound parameters of one IN list stay few).
CHUNK = 500


@dataclass(frozen=True)
class Rollup:
    """One roll-up field: `parent.field` = function(child.of) over child.via = parent.id."""

    parent: str
    field: str
    child: str
    via: str
    function: str
    of: str | None
    filter: str | None
    #: The child fields whose change may change the aggregate.
    reads: frozenset[str]


def rollups_in(metamodel: Metamodel, registry: FieldTypeRegistry) -> tuple[Rollup, ...]:
    """Every active roll-up field of the metamodel."""
    found: list[Rollup] = []
    for entity in metamodel.active_entities:
        for field in entity.active_fields:
            try:
                aggregate = registry[field.type].aggregates(field)
            except KeyError:  # a plugin's type that is not installed here
                continue
            if aggregate is None:
                continue
            reads = {aggregate.via, *([aggregate.of] if aggregate.of else [])}
            if aggregate.filter:
                reads |= filter_fields(aggregate.filter, aggregate.child, metamodel, registry)
            found.append(Rollup(entity.name, field.name, aggregate.child, aggregate.via, aggregate.function,
                                aggregate.of, aggregate.filter, frozenset(reads)))
    return tuple(found)


class Rollups:
    """The roll-ups of one revision, with their statements (built once, kept with the revision)."""

    def __init__(self, metamodel: Metamodel, tables: Mapping[str, sa.Table], dialect: str,
                 registry: FieldTypeRegistry, rules: rule_hooks.RevisionRules):
        self.metamodel = metamodel
        self.tables = tables
        self.dialect = dialect
        self.registry = registry
        self.rules = rules
        self.all = rollups_in(metamodel, registry)
        self._statements: dict[tuple[str, str], tuple[sa.Update, sa.Select[Any]]] = {}

    def over(self, child: str) -> tuple[Rollup, ...]:
        """The roll-ups whose children are records of `child`."""
        return tuple(r for r in self.all if r.child == child)

    def on(self, parent: str) -> tuple[Rollup, ...]:
        """The roll-up fields of `parent`."""
        return tuple(r for r in self.all if r.parent == parent)

    def find(self, entity: str, field: str) -> Rollup | None:
        return next((r for r in self.all if r.parent == entity and r.field == field), None)

    # --- the statements ---------------------------------------------------------------------
    def aggregate(self, rollup: Rollup, parent_id: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
        """The roll-up's value for the parent whose id is `parent_id`, from its children."""
        table = self.tables[rollup.child]
        child = table.alias("slate_child")
        where: list[sa.ColumnElement[bool]] = [child.c[rollup.via] == parent_id]
        if rollup.filter:
            condition = self.rules.condition(rollup.child, rollup.filter).where(RuleContext())
            where.append(ClauseAdapter(child).traverse(condition))
        value: sa.ColumnElement[Any]
        if rollup.function == "count":
            value = sa.func.count()
        else:
            assert rollup.of is not None
            column = child.c[self._column(rollup.child, rollup.of)]
            value = self._function(rollup, column)
        return sa.select(value).select_from(child).where(*where).scalar_subquery()

    def _column(self, entity: str, field: str) -> str:
        definition = self.metamodel.entity(entity)
        assert definition is not None
        found = definition.field(field)
        assert found is not None
        return self.registry[found.type].columns(found)[0].column_name(found.name)

    def _scale(self, entity: str, field: str) -> int:
        definition = self.metamodel.entity(entity)
        assert definition is not None
        found = definition.field(field)
        assert found is not None
        return self.registry[found.type].stored_scale(found) or 0

    def _function(self, rollup: Rollup, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        if rollup.function == "sum":
            return sa.func.coalesce(sa.func.sum(column), 0)
        if rollup.function == "min":
            return sa.func.min(column)
        if rollup.function == "max":
            return sa.func.max(column)
        # avg, rounded half away from zero to the result's places, exactly on both databases.
        assert rollup.of is not None
        parent = self.metamodel.entity(rollup.parent)
        assert parent is not None
        result = parent.field(rollup.field)
        assert result is not None
        places = self.registry[result.type].stored_scale(result) or 0
        total, count = sa.func.sum(column), sa.func.count(column)
        if self.dialect != "sqlite":
            return sa.func.round(sa.cast(total, sa.Numeric) / sa.func.nullif(count, 0), places)
        # SQLite keeps decimals as integers scaled by 10^scale: integer arithmetic.
        shift = 10 ** (places - self._scale(rollup.child, rollup.of))
        twice = sa.literal(2 * shift, sa.BigInteger)
        return sa.case(
            (count == 0, sa.null()),
            (total >= 0, (total * twice + count) / (count * 2)),
            else_=-((-total * twice + count) / (count * 2)),
        )

    def statements(self, rollup: Rollup) -> tuple[sa.Update, sa.Select[Any]]:
        """(UPDATE of the parents in :slate_ids whose value differs, SELECT … FOR NO KEY UPDATE
        of them) for one roll-up."""
        key = (rollup.parent, rollup.field)
        made = self._statements.get(key)
        if made is None:
            parent = self.tables[rollup.parent]
            column = parent.c[self._column(rollup.parent, rollup.field)]
            value = self.aggregate(rollup, parent.c.id)
            id_list: sa.BindParameter[Any] = sa.bindparam("slate_ids", expanding=True)
            update = parent.update().where(parent.c.id.in_(id_list), column.is_distinct_from(value)) \
                .values({column.name: value})
            lock = sa.select(parent.c.id).where(parent.c.id.in_(id_list)).order_by(parent.c.id) \
                .with_for_update(key_share=True)
            made = (update, lock)
            self._statements[key] = made
        return made

    def recompute(self, conn: sa.Connection, rollup: Rollup, parent_ids: Iterable[int]) -> int:
        """The roll-up of each of `parent_ids` computed again; how many changed."""
        ids: list[int] = sorted({int(i) for i in parent_ids if i is not None})
        changed = 0
        update, lock = self.statements(rollup)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            if conn.dialect.name == "postgresql":
                conn.execute(lock, {"slate_ids": chunk})
            changed += conn.execute(update, {"slate_ids": chunk}).rowcount
        return changed

    def recompute_all(self, conn: sa.Connection, rollup: Rollup) -> int:
        """Every parent's value computed again (the CLI's `recompute`, a new roll-up at apply)."""
        parent = self.tables[rollup.parent]
        ids = conn.execute(sa.select(parent.c.id).order_by(parent.c.id)).scalars().all()
        return self.recompute(conn, rollup, ids)

    # --- what a write of children touches ---------------------------------------------------
    def children_written(self, conn: sa.Connection, child: str,
                         rows: Sequence[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
                         changed: Iterable[str] | None = None) -> None:
        """Children of `child` written: (before, after) values per record (None: created /
        deleted); `changed`: the fields the write changed (None: any). Each parent a child
        belonged to before or belongs to now gets its roll-ups computed again."""
        wanted = set(changed) if changed is not None else None
        for rollup in self.over(child):
            if wanted is not None and not (wanted & rollup.reads):
                continue
            parents = {values.get(rollup.via) for pair in rows for values in pair if values is not None}
            parents.discard(None)
            if parents:
                self.recompute(conn, rollup, parents)  # type: ignore[arg-type]

    def children_by_id(self, conn: sa.Connection, child: str, ids: Sequence[int],
                       changed: Iterable[str] | None = None) -> set[tuple[Rollup, int]]:
        """The (roll-up, parent id) pairs of the stored children `ids` (read before a write that
        the caller has no values for: a delete's set-null of other references)."""
        wanted = set(changed) if changed is not None else None
        found: set[tuple[Rollup, int]] = set()
        table = self.tables[child]
        for rollup in self.over(child):
            if wanted is not None and not (wanted & rollup.reads):
                continue
            column = table.c[self._column(child, rollup.via)]
            for start in range(0, len(ids), CHUNK):
                found.update((rollup, p) for p in conn.execute(
                    sa.select(column).where(table.c.id.in_(ids[start:start + CHUNK]), column.isnot(None))
                ).scalars())
        return found

    def recompute_pairs(self, conn: sa.Connection, pairs: Iterable[tuple[Rollup, int]]) -> None:
        by_rollup: dict[Rollup, set[int]] = {}
        for rollup, parent in pairs:
            by_rollup.setdefault(rollup, set()).add(parent)
        for rollup, parents in by_rollup.items():
            self.recompute(conn, rollup, parents)

    def recompute_own(self, conn: sa.Connection, entity: str, ids: Sequence[int]) -> None:
        """The roll-ups of records of `entity` themselves: new ones (a count of no children is 0,
        not blank), or ones whose children were saved with them (line items)."""
        for rollup in self.on(entity):
            self.recompute(conn, rollup, ids)


def rollups_of(snapshot: Any) -> Rollups:
    """The revision's roll-ups, built once per revision (`snapshot`: records/snapshot.py)."""
    return snapshot.derived(  # type: ignore[no-any-return]
        "records.rollups", lambda: Rollups(snapshot.metamodel, snapshot.tables, snapshot.dialect,
                                           snapshot.registry, snapshot.rules))
