"""A page whose rows meet one of several alternatives (a restricted reader's reach: their own
records, OR the records a sharing rule selects), read as the union of each alternative's page.

`WHERE owner = :me OR <reference> IN (…) ORDER BY id DESC LIMIT 51` is one index range per
alternative, but no database walks two ranges in the page's order at once: SQLite gathers
every row either index gives (its MULTI-INDEX OR) and PostgreSQL ORs two bitmaps, and both
then sort every match, thousands of full rows with their title joins, to keep 51 (61 ms
instead of 0.5 ms at a million records; docs/benchmarks.md). The first rows of a union are
among the first rows of each of its parts, so each alternative reads its own first
`limit` ids in the page's order (an index range, stopped early), and the page is those ids,
looked up by primary key, sorted and cut once more. Same rows, same order (the sort ends
with the id, so it is total), whatever the alternatives are.

On PostgreSQL a capped count is the same idea: the distinct ids among each alternative's
first `cap` (when no alternative reaches its cap, that is every match; when one does, the
count is past the cap anyway). It planned the OR's capped count as a scan of the table
expected to stop early (it guessed that half the rows match): 284 ms for 2,001 of 10,000,
where the union takes 2 ms. SQLite counts the OR from the two indexes' rowids (0.3 ms), and
the union's de-duplication would cost 2 ms there. Totals keep the plain condition: they
read every match anyway.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList
from sqlalchemy.sql.selectable import ScalarSelect
from sqlalchemy.sql.util import ClauseAdapter

from ..kept import keep


def alternatives_of(condition: sa.ColumnElement[bool] | None) -> tuple[sa.ColumnElement[bool], ...]:
    """The alternatives of a read filter built as an OR (identity/access.py `Access.where`),
    else none: a single condition is read as it is."""
    if isinstance(condition, BooleanClauseList) and condition.operator is operators.or_ \
            and len(condition.clauses) > 1:
        return tuple(condition.clauses)
    return ()


def union_page(table: sa.Table, base: sa.Select[Any], conditions: Sequence[sa.ColumnElement[bool]],
               reach: sa.ColumnElement[bool], alternatives: Sequence[sa.ColumnElement[bool]],
               order: Sequence[sa.ColumnElement[Any]], sorted_by: Sequence[sa.ColumnElement[Any]],
               order_key: Hashable, rows: int, lateral: bool) -> sa.Select[Any]:
    """`base` narrowed to the first `rows` rows in `order` (of the columns `sorted_by`;
    `order_key` says which order) that meet every one of `conditions` and one of
    `alternatives`, the OR `reach` (which `conditions` leave out). `lateral`: the database
    joins LATERAL (PostgreSQL), see `_first_ids`.

    A first page without filters, the list a user opens, is built once per `base` and
    `reach` (both kept per revision and user): its statement is a few times larger than the
    plain page's, and building it cost more than the database's work."""
    def build() -> sa.Select[Any]:
        parts = [_first_rows(table, conditions, alternative, order, sorted_by, rows, lateral)
                 for alternative in alternatives]
        if lateral:
            # PostgreSQL joins every id of the IN list to its row before the page's sort:
            # the union's ids are sorted and cut to `rows` first (UNION, not UNION ALL: a row
            # two alternatives select would take two of the `rows`), so only the page's rows
            # are read (0.98 ms instead of 1.54 at a million records).
            union = sa.union(*(sa.select(*part.c) for part in parts)).subquery()
            adapter = ClauseAdapter(union)
            firsts: sa.Select[Any] | sa.CompoundSelect[Any] = sa.select(union.c.id).order_by(
                *(adapter.traverse(o) for o in order)).limit(rows)
        else:
            # SQLite walks an IN list in id order, stopping at the page's end: the ids need
            # neither de-duplication (`IN` is a set) nor a sort and cut of their own, which
            # were a third of the statement's time (0.20 ms instead of 0.31).
            firsts = sa.union_all(*(sa.select(part.c.id) for part in parts))
        return base.where(table.c.id.in_(firsts)).order_by(*order).limit(rows)

    if conditions:
        return build()
    key = (id(base), id(reach), order_key, rows, lateral)
    found = _FIRST_PAGES.get(key)
    if found is not None and found[0] is base and found[1] is reach:
        return found[2]
    return keep(_FIRST_PAGES, key, (base, reach, build()), FIRST_PAGES_CACHED)[2]


#: First pages (`union_page`) and their counts (`reach_count`) built lately.
_FIRST_PAGES: dict[Hashable, tuple[Any, sa.ColumnElement[bool], sa.Select[Any]]] = {}
FIRST_PAGES_CACHED = 20_000


def _first_rows(table: sa.Table, conditions: Sequence[sa.ColumnElement[bool]],
                alternative: sa.ColumnElement[bool], order: Sequence[sa.ColumnElement[Any]],
                sorted_by: Sequence[sa.ColumnElement[Any]], rows: int, lateral: bool) -> sa.Subquery:
    """The ids and sort values of the first `rows` rows meeting `conditions` and
    `alternative`, in `order` (the union's first `rows` are cut before any whole row is read).

    A sharing rule through a reference is a semi-join, `ref IN (SELECT id FROM target WHERE
    …)`: the rows of a few targets, each target's in the order of the index on `ref` (whose
    entries end with the id), but all of them only in that order after a sort of every
    match. With LATERAL, each target gives its own first `rows` (an index range each) and
    only those are sorted: at most targets × rows, never more than every match (on
    PostgreSQL, 0.3 ms instead of 1.6 ms for 5 targets of 500 rows each)."""
    columns = list(dict.fromkeys([table.c.id, *sorted_by]))
    semi = _semi_join(table, alternative) if lateral else None
    if semi is None:
        first = sa.select(*columns).where(*conditions, alternative).order_by(*order).limit(rows).subquery()
    else:
        key, targets = semi
        target = targets.subquery()
        each = (sa.select(*columns).where(key == target.c[0], *conditions)
                .order_by(*order).limit(rows).lateral())
        adapter = ClauseAdapter(each)
        first = (sa.select(*each.c).select_from(target).join(each, sa.true())
                 .order_by(*(adapter.traverse(o) for o in order)).limit(rows).subquery())
    return first


def _semi_join(table: sa.Table, condition: sa.ColumnElement[bool]
               ) -> tuple[sa.ColumnElement[Any], sa.Select[Any]] | None:
    """`column IN (SELECT …)` on `table`'s column (records/rulesql.py `_semi_join`), as the
    column and the SELECT, else None."""
    if isinstance(condition, BinaryExpression) and condition.operator is operators.in_op \
            and isinstance(condition.right, ScalarSelect) and isinstance(condition.left, sa.Column) \
            and condition.left.table is table and isinstance(condition.right.element, sa.Select) \
            and len(condition.right.element.selected_columns) == 1:
        return condition.left, condition.right.element
    return None


def reach_count(table: sa.Table, conditions: Sequence[sa.ColumnElement[bool]], reach: sa.ColumnElement[bool],
                alternatives: Sequence[sa.ColumnElement[bool]], cap: int, distinct: bool) -> sa.Select[Any]:
    """The capped count of the rows meeting `conditions` and `reach` (the OR of `alternatives`):
    `union_count`, whose exact count is `distinct_count` (`distinct`: PostgreSQL) or the OR's.
    Without conditions (a user's list as it opens) built once per `reach`, like its page."""
    def build() -> sa.Select[Any]:
        matching = sa.select(sa.literal(1)).select_from(table).where(*conditions, reach).limit(cap)
        exact = (distinct_count(table, conditions, alternatives, cap) if distinct else
                 sa.select(sa.func.count()).select_from(matching.subquery()))
        return union_count(table, conditions, alternatives, cap, exact)

    if conditions:
        return build()
    key = ("count", id(table), id(reach), cap, distinct)
    found = _FIRST_PAGES.get(key)
    if found is not None and found[0] is table and found[1] is reach:
        return found[2]
    return keep(_FIRST_PAGES, key, (table, reach, build()), FIRST_PAGES_CACHED)[2]


def union_count(table: sa.Table, conditions: Sequence[sa.ColumnElement[bool]],
                alternatives: Sequence[sa.ColumnElement[bool]], cap: int,
                exact: sa.Select[Any]) -> sa.Select[Any]:
    """The number of rows meeting `conditions` and one of `alternatives`, exact below `cap`,
    `cap` otherwise: `cap` as soon as one alternative alone has that many rows (an index
    range stopped after `cap` entries), else `exact`, the count of their union (a
    subquery the database runs only then)."""
    capped = [sa.select(sa.func.count()).select_from(
        sa.select(table.c.id).where(*conditions, alternative).limit(cap).subquery()).scalar_subquery() >= cap
        for alternative in alternatives]
    return sa.select(sa.case((sa.or_(*capped), cap), else_=exact.scalar_subquery()))


def distinct_count(table: sa.Table, conditions: Sequence[sa.ColumnElement[bool]],
                   alternatives: Sequence[sa.ColumnElement[bool]], cap: int) -> sa.Select[Any]:
    """The number of distinct ids among each alternative's first `cap` (PostgreSQL's exact
    count of the union, see the module's docstring)."""
    firsts = [sa.select(table.c.id).where(*conditions, alternative).limit(cap).subquery()
              for alternative in alternatives]
    ids = sa.union(*(sa.select(first.c.id) for first in firsts)).subquery()
    return sa.select(sa.func.count()).select_from(ids)
