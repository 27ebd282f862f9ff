"""The platform's own tables (prefix `slate_`): revisions, installed packs, users, sequences."""

from __future__ import annotations

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes.sqltypes import UTCDateTime, record_id

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


history = sa.Table(
    "slate_history", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("record_id", sa.BigInteger, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.Column("changed_by", sa.BigInteger, nullable=True),
    #: {field: [old, new]} in the fields' JSON form
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Index("ix_slate_history_record", "entity", "record_id", "version"),
)

stage_history = sa.Table(
    "slate_stage_history", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("record_id", sa.BigInteger, nullable=False),
    sa.Column("field", sa.String, nullable=False),
    sa.Column("stage", sa.String, nullable=False),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("left_at", UTCDateTime(), nullable=True),
    sa.Column("seconds", sa.BigInteger, nullable=True),
    sa.Column("entered_by", sa.BigInteger, nullable=True),
    sa.Index("ix_slate_stage_history_record", "entity", "record_id", "field", "entered_at"),
)


customisations = sa.Table(
    "slate_customisation", system_metadata,
    #: "entity" (a custom object of the organisation) or "extension" (of a pack's entity)
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("name", sa.String, primary_key=True),
    #: the definition, in the form of a pack file
    sa.Column("document", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("revision_id", sa.Integer, sa.ForeignKey("slate_revision.id"), nullable=False),
)


secrets = sa.Table(
    "slate_secret", system_metadata,
    #: what the secret is for ("cursor": the HMAC key of list cursors)
    sa.Column("name", sa.String, primary_key=True),
    #: random bytes, hex-encoded
    sa.Column("value", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


def is_initialised(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(revisions.name)
