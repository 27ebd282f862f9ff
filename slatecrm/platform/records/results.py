"""What reading records gives back: records, pages of them, their history and stage visits."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Page:
    records: list[Record]
    #: Give it as `after` for the next page; None on the last page.
    next_cursor: str | None
    count: int
    #: The count stopped at listing.COUNT_CAP: there are more.
    count_capped: bool


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    action: str
    changed_at: dt.datetime
    changed_by: int | None
    changes: dict[str, list[Any]]


@dataclass(frozen=True)
class StageVisit:
    field: str
    stage: str
    entered_at: dt.datetime
    left_at: dt.datetime | None
    seconds: int | None
