"""Reading the audit log: the filters `slatecrm audit`, `GET /api/v1/admin/audit` and the page
`/admin/audit` share, newest first, in keyset pages.

One parser (`parse`) reads the filters from text, as a command line or a URL gives them, and
refuses every bad one at once, by parameter, so the three readers say the same thing about
the same mistake. Record changes are not copied into slate_audit (the record history holds
them, with who and which token); `record_changes` reads them in the same shape, so the
command line can show both in one timeline (`--records`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.digits import RECORD_ID_MAX, parse_digits

from .. import jsontext
from ..storage import system
from .errors import IdentityError

log, users, tokens, history = system.audit, system.users, system.api_tokens, system.history

#: Events a page shows unless told; the most it may show.
DEFAULT_LIMIT = 100
LIMIT_MAX = 1000
#: The filters, as query parameters and (with `--`) as options.
PARAMETERS = ("user", "action", "object", "since", "until", "limit", "after")
#: Longest filter text taken (an action, an object, an e-mail): nothing real is longer.
TEXT_MAX = 200
#: The action of a record change as the merged timeline names it: "record.update".
RECORD_ACTION = "record."


class InvalidFilter(IdentityError):
    """Filters that cannot be read; `errors` by parameter, every one of them."""

    def __init__(self, errors: Mapping[str, Sequence[str]]):
        self.errors = {k: list(v) for k, v in errors.items()}
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class AuditQuery:
    #: The user as given: an id, or an e-mail (any case).
    user: str | None = None
    #: A prefix: "login" finds login and login_failed, "pack." every pack event.
    action: str | None = None
    object_kind: str | None = None
    object_id: str | None = None
    #: From this moment on (inclusive), up to `until` (exclusive).
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = DEFAULT_LIMIT
    #: Keyset paging: only events older than the one with this id (the `next_cursor`).
    after: int | None = None


@dataclass(frozen=True)
class Event:
    """One line of the audit log, or one record change in the same shape (`id` None)."""

    id: int | None
    at: dt.datetime
    action: str
    user_id: int | None
    user_name: str | None
    token_id: int | None
    token_name: str | None
    address: str | None
    object_kind: str | None
    object_id: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": jsontext.moment(self.at), "action": self.action,
                "user": None if self.user_id is None and self.user_name is None
                else {"id": self.user_id, "name": self.user_name},
                "token": None if self.token_id is None else {"id": self.token_id, "name": self.token_name},
                "address": self.address,
                "object": None if self.object_kind is None
                else {"kind": self.object_kind, "id": self.object_id},
                "detail": self.detail}


@dataclass(frozen=True)
class EventPage:
    events: list[Event]
    #: Give it as `after` for the next (older) page; None on the last page.
    next_cursor: str | None


# --- reading the filters --------------------------------------------------------------------
def moment(text: str, *, end: bool) -> dt.datetime:
    """A date (2026-12-06) or an ISO time (2026-12-06T10:30, with or without a zone; none is
    UTC). A date as the end of a span means the end of that day, so `--until 2026-12-06`
    includes the whole day; a time as the end includes that moment."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), dt.UTC)
            return start + dt.timedelta(days=1) if end else start
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a date (2026-12-06) or an ISO time "
                         "(2026-12-06T10:30:00Z)") from None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return when + dt.timedelta(microseconds=1) if end else when


def parse(params: Iterable[tuple[str, str]], *, limit_max: int = LIMIT_MAX) -> AuditQuery:
    """The filters from (name, value) pairs: an unknown name, a repeated one or a bad value
    is refused, all of them at once."""
    errors: dict[str, list[str]] = {}
    given: dict[str, str] = {}
    for name, value in params:
        if name not in PARAMETERS:
            errors.setdefault(name, []).append(f"is not a filter of the audit log; filters: "
                                               f"{', '.join(PARAMETERS)}")
        elif name in given:
            errors.setdefault(name, []).append("is given more than once")
        elif len(value) > TEXT_MAX or "\x00" in value:
            errors.setdefault(name, []).append(f"is longer than {TEXT_MAX} characters or holds a NUL")
        else:
            given[name] = value.strip()
    values: dict[str, Any] = {}
    for name in ("user", "action"):
        if given.get(name):
            values[name] = given[name]
    if given.get("object"):
        kind, _, object_id = given["object"].partition("/")
        if not kind:
            errors.setdefault("object", []).append(
                "write KIND or KIND/ID (record/<entity>/<id>, pack/<name>)")
        values["object_kind"], values["object_id"] = kind, object_id or None
    for name in ("since", "until"):
        if given.get(name):
            try:
                values[name] = moment(given[name], end=name == "until")
            except ValueError as error:
                errors.setdefault(name, []).append(str(error))
    if "limit" in given:
        limit = parse_digits(given["limit"], limit_max)
        if not limit:
            errors.setdefault("limit", []).append(
                f"{given['limit'][:40]!r} is not a number from 1 to {limit_max}")
        values["limit"] = limit
    if "after" in given:
        after = parse_digits(given["after"], RECORD_ID_MAX)
        if not after:
            errors.setdefault("after", []).append(
                "is not a cursor this log gave (the `next_cursor` of a page)")
        values["after"] = after
    if errors:
        raise InvalidFilter(errors)
    return AuditQuery(**values)


def user_id(conn: sa.Connection, user: str) -> int:
    """The id of the user given by id or by e-mail (refused when there is no such user)."""
    number = parse_digits(user, RECORD_ID_MAX)
    if number is not None:
        return number
    found = conn.execute(sa.select(users.c.id).where(users.c.email_key == user.lower())).scalar()
    if found is None:
        raise InvalidFilter({"user": [f"there is no user with the id or e-mail {user[:80]!r}"]})
    return int(found)


# --- the events -----------------------------------------------------------------------------
def events(conn: sa.Connection, query: AuditQuery) -> EventPage:
    """A page of events matching `query`, newest first (by id: the order they were written)."""
    select = (sa.select(log, tokens.c.name.label("token_name"))
              .select_from(log.outerjoin(tokens, tokens.c.id == log.c.token_id)))
    if query.user is not None:
        select = select.where(log.c.user_id == user_id(conn, query.user))
    if query.action:
        select = select.where(log.c.action.startswith(query.action, autoescape=True))
    if query.object_kind:
        select = select.where(log.c.object_kind == query.object_kind)
    if query.object_id:
        select = select.where(log.c.object_id == query.object_id)
    if query.since:
        select = select.where(log.c.at >= query.since)
    if query.until:
        select = select.where(log.c.at < query.until)
    if query.after:
        select = select.where(log.c.id < query.after)
    rows = conn.execute(select.order_by(log.c.id.desc()).limit(query.limit + 1)).all()
    found = [Event(r.id, r.at, r.action, r.user_id, r.user_name, r.token_id, r.token_name, r.address,
                   r.object_kind, r.object_id, dict(r.detail or {})) for r in rows[:query.limit]]
    more = len(rows) > query.limit
    return EventPage(found, str(found[-1].id) if more and found else None)


def record_changes(conn: sa.Connection, query: AuditQuery) -> list[Event]:
    """The record history matching `query`, newest first, as events "record.create",
    "record.update", "record.delete" of object ("record", "<entity>/<id>"); the detail names
    the changed fields, not their values (the record's history shows those to who may see them)."""
    if query.object_kind not in (None, "record"):
        return []
    wanted = query.action
    if wanted and not (RECORD_ACTION.startswith(wanted) or wanted.startswith(RECORD_ACTION)):
        return []
    select = (sa.select(history, users.c.display_name, tokens.c.name.label("token_name"))
              .select_from(history.outerjoin(users, users.c.id == history.c.changed_by)
                           .outerjoin(tokens, tokens.c.id == history.c.token_id)))
    if query.action and len(query.action) > len(RECORD_ACTION):
        select = select.where(history.c.action.startswith(query.action[len(RECORD_ACTION):], autoescape=True))
    if query.user is not None:
        select = select.where(history.c.changed_by == user_id(conn, query.user))
    if query.object_id:
        entity, _, record = query.object_id.partition("/")
        select = select.where(history.c.entity == entity)
        if record:
            select = select.where(history.c.record_id == (parse_digits(record, RECORD_ID_MAX) or 0))
    if query.since:
        select = select.where(history.c.changed_at >= query.since)
    if query.until:
        select = select.where(history.c.changed_at < query.until)
    rows = conn.execute(select.order_by(history.c.changed_at.desc(), history.c.id.desc())
                        .limit(query.limit)).all()
    return [Event(None, r.changed_at, RECORD_ACTION + r.action, r.changed_by, r.display_name, r.token_id,
                  r.token_name, None, "record", f"{r.entity}/{r.record_id}",
                  {"version": r.version, "fields": sorted(r.changes or {})}) for r in rows]


def timeline(conn: sa.Connection, query: AuditQuery) -> list[Event]:
    """Events and record changes together, newest first, at most `query.limit` (no paging:
    the command line's `--records`)."""
    merged = [*events(conn, query).events, *record_changes(conn, query)]
    merged.sort(key=lambda e: e.at, reverse=True)
    return merged[:query.limit]
