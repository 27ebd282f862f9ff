"""The bench's CRM data: a small `company` entity and a large `deal` entity referring to it.

Rows are generated inside the database (a recursive CTE on SQLite, generate_series on
PostgreSQL) from deterministic mixes of the row number, so both databases hold the same
data and loading a million rows takes seconds: the scenarios measure queries, not loading.
The records service's own write path is measured honestly in `bulk_create`.

The data looks like a CRM's, because uniform synthetic data hides the costs users meet
(issue 11: a data set without blanks never showed the 97 ms walk over blank close dates):

- blanks: early-stage deals (status `open`, 10%) have no close date; 5% have no amount;
  about one note in seven is empty;
- skew: two statuses hold 65% of the deals, and ten companies half of them;
- long texts: notes of two to five sentences (about 150–600 characters);
- real words: names are "<adjective> <product> <kind>" ("Expanded Analytics Renewal"),
  so a text search for a word means something and matches a few percent of the rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage import statistics

from .common import install_pack

#: Statuses and the share of deals (in %) each holds; `open` deals have no close date.
STATUS_SHARES = (("won", 35), ("lost", 30), ("proposal", 15), ("qualified", 10), ("open", 10))
STATUSES = tuple(s for s, _ in STATUS_SHARES)
BLANK_CLOSE = "open"
REGIONS = ("emea", "amer", "apac", "latam")
EPOCH = dt.date(2020, 1, 1)
DAYS = 2000
AMOUNTS = 100_000
#: Companies 1..BIG_COMPANIES hold half of the deals between them.
BIG_COMPANIES = 10

ADJECTIVES = ("expanded", "annual", "strategic", "pilot", "global", "regional", "enterprise", "premium",
              "standard", "extended", "managed", "hosted", "renewed", "upgraded", "initial", "additional",
              "partner", "direct", "priority", "flexible", "unified", "secure", "express", "custom")
PRODUCTS = ("analytics", "platform", "licences", "support", "storage", "backup", "firewall", "telephony",
            "payroll", "invoicing", "logistics", "warehouse", "training", "consulting", "hardware",
            "printers", "laptops", "servers", "network", "cloud", "mobile", "marketing", "recruiting",
            "insurance", "catering", "cleaning", "security", "translation", "design", "hosting",
            "monitoring", "compliance")
KINDS = ("renewal", "rollout", "upgrade", "migration", "contract", "expansion", "order", "subscription",
         "tender", "trial", "bundle", "project")
COMPANY_WORDS = ("northwind", "contoso", "fabrikam", "initech", "globex", "umbrella", "stark", "wayne",
                 "acme", "hooli", "vandelay", "tyrell", "cyberdyne", "soylent", "wonka", "oscorp")
COMPANY_KINDS = ("logistics", "systems", "foods", "industries", "bank", "insurance", "clinic", "energy")
SENTENCES = (
    "Called the buyer to walk through the proposal and the revised pricing for the second year.",
    "They asked for a discount on the support tier; legal wants the liability clause reworded.",
    "Procurement needs three quotes before the end of the quarter, so timing is tight.",
    "The champion left the company last month and the new contact is still getting up to speed.",
    "Demo went well, the analytics team liked the dashboards but asked about data residency.",
    "Security questionnaire returned with two open items on encryption at rest and backups.",
    "Budget approved by finance; waiting on the signature from the managing director.",
    "Competitor offered a lower price with fewer seats; we keep the value story on onboarding.",
    "Sent the contract draft with the updated renewal terms and the migration schedule.",
    "Workshop planned on site with the warehouse managers to map the current logistics process.",
    "Customer reported a delay with the previous order; account manager is following up.",
    "Pilot in two regions before the rollout; success criteria agreed in the kickoff call.",
    "Invoice disputed because the purchase order number was missing from the first version.",
    "Reference call with an existing customer arranged for Thursday afternoon.",
    "They want monthly billing instead of annual prepayment and a shorter notice period.",
    "Technical review passed; integration with their payroll system is the remaining risk.",
)


@dataclass(frozen=True)
class Mix:
    """A deterministic pseudo-random number of the row number x, the same in Python and
    in SQL (64-bit integer arithmetic on both databases)."""

    multiplier: int
    modulus: int

    def of(self, x: int) -> int:
        return x * self.multiplier % self.modulus

    def sql(self, x: str = "x") -> str:
        return f"({x} * {self.multiplier} % {self.modulus})"


M_STATUS = Mix(2654435761, 1000003)
M_AMOUNT = Mix(48271, 2147483647)
M_DATE = Mix(69621, 100003)
M_WORD = Mix(40503, 1000033)
M_NOTE = Mix(40692, 999983)


def _options(keys: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"key": k, "label": k.title()} for k in keys]


ENTITIES: dict[str, dict[str, Any]] = {
    "company": {"title_field": "name", "fields": {
        "name": {"type": "text", "required": True, "max_length": 200},
        "region": {"type": "choice", "options": _options(REGIONS), "indexed": True},
        "employees": {"type": "integer", "min": 0, "indexed": True},
        "founded": {"type": "date", "indexed": True},
    }},
    # A pipeline view lists deals of a status by close date: a CRM declares the index it needs.
    "deal": {"title_field": "name", "indexes": [["status", "close_date"]], "fields": {
        "name": {"type": "text", "required": True, "max_length": 200, "indexed": True},
        "company": {"type": "reference", "target": "company", "on_delete": "set_null"},
        "status": {"type": "choice", "options": _options(STATUSES), "indexed": True},
        "amount": {"type": "integer", "min": 0, "indexed": True},
        "close_date": {"type": "date", "indexed": True},
        "note": {"type": "text", "max_length": 2000},
    }},
}


# The same values in Python (new records in crud.py, hand-written checks) as in `fill`.
def status_of(x: int) -> str:
    bucket = M_STATUS.of(x) % 100
    for status, share in STATUS_SHARES:
        if bucket < share:
            return status
        bucket -= share
    raise AssertionError("the shares add up to 100")


def amount_of(x: int) -> int:
    """The amount of deal x, or what it would be when it is blank (`values_of` leaves it out)."""
    return M_AMOUNT.of(x) % 1000 * (M_NOTE.of(x) % 100)  # many small deals, a few large ones


def close_date_of(x: int) -> dt.date:
    """The close date of deal x, or what it would be when it is blank (see `values_of`)."""
    return EPOCH + dt.timedelta(days=M_DATE.of(x) % DAYS)


def values_of(x: int, companies: int) -> dict[str, Any]:
    """Deal x as `fill` makes it, blanks included (the note aside: see `_note_sql`)."""
    return {"name": name_of(x), "company": company_of(x, companies), "status": status_of(x),
            "amount": None if M_AMOUNT.of(x) % 20 == 0 else amount_of(x),
            "close_date": None if status_of(x) == BLANK_CLOSE else close_date_of(x)}


def name_of(x: int) -> str:
    w = M_WORD.of(x)
    return " ".join((ADJECTIVES[w % len(ADJECTIVES)].title(), PRODUCTS[w // 7 % len(PRODUCTS)].title(),
                     KINDS[w // 11 % len(KINDS)].title()))


def company_of(x: int, companies: int) -> int:
    if M_STATUS.of(x) // 100 % 2 == 0:
        return M_WORD.of(x) % min(BIG_COMPANIES, companies) + 1
    return x % companies + 1


def _pick(words: tuple[str, ...], index: str, title: bool = False) -> str:
    """words[index] in SQL, O(1) per row: a slice of one padded string (no CASE over every word).
    The position is cast to INTEGER, which PostgreSQL's substr wants (the mixes are BIGINT)."""
    width = max(len(w) for w in words)
    padded = "".join(w.ljust(width) for w in words).replace("'", "''")
    start = f"CAST(({index}) % {len(words)} * {width} + 1 AS INTEGER)"
    picked = f"rtrim(substr('{padded}', {start}, {width}))"
    return f"upper(substr({picked}, 1, 1)) || substr({picked}, 2)" if title else picked


def _status_sql() -> str:
    bucket = f"{M_STATUS.sql()} % 100"
    whens, upto = [], 0
    for status, share in STATUS_SHARES:
        upto += share
        whens.append(f"WHEN {bucket} < {upto} THEN '{status}'")
    return f"CASE {' '.join(whens)} END"


def _note_sql() -> str:
    """Two to five sentences (blank for about one deal in seven)."""
    n = M_NOTE.sql()
    parts = [_pick(SENTENCES, f"{n} / {7 ** i}") for i in range(5)]
    text = " || ' ' || ".join(parts[:2])
    extra = " ".join(f"WHEN {n} % 4 >= {k} THEN ' ' || {' || '.join(parts[2:2 + k])}" for k in (3, 2, 1))
    return f"CASE WHEN {n} % 7 = 0 THEN NULL ELSE {text} || CASE {extra} ELSE '' END END"


def install(engine: sa.Engine, registry: FieldTypeRegistry) -> None:
    install_pack(engine, registry, "bench-crm", "1.0.0", ENTITIES)


def fill(engine: sa.Engine, rows: int, small_rows: int) -> None:
    """`small_rows` companies and `rows` deals, then fresh planner statistics."""
    sqlite = engine.dialect.name == "sqlite"
    now = "'2026-01-01 00:00:00.000000'" if sqlite else "now()"

    def date(days: str) -> str:
        if sqlite:
            return f"date('{EPOCH.isoformat()}', '+' || ({days}) || ' days')"
        return f"(DATE '{EPOCH.isoformat()}' + ({days})::int)"

    def series(n: int) -> str:
        if sqlite:
            return f"(WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) " \
                   "SELECT x FROM s) AS n"
        return f"generate_series(1::bigint, {n}::bigint) AS n(x)"

    w = M_WORD.sql()
    name = " || ' ' || ".join((_pick(ADJECTIVES, w, True), _pick(PRODUCTS, f"{w} / 7", True),
                               _pick(KINDS, f"{w} / 11", True)))
    company = (f"CASE WHEN {M_STATUS.sql()} / 100 % 2 = 0 THEN {w} % {min(BIG_COMPANIES, small_rows)} + 1 "
               f"ELSE x % {small_rows} + 1 END")
    amount = (f"CASE WHEN {M_AMOUNT.sql()} % 20 = 0 THEN NULL "
              f"ELSE {M_AMOUNT.sql()} % 1000 * ({M_NOTE.sql()} % 100) END")
    close = (f"CASE WHEN {M_STATUS.sql()} % 100 >= {100 - dict(STATUS_SHARES)[BLANK_CLOSE]} THEN NULL "
             f"ELSE {date(f'{M_DATE.sql()} % {DAYS}')} END")
    company_name = (f"{_pick(COMPANY_WORDS, 'x', True)} || ' ' || "
                    f"{_pick(COMPANY_KINDS, f'x / {len(COMPANY_WORDS)}', True)} || ' ' || x")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO x_company (created_at, updated_at, version, name, region, employees, founded) "
            f"SELECT {now}, {now}, 1, {company_name}, "
            f"{_case('x % 4', REGIONS)}, (x * 7919) % 5000, "
            f"{date('(x * 131) % 10000')} FROM {series(small_rows)}"))
        conn.execute(sa.text(
            "INSERT INTO x_deal (created_at, updated_at, version, name, company, status, amount, "
            f"close_date, note) SELECT {now}, {now}, 1, {name}, {company}, {_status_sql()}, {amount}, "
            f"{close}, {_note_sql()} FROM {series(rows)}"))
    analyze(engine)


def _case(expression: str, keys: tuple[str, ...]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{k}'" for i, k in enumerate(keys))
    return f"CASE {expression} {whens} END"


def analyze(engine: sa.Engine) -> None:
    """Planner statistics, as the platform gathers them (`slatecrm analyze`, storage/statistics.py:
    on SQLite sampled with PRAGMA analysis_limit), and on PostgreSQL as autovacuum would
    (VACUUM too, for index-only scans)."""
    if engine.dialect.name == "sqlite":
        statistics.analyze(engine)
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
