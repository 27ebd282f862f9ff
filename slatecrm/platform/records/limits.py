"""The bounds a request must keep, in one place: what each limit is, and why.

Every limit here is refused with a 4xx naming the limit (docs/api.md, "Limits"), never
left to the database, the JSON parser or the interpreter to fail on with a 500. The web
layer imports them too (the JSON body's depth and numbers): this module is the one list,
and `Limits` carries the ones an operator may change (environment variables, read once
when the app is built) to the code that enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Characters of a text search (`q`): SQLite refuses a LIKE pattern over 50,000 bytes, and
#: a long pattern costs a scan of every searched column at every row on both databases.
SEARCH_TEXT_MAX = 1_000

#: Words of one search: each word is a prefix the full-text index looks up, all required
#: (more words narrow a search; a hundred one-letter prefixes would each read much of
#: the index).
SEARCH_WORDS_MAX = 16

#: Sort keys of one list (`sort=a,-b,…`): each key adds a term to the ORDER BY and to every
#: keyset condition of the next pages (SQLite refuses an ORDER BY of 2,000 terms).
SORT_KEYS_MAX = 10

#: Nesting of arrays and objects in a JSON body: a record is at most a few levels deep (a
#: money value, a list of choices) and an admin document (an entity with fields and their
#: options) fewer than ten; deeper bodies are refused before anything walks them. Python's
#: parser gives up near 1,000 levels, which is refused the same way whatever the limit.
JSON_DEPTH_MAX = 32

#: Characters of one number in a JSON body: no field holds more than 19 digits (64-bit
#: integers; decimals have at most 18), and Python refuses to read an integer of over
#: 4,300 digits.
JSON_NUMBER_LENGTH_MAX = 100

#: Records of one list page (`limit`) and of each page a CSV export reads.
PAGE_SIZE_MAX = 500

#: Names in a list page's `columns` (UI lists and CSV export): each is a column of every
#: row rendered, so 6,000 repeated names made 263 MB of HTML from one GET.
COLUMNS_MAX = 50

#: Records of one bulk request: a bulk create (POST a list) or a bulk edit or delete from a
#: list. 30,000 records in one request held a worker for 14 s.
BATCH_MAX = 1_000

#: Milliseconds one SQL statement may run before the database gives up on it (PostgreSQL
#: `statement_timeout`, SQLite a progress handler): no query holds a worker past it.
STATEMENT_TIMEOUT_MS = 30_000

#: Milliseconds a list's first page may spend counting its records (to the count cap):
#: past it the page answers without a count (`count: null`, docs/api.md "Counts"). A
#: count the indexes do not serve read tens of thousands of rows at 200,000 records
#: (60-90 ms on SQLite, ~25 ms on PostgreSQL) while the page itself took a few; 20 ms
#: keeps a list page within its 50 ms goal and still counts every list an index serves.
COUNT_BUDGET_MS = 20


@dataclass(frozen=True)
class Limits:
    """The limits one app enforces: the defaults above, or the operator's from the
    environment (`from_environment`, read once when the app is built, never per request)."""

    search_text_max: int = SEARCH_TEXT_MAX
    sort_keys_max: int = SORT_KEYS_MAX
    page_size_max: int = PAGE_SIZE_MAX
    columns_max: int = COLUMNS_MAX
    batch_max: int = BATCH_MAX
    statement_timeout_ms: int = STATEMENT_TIMEOUT_MS
    count_budget_ms: int = COUNT_BUDGET_MS
    json_depth_max: int = JSON_DEPTH_MAX
    json_number_length_max: int = JSON_NUMBER_LENGTH_MAX

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Limits:
        """Each limit from its variable (`VARIABLES`), a whole number of at least 1; a bad
        value stops the app from starting, naming the variable, rather than being ignored."""
        values: dict[str, int] = {}
        for name, variable in VARIABLES.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"{variable}={text!r}: expected a whole number of at least 1")
            values[name] = int(text)
        return cls(**values)

    def statement_timeout_text(self) -> str:
        """The timeout as people read it: '30 s', '0.001 s'."""
        return f"{self.statement_timeout_ms / 1000:g} s"


#: The environment variable of each configurable limit (docs/api.md, "Limits").
VARIABLES = {
    "search_text_max": "SLATECRM_MAX_SEARCH_TEXT",
    "sort_keys_max": "SLATECRM_MAX_SORT_KEYS",
    "page_size_max": "SLATECRM_MAX_PAGE_SIZE",
    "columns_max": "SLATECRM_MAX_COLUMNS",
    "batch_max": "SLATECRM_MAX_BATCH",
    "statement_timeout_ms": "SLATECRM_STATEMENT_TIMEOUT_MS",
    "count_budget_ms": "SLATECRM_COUNT_BUDGET_MS",
    "json_depth_max": "SLATECRM_MAX_JSON_DEPTH",
    "json_number_length_max": "SLATECRM_MAX_JSON_NUMBER_LENGTH",
}

DEFAULT = Limits()
