"""Full-text search indexes: one per entity with searchable fields, kept in step with the
records by the database itself, inside the transaction that writes them.

Each index holds, per record, the words of its searchable fields' values joined into one
text, so that a new nullable searchable field (NULL in every existing row: no existing
entry changes) only redefines how that text is made, and rebuilds nothing:

- SQLite: a contentless FTS5 table with one column (`unicode61 remove_diacritics 2`: case
  and accents folded; prefix indexes of 2 and 3 characters), filled by triggers on the
  entity's table, so every write (the write pipeline, a bulk insert, a retype's conversion
  in a plan) updates it in the same transaction and a rollback takes the entries back with
  the rows. A contentless delete must give the words the row was indexed with; FTS5 deletes
  a row's entry per word, not per position, so the joined text's field order may change.
- PostgreSQL: a `tsvector` column (`SEARCH_COLUMN`, a name no field can take) on the
  entity's table, set by a BEFORE INSERT OR UPDATE trigger (plpgsql) with the `simple`
  configuration (lower-cased words, no stemming, no stop words: names and e-mail addresses
  are not English), and a GIN index on it. Stored, so a search's recheck reads the vector
  instead of computing `to_tsvector` for every candidate row.

Both index the same words: ASCII punctuation is a separator on both sides (an e-mail
address is the words of its parts), and user text becomes a query of words, each a
prefix, all required; it is never read as query syntax (docs/api.md, "Search").
The schema planner (plan.py) creates, redefines, rebuilds and drops these indexes; the
records layer asks `SearchMatch` (the condition) and `ranked` (relevance) for the SQL of a
search.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Entity, Metamodel

from .tables import short_name

#: A word: letters and digits (FTS5's unicode61 tokenizer keeps the same characters).
WORD = re.compile(r"[^\W_]+")
#: ASCII punctuation that both databases treat as a word separator (`%` left out: it
#: would have to be escaped for the PostgreSQL driver; its parser drops it anyway).
PUNCTUATION = "!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"
PG_CONFIGURATION = "simple"
SQLITE_TOKENIZER = "unicode61 remove_diacritics 2"


class SearchTooLong(ValueError):
    """A search of more words than a list may look for; the message is for people."""


def words(text: str, limit: int) -> list[str]:
    """The words of a search as a person typed it, each once; punctuation and query
    syntax are separators. SearchTooLong past `limit` words."""
    seen: dict[str, str] = {}
    for word in WORD.findall(unicodedata.normalize("NFC", text)):
        seen.setdefault(word.casefold(), word)
    unique = list(seen.values())
    if len(unique) > limit:
        raise SearchTooLong(f"has {len(unique)} words; a search looks for at most {limit}")
    return unique


def fts5_query(found: Sequence[str]) -> str:
    """Each word a quoted prefix; FTS5 requires every one (implicit AND)."""
    return " ".join('"' + w.replace('"', '""') + '"*' for w in found)


def tsquery(found: Sequence[str]) -> str:
    """Each word a quoted prefix lexeme, all required."""
    return " & ".join("'" + w.replace("\\", "\\\\").replace("'", "''") + "':*" for w in found)


# --- what the metamodel wants --------------------------------------------------------------
@dataclass(frozen=True)
class SearchIndex:
    """The search index of one entity: its table and searched columns (sorted, so that
    reordering fields changes nothing)."""

    entity: str
    table: str
    columns: tuple[str, ...]


def fts_table(entity: str) -> str:
    """SQLite's FTS5 table of an entity (a system name: no entity table starts so)."""
    return f"slate_search_{entity}"


#: The one column of SQLite's FTS5 table: the joined text of the searchable fields.
FTS_COLUMN = "words"
#: PostgreSQL's stored `tsvector` column: field names start with a letter, so no field's
#: column can take it (metamodel/names.py).
SEARCH_COLUMN = "_search"
#: Starts the name of PostgreSQL's search indexes, and of no table or other index.
INDEX_PREFIX = "fts_"
#: PostgreSQL's trigger on an entity table (trigger names are per table).
PG_TRIGGER = "slate_search"


def pg_index(table: str) -> str:
    """PostgreSQL's index name: outside the runtime's tables, like SQLite's FTS5 tables."""
    return short_name(f"{INDEX_PREFIX}{table}")


def pg_function(table: str) -> str:
    """PostgreSQL's trigger function of an entity table (functions share one namespace)."""
    return short_name(f"slate_search_{table}")


def search_columns(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))


def search_index_of(entity: Entity, registry: FieldTypeRegistry) -> SearchIndex | None:
    columns = [spec.column_name(f.name) for f in entity.active_fields if registry[f.type].searchable
               for spec in registry[f.type].columns(f) if spec.suffix in registry[f.type].search_columns(f)]
    if not columns:
        return None
    return SearchIndex(entity.name, entity.table_name, search_columns(columns))


def wanted_search_indexes(metamodel: Metamodel, registry: FieldTypeRegistry) -> dict[str, SearchIndex]:
    found = (search_index_of(e, registry) for e in metamodel.active_entities)
    return {index.entity: index for index in found if index is not None}


def outdated(conn: sa.Connection, indexes: Iterable[SearchIndex]) -> set[str]:
    """The entities whose index the database holds in an earlier layout (one FTS5 column
    per field, or PostgreSQL's expression index, as SlateCRM before issue 11 made them):
    the planner rebuilds those."""
    wanted = {i.entity: i for i in indexes}
    if not wanted:
        return set()
    if conn.dialect.name == "sqlite":
        rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                    "AND name LIKE 'slate_search_%'")).all()
        current = {name for name, sql in rows
                   if re.search(rf"fts5\(\s*{FTS_COLUMN}\s*,", sql or "", re.IGNORECASE)}
        return {e for e in wanted if fts_table(e) not in current}
    rows = conn.execute(sa.text("SELECT table_name FROM information_schema.columns "
                                "WHERE table_schema = current_schema() AND column_name = :c"),
                        {"c": SEARCH_COLUMN}).scalars().all()
    return {e for e, index in wanted.items() if index.table not in set(rows)}


# --- DDL -----------------------------------------------------------------------------------
def _joined(columns: Sequence[str], row: str = "") -> str:
    """The searched text of a row: its columns' values joined by spaces (a NULL adds none);
    a column that is not text (a JSON list of tags) is searched as its text."""
    return " || ' ' || ".join(f"coalesce(CAST({row}{c} AS TEXT), '')" for c in columns)


def _tsvector_sql(columns: Sequence[str], row: str = "") -> str:
    """The stored vector: punctuation made spaces, as FTS5's tokenizer does on SQLite."""
    punctuation = PUNCTUATION.replace("'", "''")
    return (f"to_tsvector('{PG_CONFIGURATION}', translate({_joined(columns, row)}, '{punctuation}', "
            f"'{' ' * len(PUNCTUATION)}'))")


def create_index(index: SearchIndex, dialect: str) -> Callable[[Operations], None]:
    """Creates the index and indexes the rows the table holds (on PostgreSQL the column
    may be there already: a rebuild keeps it, see `drop_index`)."""
    def ddl(ops: Operations) -> None:
        quote = ops.get_context().dialect.identifier_preparer.quote
        table, columns = quote(index.table), [quote(c) for c in index.columns]
        if dialect != "sqlite":
            column = quote(SEARCH_COLUMN)
            ops.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} tsvector")
            ops.execute(f"UPDATE {table} SET {column} = {_tsvector_sql(columns)}")
            _pg_function(ops, index)
            ops.execute(f"CREATE TRIGGER {quote(PG_TRIGGER)} BEFORE INSERT OR UPDATE ON {table} "
                        f"FOR EACH ROW EXECUTE FUNCTION {quote(pg_function(index.table))}()")
            ops.execute(f"CREATE INDEX {quote(pg_index(index.table))} ON {table} USING gin ({column})")
            return
        fts = quote(fts_table(index.entity))
        ops.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({FTS_COLUMN}, content='', "
                    f"tokenize='{SQLITE_TOKENIZER}', prefix='2 3')")
        ops.execute(f"INSERT INTO {fts} (rowid, {FTS_COLUMN}) SELECT id, {_joined(columns)} FROM {table}")
        _sqlite_triggers(ops, index)
    return ddl


def redefine_index(index: SearchIndex, dialect: str, *, suspended: bool = False
                   ) -> Callable[[Operations], None]:
    """Makes the index take `index.columns` from now on, keeping every entry: for columns
    that are new and NULL in every row, or renamed (the words stay the same). PostgreSQL:
    the function only, and the trigger again if `suspend_index` dropped it."""
    def ddl(ops: Operations) -> None:
        if dialect != "sqlite":
            quote = ops.get_context().dialect.identifier_preparer.quote
            _pg_function(ops, index)
            if not suspended:
                return
            ops.execute(f"CREATE TRIGGER {quote(PG_TRIGGER)} BEFORE INSERT OR UPDATE ON "
                        f"{quote(index.table)} FOR EACH ROW EXECUTE FUNCTION "
                        f"{quote(pg_function(index.table))}()")
            return
        _drop_sqlite_triggers(ops, index)
        _sqlite_triggers(ops, index)
    return ddl


def suspend_index(index: SearchIndex, dialect: str) -> Callable[[Operations], None]:
    """Stops the index following writes until `redefine_index` (PostgreSQL's trigger
    function names columns, which a rename in between would break; SQLite renames a
    column in its triggers itself)."""
    def ddl(ops: Operations) -> None:
        if dialect != "sqlite":
            quote = ops.get_context().dialect.identifier_preparer.quote
            ops.execute(f"DROP TRIGGER IF EXISTS {quote(PG_TRIGGER)} ON {quote(index.table)}")
    return ddl


def drop_index(index: SearchIndex, dialect: str, *,
               keep_column: bool = False) -> Callable[[Operations], None]:
    """Drops the index, its triggers (which would block dropping a column on SQLite) and
    PostgreSQL's trigger function; PostgreSQL's column too unless `keep_column` (a rebuild:
    a dropped column still counts against PostgreSQL's 1,600 columns of a table)."""
    def ddl(ops: Operations) -> None:
        quote = ops.get_context().dialect.identifier_preparer.quote
        if dialect != "sqlite":
            table = quote(index.table)
            ops.execute(f"DROP TRIGGER IF EXISTS {quote(PG_TRIGGER)} ON {table}")
            ops.execute(f"DROP FUNCTION IF EXISTS {quote(pg_function(index.table))}()")
            ops.execute(f"DROP INDEX IF EXISTS {quote(pg_index(index.table))}")
            if not keep_column:
                ops.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {quote(SEARCH_COLUMN)}")
            return
        _drop_sqlite_triggers(ops, index)
        ops.execute(f"DROP TABLE IF EXISTS {quote(fts_table(index.entity))}")
    return ddl


def _pg_function(ops: Operations, index: SearchIndex) -> None:
    """The trigger function: computes the vector on insert, and on update only when a
    searched column changed (an update of other fields costs no `to_tsvector`)."""
    quote = ops.get_context().dialect.identifier_preparer.quote
    columns = [quote(c) for c in index.columns]
    new = ", ".join(f"NEW.{c}" for c in columns)
    old = ", ".join(f"OLD.{c}" for c in columns)
    ops.execute(
        f"CREATE OR REPLACE FUNCTION {quote(pg_function(index.table))}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $slate$ BEGIN "
        f"IF TG_OP = 'UPDATE' AND ROW({new}) IS NOT DISTINCT FROM ROW({old}) THEN RETURN NEW; END IF; "
        f"NEW.{quote(SEARCH_COLUMN)} := {_tsvector_sql(columns, 'NEW.')}; RETURN NEW; END $slate$")


def _sqlite_triggers(ops: Operations, index: SearchIndex) -> None:
    quote = ops.get_context().dialect.identifier_preparer.quote
    table, columns = quote(index.table), [quote(c) for c in index.columns]
    fts = quote(fts_table(index.entity))
    delete = (f"INSERT INTO {fts} ({fts}, rowid, {FTS_COLUMN}) "
              f"VALUES ('delete', old.id, {_joined(columns, 'old.')});")
    insert = f"INSERT INTO {fts} (rowid, {FTS_COLUMN}) VALUES (new.id, {_joined(columns, 'new.')});"
    ops.execute(f"CREATE TRIGGER {quote(_trigger(index, 'insert'))} AFTER INSERT ON {table} "
                f"BEGIN {insert} END")
    ops.execute(f"CREATE TRIGGER {quote(_trigger(index, 'delete'))} AFTER DELETE ON {table} "
                f"BEGIN {delete} END")
    ops.execute(f"CREATE TRIGGER {quote(_trigger(index, 'update'))} AFTER UPDATE OF "
                f"{', '.join(columns)} ON {table} BEGIN {delete} {insert} END")


def _drop_sqlite_triggers(ops: Operations, index: SearchIndex) -> None:
    quote = ops.get_context().dialect.identifier_preparer.quote
    for event in ("insert", "delete", "update"):
        ops.execute(f"DROP TRIGGER IF EXISTS {quote(_trigger(index, event))}")


def _trigger(index: SearchIndex, event: str) -> str:
    return f"{fts_table(index.entity)}_{event}"


# --- queries -------------------------------------------------------------------------------
class _Search(sa.ColumnElement[Any]):
    """A search of an entity's index for words (rendered per database)."""

    inherit_cache = True
    _traverse_internals = [
        ("entity", InternalTraversal.dp_string),
        ("id_column", InternalTraversal.dp_clauseelement),
        ("vector", InternalTraversal.dp_clauseelement),
        ("fts5", InternalTraversal.dp_clauseelement),
        ("tsquery", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, entity: str, table: sa.FromClause, found: Sequence[str]):
        self.entity = entity
        self.id_column = table.c.id
        #: PostgreSQL's stored vector; not a column of the runtime's tables (never read
        #: with a record), so named here, on the table or alias searched.
        self.vector: sa.ColumnClause[Any] = sa.sql.expression.ColumnClause(SEARCH_COLUMN, _selectable=table)
        self.fts5 = sa.bindparam(None, fts5_query(found), sa.String)
        self.tsquery = sa.bindparam(None, tsquery(found), sa.String)

    def _tsquery(self, compiler: SQLCompiler, **kw: Any) -> str:
        return f"to_tsquery('{PG_CONFIGURATION}', {compiler.process(self.tsquery, **kw)})"


class SearchMatch(_Search):
    """True for the rows whose searched fields hold every word (each as a prefix)."""

    type = sa.Boolean()
    inherit_cache = True
    #: A condition already: SQLite must not get `… = 1`, which keeps its planner off the
    #: primary key (it would scan the table instead of looking up each match).
    _is_implicitly_boolean = True


@compiles(SearchMatch, "sqlite")
def _match_sqlite(element: SearchMatch, compiler: SQLCompiler, **kw: Any) -> str:
    fts = compiler.preparer.quote(fts_table(element.entity))
    return (f"{compiler.process(element.id_column, **kw)} IN (SELECT rowid FROM {fts} "
            f"WHERE {fts} MATCH {compiler.process(element.fts5, **kw)})")


@compiles(SearchMatch)
def _match_postgresql(element: SearchMatch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{compiler.process(element.vector, **kw)} @@ {element._tsquery(compiler, **kw)}"


@dataclass(frozen=True)
class IndexFirst:
    """SQLite: the FTS5 table joined to the entity's table, for a page in id order read
    from the index in rowid order, or a capped count. FTS5 hands out its matches in rowid
    order, so either stops after its rows; `id IN (matches)` collects every match first
    (90 ms for a word in 3% of a million records, against 5 ms)."""

    table: sa.TableClause
    rowid: sa.ColumnClause[Any]
    match: sa.ColumnElement[bool]


def index_first(entity: str, found: Sequence[str]) -> IndexFirst:
    name = fts_table(entity)
    table = sa.table(name, sa.column("rowid", sa.BigInteger))
    match = sa.literal_column(f'"{name}"').op("MATCH", return_type=sa.Boolean)(
        sa.bindparam(None, fts5_query(found), sa.String))
    return IndexFirst(table, table.c.rowid, match)


#: Matches a ranked search orders, the newest first: ranking costs per match (bm25 or
#: ts_rank, and the words' index entries), so a word found in half a million records
#: would cost seconds; past this, the best of the newest are shown (docs/api.md).
RANKED_CANDIDATES = 1_000


def ranked(entity: str, table: sa.Table, found: Sequence[str], dialect: str) -> sa.Subquery:
    """The newest RANKED_CANDIDATES matches as (`id`, `rank`): lower ranks first on both
    databases (bm25 on SQLite, minus ts_rank on PostgreSQL). Join it to the entity's table:
    as a join SQLite computes each rank once (as a correlated subquery, once per row)."""
    if dialect == "sqlite":
        fts = sa.table(fts_table(entity))
        rowid = sa.literal_column("rowid", sa.BigInteger)
        match = sa.literal_column(f'"{fts_table(entity)}"').op("MATCH")(
            sa.bindparam(None, fts5_query(found), sa.String))
        select = (sa.select(rowid.label("id"), sa.func.bm25(sa.literal_column(f'"{fts_table(entity)}"'),
                                                               type_=sa.Float).label("rank"))
                  .select_from(fts).where(match).order_by(rowid.desc()))
    else:
        alias = table.alias("slate_matched")
        condition = SearchMatch(entity, alias, found)
        select = (sa.select(alias.c.id, (-_TsRank(entity, alias, found)).label("rank"))
                  .where(condition).order_by(alias.c.id.desc()))
    return select.limit(RANKED_CANDIDATES).subquery("slate_ranked")


class _TsRank(_Search):
    type = sa.Float()
    inherit_cache = True


@compiles(_TsRank)
def _ts_rank(element: _TsRank, compiler: SQLCompiler, **kw: Any) -> str:
    return f"ts_rank({compiler.process(element.vector, **kw)}, {element._tsquery(compiler, **kw)})"
