"""The platform's own tables (prefix `slate_`): revisions, installed packs, users, sequences.

`create_all` makes a missing table in its current shape; a table that a newer version changed
is brought up to date by an idempotent step (`upgrade`), which `installer.create_system_tables`
(so `slatecrm init`) runs on every database.
"""

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
    #: a unique handle; users made by identity/users.py have their e-mail, lower-cased
    sa.Column("username", sa.String, nullable=False, unique=True),
    #: the user's name, as pages show it
    sa.Column("display_name", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # The columns below came with identity (issue 12): `upgrade_users` adds them to a
    # database made before, so each is nullable or has a default for the rows already there.
    #: as typed (its domain lower-cased). None for the users made before e-mails existed
    #: (sample data's owners, older databases)
    sa.Column("email", sa.String, nullable=True),
    #: the e-mail lower-cased, unique (ux_slate_user_email_key): e-mails are unique whatever
    #: their case on both databases. A column rather than an index on lower(email): SQLAlchemy
    #: cannot reflect an expression index on SQLite (it warns), and schema comparisons reflect.
    sa.Column("email_key", sa.String, nullable=True),
    #: a disabled user keeps its records, history and name, and will not be able to sign in
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    #: an IANA time zone name (validated with zoneinfo when set)
    sa.Column("time_zone", sa.String, nullable=False, server_default="UTC"),
    #: a language tag (en, fr, pt-BR)
    sa.Column("locale", sa.String, nullable=False, server_default="en"),
    #: the user's manager (no cycles: identity/users.py refuses them)
    sa.Column("manager_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="SET NULL"),
              nullable=True),
    #: argon2id, in its encoded form (parameters and salt included); None: no password yet,
    #: or reset
    sa.Column("password_hash", sa.String, nullable=True),
    #: when the password was last set or reset: what was granted before it is revoked
    sa.Column("password_changed_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=True),
)
users_email_index = sa.Index("ux_slate_user_email_key", users.c.email_key, unique=True)

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
    #: the API token the change came through (slate_api_token.id), None for a session or the
    #: system; added by `upgrade` to an older database
    sa.Column("token_id", sa.BigInteger, nullable=True),
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


# --- identity and access (issue 12) ------------------------------------------------------------

teams = sa.Table(
    "slate_team", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("description", sa.String, nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

team_members = sa.Table(
    "slate_team_member", system_metadata,
    sa.Column("team_id", record_id(), sa.ForeignKey("slate_team.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="CASCADE"), primary_key=True),
    sa.Index("ix_slate_team_member_user", "user_id"),
)

user_roles = sa.Table(
    "slate_user_role", system_metadata,
    sa.Column("user_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="CASCADE"), primary_key=True),
    #: the `name` of a `kind: role` definition (a role no longer defined grants nothing)
    sa.Column("role", sa.String, primary_key=True),
)

user_attributes = sa.Table(
    "slate_user_attribute", system_metadata,
    sa.Column("user_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="CASCADE"), primary_key=True),
    #: the `name` of a `kind: user_attribute` definition (a value of one no longer defined is
    #: kept, and ignored: defining it again brings it back)
    sa.Column("name", sa.String, primary_key=True),
    #: the value as JSON text (a string, number as a string, true/false, a date as text),
    #: checked against the definition's type when set: the type is the metamodel's and may
    #: change, so one text column serves every type on both databases, and the value is only
    #: ever read for one user (a sharing rule binds it as a parameter, never joins this table)
    sa.Column("value", sa.String, nullable=False),
)

sessions = sa.Table(
    "slate_session", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("user_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="CASCADE"), nullable=False),
    #: SHA-256 of the random token the cookie holds (the token itself is never stored)
    sa.Column("token_hash", sa.String, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    #: the absolute end of the session, whatever its use
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("address", sa.String, nullable=True),
    sa.Column("user_agent", sa.String, nullable=True),
    sa.Index("ix_slate_session_user", "user_id"),
)

login_throttle = sa.Table(
    "slate_login_throttle", system_metadata,
    #: "account:<e-mail lower-cased>" or "address:<client address>"
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", UTCDateTime(), nullable=False),
    #: no login for this key before then
    sa.Column("blocked_until", UTCDateTime(), nullable=True),
)

api_tokens = sa.Table(
    "slate_api_token", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("user_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    #: SHA-256 of the token (shown once, at creation, never stored)
    sa.Column("token_hash", sa.String, nullable=False, unique=True),
    #: the token's first characters, so a user can tell their tokens apart
    sa.Column("prefix", sa.String, nullable=False),
    #: a list of identity.principal.SCOPES
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Index("ix_slate_api_token_user", "user_id"),
)

#: Personal list views (platform/savedviews.py): a user's named columns, filter and sort of
#: one entity's list, which an administrator may share with roles.
saved_views = sa.Table(
    "slate_saved_view", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("user_id", record_id(), sa.ForeignKey("slate_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("name", sa.String, nullable=False),
    #: {"columns": [...], "filter": "...", "sort": [...]}
    sa.Column("definition", sa.JSON, nullable=False),
    #: the role names it is shared with (empty: the owner's only)
    sa.Column("shared_roles", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("user_id", "entity", "name"),
    sa.Index("ix_slate_saved_view_entity", "entity"),
)

#: One row: a number every change to who a session or token stands for raises, in the same
#: transaction (triggers, storage/identity_generation.py), so a cached principal is checked
#: with one indexed read per request (web/authentication.py).
identity_generation = sa.Table(
    "slate_identity_generation", system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
)

audit = sa.Table(
    "slate_audit", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    #: what happened: "login", "login_failed", "record.update", "pack.install", ...
    sa.Column("action", sa.String, nullable=False),
    #: who (no foreign key: the log outlives its users), and their name at the time
    sa.Column("user_id", sa.BigInteger, nullable=True),
    sa.Column("user_name", sa.String, nullable=True),
    sa.Column("token_id", sa.BigInteger, nullable=True),
    sa.Column("address", sa.String, nullable=True),
    #: what it was done to: ("user", "<id>"), ("record", "<entity>/<id>"), ("pack", "<name>"), ...
    sa.Column("object_kind", sa.String, nullable=True),
    sa.Column("object_id", sa.String, nullable=True),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Index("ix_slate_audit_at", "at"),
    sa.Index("ix_slate_audit_user", "user_id", "at"),
    sa.Index("ix_slate_audit_action", "action", "at"),
)


# --- uploaded files (platform/files/): the metadata of each stored file -----------------------------

files = sa.Table(
    "slate_file", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    #: where the storage backend keeps the bytes (a random name, never the uploaded one)
    sa.Column("storage_key", sa.String, nullable=False, unique=True),
    #: the file's name as uploaded (its folders and control characters removed)
    sa.Column("name", sa.String, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    #: detected from the content (platform/files/detect.py), never taken from the name or
    #: from what the client said
    sa.Column("content_type", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False),
    #: Pillow opened and verified it: an image, with its size in pixels
    sa.Column("image", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.BigInteger, nullable=True),
    #: the record field holding it (entity, record id, field); None until a write attaches it
    sa.Column("entity", sa.String, nullable=True),
    sa.Column("record_id", sa.BigInteger, nullable=True),
    sa.Column("field", sa.String, nullable=True),
    #: set, in the write's transaction, when a write removed it from its record (or deleted the
    #: record): the bytes and this row are deleted once that write has committed
    sa.Column("released_at", UTCDateTime(), nullable=True),
    sa.Index("ix_slate_file_record", "entity", "record_id"),
    sa.Index("ix_slate_file_released_at", "released_at"),
)


def is_initialised(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(revisions.name)


# --- workflows (platform/workflows/): the outbox and job queue, the run log, the schedules ---------
#: The transactional outbox: one row per write transaction that fired workflows, written in
#: that transaction (no change without its event, no event without its change), holding the
#: jobs it owes as one JSON array. A worker moves them to `slate_workflow_job` and deletes the
#: row in one transaction (workflows/outbox.py `fan_out`): a write pays one narrow row into a
#: table with no index but its key, not a row per job into the indexed queue.
workflow_events = sa.Table(
    "slate_workflow_event", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    #: {"at": when, "records": [{"entity", "record_id", "event", "chain"}, ...],
    #: "jobs": [[workflow, version, trigger, index of its record], ...]} (JSON text, encoded once
    #: by the writer)
    sa.Column("jobs", sa.Text, nullable=False),
)

#: One row per run a workflow owes: moved from the outbox by a worker, or written directly
#: by a schedule, a time trigger's registration, a manual run or an inbound webhook; claimed
#: by workers.
workflow_jobs = sa.Table(
    "slate_workflow_job", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("workflow", sa.String, nullable=False),
    #: the fingerprint of the definition that made the job (platform/workflows/registry.py)
    sa.Column("version", sa.String, nullable=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("record_id", sa.BigInteger, nullable=True),
    #: what fired it: created, updated, deleted, stage_entered, stage_left, time, schedule,
    #: manual, webhook
    sa.Column("trigger", sa.String, nullable=False),
    #: {"changes": {field: [from, to]}, "user": id, "values": {...} (deleted), ...}
    sa.Column("event", sa.JSON, nullable=False),
    #: pending → running → done | dead | cancelled (a failed attempt goes back to pending,
    #: later, until its attempts are spent)
    sa.Column("status", sa.String, nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    #: claims so far; the claim's number fences its commits (a worker whose lease expired and
    #: was taken over cannot mark the job done)
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String, nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    #: the actions done so far, by index: {"0": {...outcome}}; a retry skips them
    sa.Column("progress", sa.JSON, nullable=False),
    #: the workflows whose runs led to this one (loop protection), outermost first
    sa.Column("chain", sa.JSON, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    #: a pending job's identity where there must be at most one (a time trigger's run of a
    #: record, a schedule's firing of a record, an inbound delivery): unique while pending
    sa.Column("dedupe_key", sa.String, nullable=True),
    sa.Index("ix_slate_workflow_job_due", "status", "due_at"),
    sa.Index("ix_slate_workflow_job_record", "entity", "record_id"),
    sa.Index("ix_slate_workflow_job_workflow", "workflow", "status"),
    sa.Index("ux_slate_workflow_job_dedupe", "dedupe_key", unique=True,
             sqlite_where=sa.text("status = 'pending' AND dedupe_key IS NOT NULL"),
             postgresql_where=sa.text("status = 'pending' AND dedupe_key IS NOT NULL")),
)

#: One row per attempt at a job (and per write that silenced workflows): what ran, how it went.
workflow_runs = sa.Table(
    "slate_workflow_run", system_metadata,
    sa.Column("id", record_id(), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.BigInteger, nullable=True),
    sa.Column("workflow", sa.String, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("entity", sa.String, nullable=False),
    sa.Column("record_id", sa.BigInteger, nullable=True),
    sa.Column("trigger", sa.String, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    #: done | failed (to be retried) | dead | skipped (condition false, record gone) | silenced
    sa.Column("status", sa.String, nullable=False),
    #: the condition's result: true, false, or null (none, or not reached)
    sa.Column("condition", sa.Boolean, nullable=True),
    #: [{"index", "kind", "status": done|failed|skipped|done-before, "ms", "detail"|"error"}]
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("worker", sa.String, nullable=True),
    #: when the event happened (the job's creation) and when the attempt started and ended
    sa.Column("triggered_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Index("ix_slate_workflow_run_record", "entity", "record_id", "id"),
    sa.Index("ix_slate_workflow_run_workflow", "workflow", "id"),
)

#: The live registration of each active schedule (cron) workflow's version: exactly one row
#: per workflow; the worker that claims a due row fires it and moves `next_at` on.
workflow_schedules = sa.Table(
    "slate_workflow_schedule", system_metadata,
    sa.Column("workflow", sa.String, primary_key=True),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("next_at", UTCDateTime(), nullable=False),
    sa.Column("last_at", UTCDateTime(), nullable=True),
)

#: Inbound webhook deliveries seen (their idempotency keys), for 24 hours.
workflow_deliveries = sa.Table(
    "slate_workflow_delivery", system_metadata,
    sa.Column("workflow", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("job_id", sa.BigInteger, nullable=True),
    sa.Column("record_id", sa.BigInteger, nullable=True),
)

#: The workers alive: each notes itself every few seconds (the workflows' health page).
workflow_workers = sa.Table(
    "slate_workflow_worker", system_metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("seen_at", UTCDateTime(), nullable=False),
    sa.Column("jobs_done", sa.BigInteger, nullable=False),
)

#: The columns of slate_user that identity added, in the order an upgrade adds them.
USER_COLUMNS_ADDED = ("email", "email_key", "active", "time_zone", "locale", "manager_id", "password_hash",
                      "password_changed_at", "updated_at")


def user_table_is_current(conn: sa.Connection) -> bool:
    """True when slate_user has every column of this version (a database made by an older
    one does not, until `upgrade` ran)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(users.name)}
    return set(USER_COLUMNS_ADDED) <= have


#: Columns added to tables of earlier versions, by table, in the order an upgrade adds them.
COLUMNS_ADDED: dict[str, tuple[str, ...]] = {users.name: USER_COLUMNS_ADDED, history.name: ("token_id",)}


def upgrade(conn: sa.Connection) -> list[str]:
    """Bring the system tables a database already has up to this version's shape; returns the
    statements it ran (none when the database is current). Run it after `create_all`, in the
    same transaction: it only adds (columns with defaults or NULL, an index), so rows and the
    tables' other users are untouched, and running it again does nothing."""
    statements = []
    for name, added in COLUMNS_ADDED.items():
        statements += _add_columns(conn, system_metadata.tables[name], added)
    create_index = sa.schema.CreateIndex(users_email_index, if_not_exists=True)
    conn.execute(create_index)
    if statements:
        statements.append(str(create_index.compile(dialect=conn.dialect)))
    return statements


def _add_columns(conn: sa.Connection, table_: sa.Table, added: tuple[str, ...]) -> list[str]:
    inspector = sa.inspect(conn)
    have = {c["name"] for c in inspector.get_columns(table_.name)}
    preparer = conn.dialect.identifier_preparer
    table = preparer.format_table(table_)
    statements = []
    for name in added:
        if name in have:
            continue
        column = table_.c[name]
        ddl = str(sa.schema.CreateColumn(column).compile(dialect=conn.dialect))
        if column.foreign_keys:
            (fk,) = column.foreign_keys
            # Inline in the column (both databases take it; SQLite cannot add a constraint
            # to a table afterwards), named as create_all names it.
            ddl += (f" CONSTRAINT {preparer.quote(f'fk_{table_.name}_{name}')} REFERENCES "
                    f"{table} ({preparer.quote(fk.column.name)}) ON DELETE {fk.ondelete}")
        statements.append(f"ALTER TABLE {table} ADD COLUMN {ddl}")
    for statement in statements:
        conn.execute(sa.text(statement))
    return statements
