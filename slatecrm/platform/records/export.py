"""CSV export of a list's current filter: every matching record, no row cap.

Reads keyset pages of the app's page-size bound (`limits.page_size_max`) records through
the records service (so the same filters and, later, the same permission rules apply as on
screen) and yields CSV text a page at a time, so memory stays flat however many records match.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from .listing import ListQuery
from .service import Page, RecordsService

#: Told, once the export ends, how many records it wrote and whether it wrote them all
#: (False: the client went away, or a page failed): the audit log's "records.export".
Done = Callable[[int, bool], None]


def csv_rows(records: RecordsService, entity: str, query: ListQuery,
             columns: Sequence[str] | None = None, done: Done | None = None) -> Iterator[str]:
    """The first page is read here, before any output, so a bad query (or one that runs
    past the statement timeout) is refused with its errors instead of breaking off a
    response already under way. `columns`: the fields to write (checked by the caller),
    default every field. Exporting is an action of its own (a role may list records and
    not take them away): refused (403) unless the principal's roles allow it."""
    records.require(entity, "export")
    page_query = replace(query, after=None, limit=records.limits.page_size_max)
    first = records.page(entity, page_query)
    rows = _rows(records, entity, page_query, first, columns)
    return _counted(rows, done)


def _counted(chunks: Iterator[tuple[str, int]], done: Done | None) -> Iterator[str]:
    """The chunks' text; `done` is told the records written when the export ends, however."""
    written, complete = 0, False
    try:
        for chunk, count in chunks:
            written += count
            yield chunk
        complete = True
    finally:
        if done is not None:
            done(written, complete)


def _rows(records: RecordsService, entity: str, page_query: ListQuery, page: Page,
          columns: Sequence[str] | None) -> Iterator[tuple[str, int]]:
    ce = records.entity(entity)
    fields = [ce.fields[name] for name in columns] if columns else list(ce.fields.values())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", *[f.field.label for f in fields]])
    while True:
        for record in page.records:
            cells: list[str] = [str(record.id)]
            for f in fields:
                value = record.values.get(f.name)
                if (f.type.links_records and f.field.target) or f.type.links_users:  # a title, a name
                    cells.append(record.titles.get(f.name, "") if value is not None else "")
                else:
                    cells.append(f.type.display(value, f.field))
            writer.writerow([_inert(c) for c in cells])
        yield buffer.getvalue(), len(page.records)
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
