"""What reading records gives back: records, pages of them, their history and stage visits."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any


@dataclass(frozen=True)
class Record:
    entity: str
    id: int
    version: int
    title: str
    values: dict[str, Any]
    system: dict[str, Any]
    #: The titles of the records its references point to, by field.
    titles: dict[str, str]
    #: The entity label of the record each polymorphic reference points to, by field.
    labels: dict[str, str] = attribute(default_factory=dict)


@dataclass(frozen=True)
class Page:
    records: list[Record]
    #: Give it as `after` for the next page; None on the last page.
    next_cursor: str | None
    #: Matching records up to listing.COUNT_CAP; None when counting them ran past the
    #: count budget (limits.COUNT_BUDGET_MS): not known, and not zero.
    count: int | None
    #: The count stopped at listing.COUNT_CAP: there are more.
    count_capped: bool
    #: When `count` is None, the database planner's guess at the matching records
    #: (PostgreSQL), else None.
    count_estimate: int | None = None


@dataclass(frozen=True)
class TokenUsed:
    """The personal API token a change came through (slate_api_token): its id and name."""

    id: int
    name: str


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    action: str
    changed_at: dt.datetime
    changed_by: int | None
    changes: dict[str, list[Any]]
    #: The API token the change was made with; None for a session, the system or the CLI.
    token: TokenUsed | None = None


@dataclass(frozen=True)
class StageVisit:
    field: str
    stage: str
    entered_at: dt.datetime
    left_at: dt.datetime | None
    seconds: int | None
