"""Whole numbers people and browsers write in URLs, form fields and headers: one parser.

It sits at the top of the package so that both layers can use it: the platform (ids,
versions and page sizes in requests) and the metamodel's field types (a reference typed as
text).

Such a text is a record id, a record version, a page size or a byte count. It is accepted
only as plain ASCII digits (no sign, no spaces inside, no "²" or other Unicode digits, which
`str.isdigit` accepts and `int` may not) and only up to the limit of its use, so that a
value the database cannot hold is refused here with the caller's own message, not by the
database with a 500.
"""

from __future__ import annotations

#: Record ids: the 64-bit id columns (and `owner`, a reference to a user).
RECORD_ID_MAX = 2**63 - 1
#: Record versions: the 32-bit `version` column.
VERSION_MAX = 2**31 - 1
#: Byte counts (Content-Length): anything larger is certainly over any body limit.
BYTES_MAX = 2**63 - 1
#: Counts asked for in a URL (a page size): the list refuses a count above its own maximum
#: with its own message; this limit only keeps the number an ordinary integer.
COUNT_MAX = 2**31 - 1


def parse_digits(text: str | bytes | None, maximum: int) -> int | None:
    """The number `text` writes in ASCII digits (surrounding spaces allowed), if it is at
    most `maximum`; otherwise None. Zero is a number here: callers that need an id of 1 or
    more say so in their own message."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if text is None:
        return None
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit() or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None
