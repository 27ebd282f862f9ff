"""CSV export of a list's current filter: every matching record, no row cap.

Reads keyset pages of `listing.MAX_LIMIT` records through the records service (so the
same filters and, later, the same permission rules apply as on screen) and yields CSV
text a page at a time, so memory stays flat however many records match.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace

from . import listing
from .listing import ListQuery
from .service import Page, RecordsService


def csv_rows(records: RecordsService, entity: str, query: ListQuery) -> Iterator[str]:
    """The first page is read here, before any output, so a bad query is refused with its
    errors instead of breaking off a response already under way."""
    page_query = replace(query, after=None, limit=listing.MAX_LIMIT)
    first = records.page(entity, page_query)
    return _rows(records, entity, page_query, first)


def _rows(records: RecordsService, entity: str, page_query: ListQuery, page: Page) -> Iterator[str]:
    ce = records.entity(entity)
    fields = list(ce.fields.values())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", *[f.field.label for f in fields]])
    while True:
        for record in page.records:
            cells: list[str] = [str(record.id)]
            for f in fields:
                value = record.values.get(f.name)
                if f.type.links_records:
                    cells.append(record.titles.get(f.name, "") if value is not None else "")
                else:
                    cells.append(f.type.display(value, f.field))
            writer.writerow([_inert(c) for c in cells])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if page.next_cursor is None:
            return
        page = records.page(entity, replace(page_query, after=page.next_cursor))


def _inert(cell: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas (CSV injection)."""
    if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(cell):
        return "'" + cell
    return cell


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
