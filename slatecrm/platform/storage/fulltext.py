"""Full-text search indexes: one per entity with searchable fields, kept in step with the
records by the database itself, inside the transaction that writes them.

SQLite: a contentless FTS5 table (`unicode61 remove_diacritics 2`: case and accents
folded) filled by triggers on the entity's table, so every write (the write pipeline, a
bulk insert, a retype's conversion in a plan) updates it in the same transaction and a
rollback takes the index entries back with the rows. Contentless, so its columns need not
carry the fields' names (FTS5 refuses `rank` and `rowid` as column names).
PostgreSQL: a GIN index over a `tsvector` expression with the `simple` configuration
(lower-cased words, no stemming and no stop words: names and e-mail addresses are not
English). An expression index, not a generated column: creating or replacing it never
rewrites the table, and PostgreSQL maintains it transactionally like any index.

Both index the same words: ASCII punctuation is a separator on both sides (an e-mail
address is the words of its parts), and user text becomes a query of words, each a
prefix, all required; it is never read as query syntax (docs/api.md, "Search").
The schema planner (plan.py) creates, drops and rebuilds these indexes; the records layer
asks `SearchMatch` (the condition) and `ranked` (relevance) for the SQL of a search.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
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


#: Starts the name of PostgreSQL's search indexes, and of no table or other index.
INDEX_PREFIX = "fts_"


def pg_index(table: str) -> str:
    """PostgreSQL's index name: outside the runtime's tables, like SQLite's FTS5 tables."""
    return short_name(f"{INDEX_PREFIX}{table}")


def search_columns(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))


def search_index_of(entity: Entity, registry: FieldTypeRegistry) -> SearchIndex | None:
    columns = [spec.column_name(f.name) for f in entity.active_fields if registry[f.type].searchable
               for spec in registry[f.type].columns(f) if spec.suffix == ""]
    if not columns:
        return None
    return SearchIndex(entity.name, entity.table_name, search_columns(columns))


def wanted_search_indexes(metamodel: Metamodel, registry: FieldTypeRegistry) -> dict[str, SearchIndex]:
    found = (search_index_of(e, registry) for e in metamodel.active_entities)
    return {index.entity: index for index in found if index is not None}


# --- DDL -----------------------------------------------------------------------------------
def _tsvector_sql(columns: Sequence[str]) -> str:
    """The indexed expression; queries render the same one (`SearchMatch`), or
    PostgreSQL would not use the index."""
    joined = " || ' ' || ".join(f"coalesce({c}, '')" for c in columns)
    punctuation = PUNCTUATION.replace("'", "''")
    return (f"to_tsvector('{PG_CONFIGURATION}', translate({joined}, '{punctuation}', "
            f"'{' ' * len(PUNCTUATION)}'))")


def create_index(index: SearchIndex, dialect: str) -> Callable[[Operations], None]:
    """Creates the index and indexes the rows the table holds."""
    def ddl(ops: Operations) -> None:
        quote = ops.get_context().dialect.identifier_preparer.quote
        table, columns = quote(index.table), [quote(c) for c in index.columns]
        if dialect != "sqlite":
            ops.execute(f"CREATE INDEX {quote(pg_index(index.table))} ON {table} "
                        f"USING gin (({_tsvector_sql(columns)}))")
            return
        fts = quote(fts_table(index.entity))
        slots = [f"c{i}" for i in range(len(columns))]
        names = ", ".join(slots)
        new = ", ".join(f"new.{c}" for c in columns)
        old = ", ".join(f"old.{c}" for c in columns)
        delete = f"INSERT INTO {fts} ({fts}, rowid, {names}) VALUES ('delete', old.id, {old});"
        insert = f"INSERT INTO {fts} (rowid, {names}) VALUES (new.id, {new});"
        ops.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, content='', "
                    f"tokenize='{SQLITE_TOKENIZER}', prefix='2 3')")
        ops.execute(f"CREATE TRIGGER {quote(_trigger(index, 'insert'))} AFTER INSERT ON {table} "
                    f"BEGIN {insert} END")
        ops.execute(f"CREATE TRIGGER {quote(_trigger(index, 'delete'))} AFTER DELETE ON {table} "
                    f"BEGIN {delete} END")
        ops.execute(f"CREATE TRIGGER {quote(_trigger(index, 'update'))} AFTER UPDATE OF "
                    f"{', '.join(columns)} ON {table} BEGIN {delete} {insert} END")
        ops.execute(f"INSERT INTO {fts} (rowid, {names}) SELECT id, {', '.join(columns)} FROM {table}")
    return ddl


def drop_index(index: SearchIndex, dialect: str) -> Callable[[Operations], None]:
    """Drops the index (and on SQLite its triggers, which would block dropping a column)."""
    def ddl(ops: Operations) -> None:
        quote = ops.get_context().dialect.identifier_preparer.quote
        if dialect != "sqlite":
            ops.execute(f"DROP INDEX IF EXISTS {quote(pg_index(index.table))}")
            return
        for event in ("insert", "delete", "update"):
            ops.execute(f"DROP TRIGGER IF EXISTS {quote(_trigger(index, event))}")
        ops.execute(f"DROP TABLE IF EXISTS {quote(fts_table(index.entity))}")
    return ddl


def _trigger(index: SearchIndex, event: str) -> str:
    return f"{fts_table(index.entity)}_{event}"


# --- queries -------------------------------------------------------------------------------
class _Search(sa.ColumnElement[Any]):
    """A search of an entity's index for words (rendered per database)."""

    inherit_cache = True
    _traverse_internals = [
        ("entity", InternalTraversal.dp_string),
        ("id_column", InternalTraversal.dp_clauseelement),
        ("columns", InternalTraversal.dp_clauseelement_tuple),
        ("fts5", InternalTraversal.dp_clauseelement),
        ("tsquery", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, entity: str, table: sa.FromClause, columns: Sequence[str], found: Sequence[str]):
        self.entity = entity
        self.id_column = table.c.id
        self.columns = tuple(table.c[c] for c in search_columns(columns))
        self.fts5 = sa.bindparam(None, fts5_query(found), sa.String)
        self.tsquery = sa.bindparam(None, tsquery(found), sa.String)

    def _tsvector(self, compiler: SQLCompiler, **kw: Any) -> str:
        return _tsvector_sql([compiler.process(c, **kw) for c in self.columns])

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
    return f"{element._tsvector(compiler, **kw)} @@ {element._tsquery(compiler, **kw)}"


#: Matches a ranked search orders, the newest first: ranking costs per match (bm25 or
#: ts_rank, and the words' index entries), so a word found in half a million records
#: would cost seconds; past this, the best of the newest are shown (docs/api.md).
RANKED_CANDIDATES = 1_000


def ranked(entity: str, table: sa.Table, columns: Sequence[str], found: Sequence[str],
           dialect: str) -> sa.Subquery:
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
        condition = SearchMatch(entity, alias, columns, found)
        select = (sa.select(alias.c.id, (-_TsRank(entity, alias, columns, found)).label("rank"))
                  .where(condition).order_by(alias.c.id.desc()))
    return select.limit(RANKED_CANDIDATES).subquery("slate_ranked")


class _TsRank(_Search):
    type = sa.Float()
    inherit_cache = True


@compiles(_TsRank)
def _ts_rank(element: _TsRank, compiler: SQLCompiler, **kw: Any) -> str:
    return f"ts_rank({element._tsvector(compiler, **kw)}, {element._tsquery(compiler, **kw)})"
