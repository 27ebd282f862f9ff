"""The one read path: every query of records goes through a `Reader`.

Lists, get by id, search, related lists, board columns and totals, CSV export, reference
titles, history, stage history and aggregates are all built here, from one snapshot
(records/snapshot.py) and run on one connection (the request's). A record-level filter
(the coming permission rule) has exactly one place to act: `Reader.visible`, which asks
the service's `read_filter(entity)` hook for a SQL condition and puts it on every
statement that reads an entity's table, aliased where the table is joined (reference
titles). No other module calls the hook.

Reference titles are LEFT JOINed into the statement that reads the records (up to
`TITLE_DEPTH` levels: a title made of a reference shows that record's title), so a get
by id is one statement. Statements over several entities at once (the related lists of
a record page, the titles named in its history) are stacked into one UNION ALL.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as attribute
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.sql.util import ClauseAdapter

from slatecrm.metamodel.fieldtypes import ApartRelation
from slatecrm.metamodel.names import suggest
from slatecrm.metamodel.rules import RuleContext

from ..kept import keep
from ..storage import fulltext, system
from ..storage.engine import scalar_within_budget
from ..storage.statistics import planner_rows
from . import apart, keyset, listing
from .compiled import SYSTEM_FIELDS, CompiledEntity, CompiledField
from .constraints import member_of
from .errors import BadQuery, RecordNotFound, UnknownEntity
from .limits import DEFAULT, SEARCH_WORDS_MAX, Limits
from .listing import RECENT_FIRST, ListQuery
from .results import HistoryEntry, Page, Record, StageVisit, TokenUsed
from .snapshot import Snapshot

#: A record-level filter: the SQL condition a reader may see of an entity (on its table),
#: or None for all of it.
ReadFilter = Callable[[CompiledEntity], "sa.ColumnElement[bool] | None"]
T = TypeVar("T")
#: Levels of references followed to name a record (a title made of a reference).
TITLE_DEPTH = 3
COUNT_LABEL = "slate__count"
BRANCH_LABEL = "slate__branch"
PEOPLE = "slate__people"
#: Columns of one stacked statement at most (see `run_stacked`).
STACK_COLUMNS = 1_000
#: What a reference shows in place of the title of a record the reader may not see (or of an
#: entity it may not read): never that record's title.
RESTRICTED = "(restricted)"


def no_filter(entity: CompiledEntity) -> sa.ColumnElement[bool] | None:
    """The read filter of a process without record-level rules: everything is visible."""
    return None


def _as_text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A searchable column as text: one that is not (a JSON list of tags) is read as its
    text, as the search index reads it (storage/fulltext.py); PostgreSQL has no lower(jsonb)."""
    return column if isinstance(column.type, sa.String) else sa.cast(column, sa.Text)


class UserFilter:
    """A user's read filter (identity/access.py `Access.where`): the same conditions on every
    request of theirs on one revision, so what the read path builds from them (the title
    joins of a record's shape) is kept too, under `key`, in `kept` (a bounded dict that
    lives as long as the revision's compiled roles)."""

    def __init__(self, where: ReadFilter, key: Hashable, kept: dict[Any, Any]):
        self.where, self.key, self.kept = where, key, kept

    def __call__(self, entity: CompiledEntity) -> sa.ColumnElement[bool] | None:
        return self.where(entity)

    def keep(self, what: str, build: Callable[[], T]) -> T:
        key = (what, self.key)
        try:
            found: T = self.kept[key]
            return found
        except KeyError:
            pass
        return keep(self.kept, key, build(), KEPT_MAX)


#: What a revision's compiled roles keep for their users (filters and shapes) at most.
KEPT_MAX = 20_000


@dataclass(frozen=True)
class TitleSource:
    """Where a referenced record's title is in a row: its id and title columns, under
    the labels the joins gave them, and the sources of the titles it is made of."""

    ce: CompiledEntity
    id_label: str
    #: title field → {column: label in the row}
    labels: dict[str, dict[str, str]]
    nested: dict[str, TitleSource]
    #: What a reference to a record not joined shows (`missing_title`).
    restricted: bool = False

    def title(self, row: Mapping[Any, Any]) -> str | None:
        """None when the row joined no record (none referenced, or not visible)."""
        record_id = row[self.id_label]
        if record_id is None:
            return None
        values = {name: self.ce.fields[name].from_row(row, labels) for name, labels in self.labels.items()}
        references = {}
        for name, source in self.nested.items():
            if values.get(name) is not None:
                references[name] = source.title(row) or missing_title(values[name], self.restricted)
        for name in self.ce.title_fields:
            if name not in self.nested and self.restricted and values.get(name) is not None \
                    and self.ce.fields[name].type.links_records:
                references[name] = RESTRICTED
        return self.ce.title_of(values, record_id, references)


def missing_title(record_id: Any, restricted: bool) -> str:
    """The title of a referenced record that was not joined: one the reader may not see
    (restricted), or, for a reader that sees everything, one that is gone (#id)."""
    return RESTRICTED if restricted else f"#{record_id}"


class _TitleJoins:
    """Builds the LEFT JOINs that bring referenced records' titles into one statement."""

    def __init__(self, entities: Mapping[str, CompiledEntity],
                 visible: Callable[[CompiledEntity, sa.FromClause], list[sa.ColumnElement[bool]]],
                 restricted: bool = False):
        self.entities = entities
        self.visible = visible
        self.restricted = restricted
        self.joined = 0

    def columns(self, ce: CompiledEntity, table: sa.FromClause, prefix: str, from_: sa.FromClause,
                depth: int) -> tuple[TitleSource, sa.FromClause, list[sa.ColumnElement[Any]]]:
        columns: list[sa.ColumnElement[Any]] = [table.c.id.label(prefix + "id")]
        labels: dict[str, dict[str, str]] = {}
        for name in ce.title_fields:
            compiled = ce.fields[name]
            labels[name] = {column: prefix + column for _, column in compiled.columns}
            columns += [table.c[column].label(prefix + column) for _, column in compiled.columns]
        nested: dict[str, TitleSource] = {}
        references = ce.references()
        for name in ce.title_fields:
            target = self.entities.get(references.get(name, ""))
            if target is not None and depth > 1:
                source, from_, more = self.join(target, table.c[ce.fields[name].column], from_, depth - 1)
                nested[name] = source
                columns += more
        return TitleSource(ce, prefix + "id", labels, nested, self.restricted), from_, columns

    def join(self, target: CompiledEntity, on: sa.ColumnElement[Any] | Callable[[sa.FromClause], Any],
             from_: sa.FromClause,
             depth: int) -> tuple[TitleSource, sa.FromClause, list[sa.ColumnElement[Any]]]:
        """`on`: the column holding the target's id, or the join condition given the
        target's alias (a polymorphic reference's: its entity column names the target)."""
        number = self.joined
        self.joined += 1
        alias = target.table.alias(f"slate_t{number}")
        condition = on(alias) if callable(on) else alias.c.id == on
        from_ = from_.outerjoin(alias, sa.and_(condition, *self.visible(target, alias)))
        return self.columns(target, alias, f"t{number}__", from_, depth)


#: The parameter of `RecordShape.by_id`, and how many read filters' statements a shape keeps.
BY_ID = "slate_record_id"
BY_ID_CACHED = 20_000


@dataclass(frozen=True)
class RecordShape:
    """An entity's SELECT with its references' titles joined, and how to read its rows."""

    ce: CompiledEntity
    select: sa.Select[Any]
    references: dict[str, TitleSource]
    #: Whether the reader may not see every record (references not joined are "restricted").
    restricted: bool = False
    #: The references into entities the reader cannot read at all: never joined, "restricted".
    unreadable: tuple[str, ...] = ()
    #: The user fields (`links_users`), by name: the label of the joined user's name.
    user_names: Mapping[str, str] = attribute(default_factory=dict)
    #: The polymorphic references, by name: the title of each target's joined record.
    several: Mapping[str, Mapping[str, TitleSource]] = attribute(default_factory=dict)
    #: The statement reading one record by id, per read filter (`by_id`).
    _by_id: dict[int, tuple[Any, sa.Select[Any]]] = attribute(default_factory=dict, compare=False, repr=False)

    def by_id(self, visible: Sequence[sa.ColumnElement[bool]]) -> sa.Select[Any]:
        """The record whose id is the parameter BY_ID, if `visible` lets it be read. Built
        once per read filter (a user's is the same object on every request, identity/access.py):
        building it and its cache key cost as much as running it."""
        condition = visible[0] if visible else None
        found = self._by_id.get(id(condition))
        if found is not None and found[0] is condition:
            return found[1]
        table = self.ce.table
        select = self.select.where(table.c.id == sa.bindparam(BY_ID, type_=table.c.id.type), *visible)
        return keep(self._by_id, id(condition), (condition, select), BY_ID_CACHED)[1]

    def record(self, row: Mapping[Any, Any]) -> Record:
        ce = self.ce
        values = {name: f.from_row(row) for name, f in ce.fields.items()}
        titles = {name: source.title(row) or missing_title(values[name], self.restricted)
                  for name, source in self.references.items() if values.get(name) is not None}
        for name in self.unreadable:
            if values.get(name) is not None:
                titles[name] = RESTRICTED
        for name, label in self.user_names.items():
            if values.get(name) is not None:
                titles[name] = row[label] or f"#{values[name]}"
        labels: dict[str, str] = {}
        for name, sources in self.several.items():
            value = values.get(name)
            if value is None:
                continue
            source = sources.get(value["entity"])
            titles[name] = (source.title(row) if source is not None else None) or \
                missing_title(value["id"], self.restricted or source is None)
            labels[name] = source.ce.entity.label if source is not None else value["entity"]
        return Record(ce.name, row["id"], row["version"], ce.title_of(values, row["id"], titles), values,
                      {k: row[k] for k in SYSTEM_FIELDS if k not in ("id", "version")}, titles, labels)


def record_shape(ce: CompiledEntity, entities: Mapping[str, CompiledEntity],
                 visible: Callable[[CompiledEntity, sa.FromClause], list[sa.ColumnElement[bool]]],
                 restricted: bool = False) -> RecordShape:
    joins = _TitleJoins(entities, visible, restricted)
    from_: sa.FromClause = ce.table
    columns: list[sa.ColumnElement[Any]] = list(ce.select.selected_columns)
    references: dict[str, TitleSource] = {}
    for name, target in ce.references().items():
        if target in entities:
            source, from_, more = joins.join(entities[target], ce.table.c[ce.fields[name].column], from_,
                                             TITLE_DEPTH)
            references[name] = source
            columns += more
    unreadable = tuple(name for name in ce.references() if name not in references) if restricted else ()
    several: dict[str, dict[str, TitleSource]] = {}
    for name, targets in ce.polymorphic_references().items():
        compiled = ce.fields[name]
        stored = {suffix: ce.table.c[column] for suffix, column in compiled.columns}
        several[name] = {}
        for target in targets:
            if target not in entities:  # an entity the reader cannot read: "restricted"
                continue

            def on(alias: sa.FromClause, target: str = target, compiled: CompiledField = compiled,
                   stored: dict[str, Any] = stored) -> Any:
                return compiled.type.refers_to(stored, target, [alias.c.id], compiled.field)
            source, from_, more = joins.join(entities[target], on, from_, TITLE_DEPTH)
            several[name][target] = source
            columns += more
    user_names: dict[str, str] = {}
    for number, (name, compiled) in enumerate((n, f) for n, f in ce.fields.items() if f.type.links_users):
        # A user field shows the user's name, as the owner does: everyone may see it.
        alias = system.users.alias(f"slate_u{number}")
        from_ = from_.outerjoin(alias, alias.c.id == ce.table.c[compiled.column])
        user_names[name] = f"u{number}__name"
        columns.append(alias.c.display_name.label(user_names[name]))
    return RecordShape(ce, sa.select(*columns).select_from(from_), references, restricted, unreadable,
                       user_names, several)


def stack(selects: Sequence[sa.Select[Any]]) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """Several SELECTs of different shapes as one statement (UNION ALL): each branch has
    its own columns, typed NULL in the other branches' rows; `unstack` splits the rows."""
    subqueries = [s.subquery(f"slate_s{i}") for i, s in enumerate(selects)]
    parts = []
    for i in range(len(subqueries)):
        columns: list[sa.ColumnElement[Any]] = [sa.literal(i, sa.Integer).label(BRANCH_LABEL)]
        for j, other in enumerate(subqueries):
            columns += [(c if i == j else sa.cast(sa.null(), c.type)).label(f"s{j}_{k}")
                        for k, c in enumerate(other.c)]
        parts.append(sa.select(*columns).select_from(subqueries[i]))
    return parts[0] if len(parts) == 1 else sa.union_all(*parts)


def unstack(selects: Sequence[sa.Select[Any]], rows: Iterable[Sequence[Any]]) -> list[list[dict[str, Any]]]:
    """The rows of `stack(selects)`, back as mappings by branch, in their order."""
    names = [[c.key for c in s.subquery().c] for s in selects]
    starts = []
    position = 1
    for each in names:
        starts.append(position)
        position += len(each)
    out: list[list[dict[str, Any]]] = [[] for _ in selects]
    for row in rows:
        branch = row[0]
        start = starts[branch]
        out[branch].append(dict(zip(names[branch], row[start:start + len(names[branch])], strict=True)))
    return out


def run_stacked(conn: sa.Connection, selects: Sequence[sa.Select[Any]]) -> list[list[dict[str, Any]]]:
    """The rows of each SELECT, read in as few statements as the databases' column limits
    allow (PostgreSQL takes 1,664 columns in a SELECT, SQLite 2,000): one for any
    ordinary schema, more only for a record referenced by very many wide entities."""
    out: list[list[dict[str, Any]]] = []
    group: list[sa.Select[Any]] = []
    width = 1
    for select in selects:
        columns = len(select.selected_columns)
        if group and width + columns > STACK_COLUMNS:
            out += unstack(group, conn.execute(stack(group)).all())
            group, width = [], 1
        group.append(select)
        width += columns
    if group:
        out += unstack(group, conn.execute(stack(group)).all())
    return out


class Reader:
    """Reads records of one snapshot through one connection, with one read filter."""

    def __init__(self, snapshot: Snapshot, conn: sa.Connection, read_filter: ReadFilter = no_filter,
                 cursor_key: bytes | None = None, limits: Limits = DEFAULT,
                 filter_context: Callable[[], RuleContext] = RuleContext):
        self.snapshot = snapshot
        #: What a list's rule-language filter knows besides the record: the reader as
        #: `current_user` (a view's "owner = current_user.id"), the time it is read.
        self.filter_context = filter_context
        #: The app's bounds on a list query (records/limits.py).
        self.limits = limits
        self.conn = conn
        self.read_filter = read_filter
        #: Checks a list's cursor and signs the next one (storage/secrets.py).
        self.cursor_key = cursor_key
        self._shapes: dict[str, RecordShape] = {}
        #: Whether some records or fields are not the reader's to see (a principal's access).
        self.restricted = snapshot.restricted or read_filter is not no_filter

    @property
    def nulls_largest(self) -> bool:
        """Where this database's indexes keep blanks, which is where its lists sort them."""
        return keyset.nulls_largest_on(self.conn.dialect)

    # --- the one place a record-level filter is applied -------------------------------------
    def visible(self, ce: CompiledEntity, table: sa.FromClause | None = None) -> list[sa.ColumnElement[bool]]:
        """The conditions a row of `ce` must meet to be read, on `table` (the entity's
        table, or an alias of it in a join). Every statement of this module calls it."""
        condition = self.read_filter(ce)
        if condition is None:
            return []
        if table is not None and table is not ce.table:
            condition = ClauseAdapter(table).traverse(condition)
        return [condition]

    # --- the snapshot's entities ------------------------------------------------------------
    @property
    def entities(self) -> Mapping[str, CompiledEntity]:
        return self.snapshot.entities

    def entity(self, name: str) -> CompiledEntity:
        entities = self.snapshot.entities
        if name not in entities:
            raise UnknownEntity(name, suggest(name, entities))
        return entities[name]

    def shape(self, ce: CompiledEntity) -> RecordShape:
        """Built once per revision (and set of roles: the snapshot's) when no record it joins
        a title from is filtered; per reader otherwise, since the joins carry the reader's
        own filter (the record's own filter is added by each statement)."""
        if self.read_filter is no_filter:
            return self.snapshot.derived(
                f"records.shape:{ce.name}",
                lambda: record_shape(ce, self.entities, self.visible, self.restricted))
        if isinstance(self.read_filter, UserFilter):  # the same for every request of the user
            return self.read_filter.keep(f"records.shape:{ce.name}", lambda: self._shape(ce))
        return self._shape(ce)

    def _shape(self, ce: CompiledEntity) -> RecordShape:
        if not self._joins_filtered(ce, TITLE_DEPTH):
            return self.snapshot.derived(
                f"records.shape:{ce.name}",
                lambda: record_shape(ce, self.entities, self.visible, self.restricted))
        if ce.name not in self._shapes:
            self._shapes[ce.name] = record_shape(ce, self.entities, self.visible, self.restricted)
        return self._shapes[ce.name]

    def _joins_filtered(self, ce: CompiledEntity, depth: int, names: Iterable[str] | None = None) -> bool:
        """Whether a title join of `ce` (its references, or the reference title fields
        `names` of a joined record, to `depth` levels) reads an entity the reader filters."""
        references = ce.references()
        for name in references if names is None else names:
            target = self.entities.get(references.get(name, ""))
            if target is None:
                continue
            if self.read_filter(target) is not None:
                return True
            nested = [n for n in target.title_fields if n in target.references()]
            if depth > 1 and nested and self._joins_filtered(target, depth - 1, nested):
                return True
        return False

    def expression_conditions(self, ce: CompiledEntity, query: ListQuery) -> list[sa.ColumnElement[bool]]:
        """The query's rule-language filter as SQL, for every statement built from a list
        query (pages, board totals), so that they all select the same records."""
        if not query.expression:
            return []
        return [self.snapshot.rules.filter(ce.name, query.expression, self.filter_context())]

    def list_conditions(self, ce: CompiledEntity, query: ListQuery,
                        visible: list[sa.ColumnElement[bool]] | None = None) -> list[sa.ColumnElement[bool]]:
        """Every condition of a list query's rows: its filter, the read filter (`visible`, when
        the caller has it already) and what a search may not confirm."""
        seen = self.visible(ce) if visible is None else visible
        return [*self.expression_conditions(ce, query), *seen, *self.search_seen(ce, query)]

    def _build(self, ce: CompiledEntity, query: ListQuery, base: sa.Select[Any],
               within: Sequence[sa.ColumnElement[bool]] = ()) -> listing.PageQuery:
        """A page's statements, the read filter passed on as its `reach` too (a page read
        as the union of the reach's alternatives, records/alternatives.py). `within`: more
        conditions the rows must meet (the records a many-to-many field links)."""
        visible = self.visible(ce)
        return listing.build(ce, query, [*self.list_conditions(ce, query, visible), *within], self.cursor_key,
                             base=base, limits=self.limits, nulls_largest=self.nulls_largest,
                             dialect=self.conn.dialect, reach=visible[0] if visible else None)

    def search_seen(self, ce: CompiledEntity, query: ListQuery) -> list[sa.ColumnElement[bool]]:
        """A search index holds the words of every searchable field, hidden ones too: for a
        reader who may not see some of them, each word must also be in a field it sees, or
        a search would confirm what a hidden field holds."""
        if not (query.search and self.snapshot.hides_searchable(ce.name)):
            return []
        try:
            found = fulltext.words(query.search, SEARCH_WORDS_MAX)
        except fulltext.SearchTooLong:
            return []  # refused by the list query itself, naming `q`
        if not ce.searchable:
            return [sa.false()]
        return [sa.or_(*(sa.func.lower(_as_text(ce.table.c[column])).contains(word.lower(), autoescape=True)
                         for column in ce.searchable)) for word in found]

    # --- records -----------------------------------------------------------------------------
    def get(self, entity: str, record_id: int) -> Record:
        ce = self.entity(entity)
        found = self.fetch(ce, [record_id])
        if not found:
            raise RecordNotFound(entity, record_id)
        return found[0]

    def fetch(self, ce: CompiledEntity, ids: Sequence[int], *, filtered: bool = True) -> list[Record]:
        """The records with these ids that the reader may see, by id: one statement.
        `filtered=False`: these records whatever the filter (a write's read back: whether the
        writer may write them is the pipeline's check), the titles they show still filtered."""
        shape = self.shape(ce)
        visible = self.visible(ce) if filtered else []
        if len(ids) == 1:
            rows = self.conn.execute(shape.by_id(visible), {BY_ID: ids[0]}).mappings()
            return self.with_apart(ce, [shape.record(row) for row in rows])
        key = member_of(self.conn, ce.table.c.id, ids)
        select = shape.select.where(key, *visible).order_by(ce.table.c.id)
        return self.with_apart(ce, [shape.record(row) for row in self.conn.execute(select).mappings()])

    # --- fields stored apart (records/apart.py) ----------------------------------------------
    def apart_store(self) -> apart.Store:
        """The store the hooks of fields stored apart read through: this reader's connection,
        its read filter on the records they link to, and their titles as it may see them."""
        def titles(entity: str, ids: set[int]) -> dict[int, str]:
            return self.names({entity: ids})[0].get(entity, {})
        return apart.Store(self.conn, self.snapshot.tables,
                           apart.visible_in(self.conn, self.entities, self.read_filter), titles,
                           entities=self.entities)

    def with_apart(self, ce: CompiledEntity, records: list[Record]) -> list[Record]:
        """`records` with the values of their fields stored apart: one load per field for all."""
        if records and apart.apart_fields(ce):
            apart.load_into(self.apart_store(), ce, records)
        return records

    def page(self, entity: str, query: ListQuery | None = None,
             within: Sequence[sa.ColumnElement[bool]] = ()) -> Page:
        ce = self.entity(entity)
        query = query or ListQuery()
        shape = self.shape(ce)
        built = self._build(ce, query, shape.select, within)
        estimate = None
        try:
            rows = self.conn.execute(built.statement).mappings().all()
            fallback = built.fallback_for(rows)  # a search's bounded walk fell short (searchwalk.py)
            if fallback is not None:
                rows = self.conn.execute(fallback).mappings().all()
            count = built.counted(rows)
            if count is None and not built.uncounted:  # a first page with more after it
                count = scalar_within_budget(self.conn, built.count, self.limits.count_budget_ms)
            if count is None and built.matching is not None:
                estimate = planner_rows(self.conn, built.matching)
        except sa.exc.DataError as error:  # a filter computing beyond a column type's range
            if self.conn.in_transaction():
                self.conn.rollback()
            if not query.expression:
                raise
            raise BadQuery({"filter": [f"the filter cannot be computed: {error.orig}"]}) from None
        return Page(self.with_apart(ce, [shape.record(r) for r in rows[: built.limit]]),
                    listing.next_cursor(rows, built, count),
                    None if count is None else min(count, listing.COUNT_CAP),
                    count is not None and count > listing.COUNT_CAP, estimate)

    def list_select(self, ce: CompiledEntity, query: ListQuery) -> sa.Select[Any]:
        """A list query's rows without order, limit or titles (what totals add up)."""
        base = replace(query, after=None, sort=(), limit=1)
        built = listing.build(ce, base, self.list_conditions(ce, base), self.cursor_key, limits=self.limits,
                              dialect=self.conn.dialect)
        return built.select.limit(None).order_by(None)

    # --- related records ---------------------------------------------------------------------
    def reverse_references(self, entity: str) -> list[tuple[str, str]]:
        """(entity, field) pairs of the references that point to `entity`."""
        return list(self.snapshot.referrers(entity))

    def relation(self, entity: str, relation: str) -> tuple[str, str]:
        """`relation` is `other.field`, or just `other` when it has one reference to `entity`."""
        other, _, field = relation.partition(".")
        known = self.reverse_references(entity)
        candidates = [(e, f) for e, f in known if e == other and (not field or f == field)]
        if len(candidates) != 1:
            why = "is ambiguous; name the field" if candidates else "is not a reference to it"
            shown = ", ".join([f"{e}.{f}" for e, f in known] + list(self.apart_relations(entity))) or "none"
            raise BadQuery({"relation": [f"{relation!r} {why}; references to {entity}: {shown}"]})
        return candidates[0]

    def apart_relations(self, entity: str) -> dict[str, tuple[ApartRelation, bool]]:
        """The relations fields stored apart make with `entity`, by the name they have on its
        side: a field's name on its own entity, its `inverse` name (or `other.field`) on the
        target's; with whether `entity` is the target's side (True) or the field's (False)."""
        def build() -> dict[str, dict[str, tuple[ApartRelation, bool]]]:
            out: dict[str, dict[str, tuple[ApartRelation, bool]]] = {}
            registry = self.snapshot.registry
            for other in self.snapshot.metamodel.active_entities:
                for field in other.active_fields:
                    field_type = registry.of(field)
                    if field_type is None or not field_type.stored_apart:
                        continue
                    found = field_type.apart_related(field, other.name)
                    if found is None:
                        continue
                    out.setdefault(found.source, {})[field.name] = (found, False)
                    inverse = found.inverse or f"{other.name}.{field.name}"
                    out.setdefault(found.target, {})[inverse] = (found, True)
            return out
        return self.snapshot.derived("records.apart_relations", build).get(entity, {})

    def linked(self, entity: str, record_id: int, relation: ApartRelation, inverse: bool,
               query: ListQuery | None = None) -> Page:
        """The records a field stored apart links to this (visible) record, a page of them."""
        self.get(entity, record_id)
        table = sa.table(relation.table, sa.column(relation.source_column), sa.column(relation.target_column))
        mine, theirs = ((relation.target_column, relation.source_column) if inverse
                        else (relation.source_column, relation.target_column))
        other = relation.source if inverse else relation.target
        ce = self.entity(other)
        condition = ce.table.c.id.in_(sa.select(table.c[theirs]).where(table.c[mine] == record_id))
        return self.page(other, query, [condition])

    def related(self, entity: str, record_id: int, relation: str, query: ListQuery | None = None) -> Page:
        """Records of another entity that refer to this (visible) record, or that a field
        stored apart links to it (`relation`: the field's name, or its inverse name)."""
        links = self.apart_relations(entity)
        if relation in links:
            return self.linked(entity, record_id, *links[relation], query)
        self.get(entity, record_id)
        other, field = self.relation(entity, relation)
        base = query or ListQuery()
        return self.page(other, replace(base, filters=(*base.filters,
                                                       self._pointing(entity, record_id, other, field))))

    def _pointing(self, entity: str, record_id: int, other: str, field: str) -> listing.Filter:
        """The list filter of `other`'s records whose `field` points to `record_id` of `entity`."""
        compiled = self.entity(other).fields[field]
        return listing.Filter(field, "eq", (compiled.type.reference_text(entity, record_id, compiled.field),))

    def related_lists(self, entity: str, record_id: int, relations: Sequence[tuple[str, str]], *, limit: int,
                      sort: tuple[str, ...] = ()) -> list[Page]:
        """The first records of several relations of one record (already read), with
        their counts, in one statement: in `sort`, else each entity's default_sort, else
        the latest changed first."""
        scoped = [(other, self._pointing(entity, record_id, other, field)) for other, field in relations]
        return self.first_pages([
            (other, ListQuery(sort=listing.sort_or(self.entity(other), sort, RECENT_FIRST), limit=limit,
                              filters=(where,)))
            for other, where in scoped])

    def related_pages(self, entity: str, record_id: int,
                      lists: Sequence[tuple[str, str, tuple[str, ...], int]]) -> list[Page]:
        """As `related_lists`, each list ((other, field, sort, limit): a layout's) with its own
        sort and length, in one statement."""
        return self.first_pages([
            (other, ListQuery(sort=listing.sort_or(self.entity(other), sort, RECENT_FIRST), limit=limit,
                              filters=(self._pointing(entity, record_id, other, field),)))
            for other, field, sort, limit in lists])

    def first_pages(self, queries: Sequence[tuple[str, ListQuery]]) -> list[Page]:
        """The first page of several list queries (of any entities), each with its
        capped count, stacked into one statement (a board's columns, a record's related
        lists). These counts are exact (to the cap), with no budget: each is of one
        stage or one referring record, which an index serves (stage and reference fields
        are indexed), and a budget would need a statement of its own per list."""
        if not queries:
            return []
        shapes, built, selects = [], [], []
        for entity, query in queries:
            if query.after is not None:
                raise ValueError("first_pages reads first pages; read a later page with page()")
            ce = self.entity(entity)
            shape = self.shape(ce)
            page = self._build(ce, query, shape.select)
            shapes.append(shape)
            built.append(page)
            selects.append(page.select.add_columns(page.count.scalar_subquery().label(COUNT_LABEL)))
        try:
            branches = run_stacked(self.conn, selects)
        except sa.exc.DataError as error:  # a filter computing beyond a column type's range
            if not any(query.expression for _, query in queries):
                raise
            raise BadQuery({"filter": [f"the filter cannot be computed: {error.orig}"]}) from None
        pages = []
        of_entity: dict[str, tuple[CompiledEntity, list[Record]]] = {}
        for shape, page, rows in zip(shapes, built, branches, strict=True):
            count = rows[0][COUNT_LABEL] if rows else 0  # no rows: nothing matched (no cursor)
            records = [shape.record(r) for r in rows[: page.limit]]
            of_entity.setdefault(shape.ce.name, (shape.ce, []))[1].extend(records)
            pages.append(Page(records, listing.next_cursor(rows, page, count),
                              min(count, listing.COUNT_CAP), count > listing.COUNT_CAP))
        for ce, records in of_entity.values():  # one load per field stored apart for every page
            self.with_apart(ce, records)
        return pages

    # --- history -----------------------------------------------------------------------------
    def history(self, entity: str, record_id: int) -> list[HistoryEntry]:
        """A record's changes, oldest first. Kept after a delete; when records are filtered,
        only the history of a record the reader may see."""
        ce = self.entity(entity)
        h, tokens = system.history, system.api_tokens
        # The token's name joined in: still one statement (tests/test_read_path.py counts them).
        select = (sa.select(h, tokens.c.name.label("token_name"))
                  .select_from(h.outerjoin(tokens, tokens.c.id == h.c.token_id))
                  .where(h.c.entity == ce.name, h.c.record_id == record_id))
        visible = self.visible(ce)
        if visible:
            exists = sa.select(ce.table.c.id).where(ce.table.c.id == record_id, *visible).exists()
            select = select.where(exists)
        rows = self.conn.execute(select.order_by(h.c.version, h.c.id)).all()
        if not rows:
            raise RecordNotFound(entity, record_id)
        shown = {*ce.fields, "owner"} if self.snapshot.restricted else None

        def shown_only(changes: dict[str, Any]) -> dict[str, Any]:
            """The changes of fields the reader may not see are left out."""
            return changes if shown is None else {k: v for k, v in changes.items() if k in shown}

        return [HistoryEntry(r.version, r.action, r.changed_at, r.changed_by, shown_only(r.changes),
                             None if r.token_id is None else TokenUsed(r.token_id, r.token_name or "?"))
                for r in rows]

    def stage_history(self, entity: str, record_id: int) -> list[StageVisit]:
        """The record's stage visits; one statement that also tells a missing record."""
        ce = self.entity(entity)
        s, table = system.stage_history, ce.table
        visits = table.outerjoin(s, sa.and_(s.c.entity == ce.name, s.c.record_id == table.c.id))
        select = (sa.select(table.c.id.label("slate__record"), s.c.field, s.c.stage, s.c.entered_at,
                            s.c.left_at, s.c.seconds)
                  .select_from(visits)
                  .where(table.c.id == record_id, *self.visible(ce))
                  .order_by(s.c.entered_at, s.c.id))
        rows = self.conn.execute(select).all()
        if not rows:
            raise RecordNotFound(entity, record_id)
        shown = ce.pipelines if self.snapshot.restricted else None  # a hidden stage field's visits: none
        return [StageVisit(r.field, r.stage, r.entered_at, r.left_at, r.seconds) for r in rows
                if r.field is not None and (shown is None or r.field in shown)]

    # --- titles and names --------------------------------------------------------------------
    def names(self, titles: Mapping[str, Iterable[int]], people: Iterable[int | None] = ()
              ) -> tuple[dict[str, dict[int, str]], dict[int, str]]:
        """The titles of records by entity and id (those the reader may see) and the
        display names of users, in one statement."""
        wanted = {name: sorted(set(ids)) for name, ids in titles.items() if name in self.entities and ids}
        people_ids = sorted({i for i in people if i is not None})
        selects: list[sa.Select[Any]] = []
        sources: list[TitleSource | None] = []
        for name, ids in wanted.items():
            ce = self.entities[name]
            joins = _TitleJoins(self.entities, self.visible, self.restricted)
            source: TitleSource | None
            source, from_, columns = joins.columns(ce, ce.table, "r__", ce.table, TITLE_DEPTH)
            selects.append(sa.select(*columns).select_from(from_)
                           .where(ce.table.c.id.in_(ids), *self.visible(ce)))
            sources.append(source)
        if people_ids:
            users = system.users
            selects.append(sa.select(users.c.id, users.c.display_name).where(users.c.id.in_(people_ids)))
            sources.append(None)
        found: dict[str, dict[int, str]] = {name: {} for name in titles}
        names: dict[int, str] = {}
        if not selects:
            return found, names
        branches = run_stacked(self.conn, selects)
        labels = [*wanted, *([PEOPLE] if people_ids else [])]
        for entity, each, rows in zip(labels, sources, branches, strict=True):
            for row in rows:
                if each is None:
                    names[row["id"]] = row["display_name"]
                else:
                    found[entity][row[each.id_label]] = each.title(row) or ""
        return found, names

    # --- aggregates --------------------------------------------------------------------------
    def totals(self, ce: CompiledEntity, group: str, summed: CompiledField | None,
               query: ListQuery) -> list[tuple[Any, int, dict[str, Any], Any]]:
        """(group value, count, sum group, sum) over a list query: one row per value of the
        `group` column and per value of the summed type's sum groups, since a sum never adds
        values its type keeps apart (amounts in different currencies)."""
        rows = self.list_select(ce, query).subquery()
        key = rows.c[group]
        groups = [(suffix, rows.c[summed.column_of(suffix)])
                  for suffix in summed.type.sum_groups(summed.field)] if summed else []
        columns: list[Any] = [key, sa.func.count(), *[c for _, c in groups]]
        if summed is not None:
            columns.append(sa.func.sum(rows.c[summed.column]))
        grouped = sa.select(*columns).group_by(key, *[c for _, c in groups])
        return [(row[0], row[1], {suffix: row[2 + i] for i, (suffix, _) in enumerate(groups)},
                 row[-1] if summed is not None else None)
                for row in self.conn.execute(grouped.order_by(key, *[c for _, c in groups]))]
