"""The platform's own tables (prefix `slate_`): revisions, installed packs, users, sequences."""

from __future__ import annotations

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes.sqltypes import UTCDateTime, record_id

SYSTEM_PREFIX = "slate_"
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

system_metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

revisions = sa.Table(
    "slate_revision", system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("author", sa.String, nullable=False),
    sa.Column("summary", sa.String, nullable=False),
    sa.Column("platform_version", sa.String, nullable=False),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("metamodel", sa.JSON, nullable=False),
)

packs = sa.Table(
    "slate_pack", system_metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("namespace", sa.String, nullable=False, unique=True),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("title", sa.String, nullable=False),
    sa.Column("checksum", sa.String, nullable=False),
    sa.Column("origin", sa.String, nullable=False),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("installed_at", UTCDateTime(), nullable=False),
    sa.Column("revision_id", sa.Integer, sa.ForeignKey("slate_revision.id"), nullable=False),
)

users = sa.Table(
    "slate_user", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("username", sa.String, nullable=False, unique=True),
    sa.Column("display_name", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

sequences = sa.Table(
    "slate_sequence", system_metadata,
    sa.Column("entity", sa.String, primary_key=True),
    sa.Column("field", sa.String, primary_key=True),
    sa.Column("next_value", sa.BigInteger, nullable=False),
)


def is_initialised(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(revisions.name)
