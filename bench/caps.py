"""Each bounded request parameter at its bound, on the large entity: the worst time and size.

docs/api.md "Limits" bounds every request; this scenario sends the costliest request each
bound still admits (and one just past it, which must be a 4xx) through the whole app, in
process, and reports the slowest of a few tries and the answer's size. No baseline: these
figures say what one request can cost at most, not how it compares.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.platform.records.limits import DEFAULT, SEARCH_WORDS_MAX
from slatecrm.platform.web.app import create_app
from slatecrm.plugins.manager import make_plugin_manager

from . import dataset
from .common import Sizes, authorization
from .report import Figure

TRIES = 3
FIELDS = ("name", "company", "status", "amount", "close_date", "note")


@dataclass(frozen=True)
class Case:
    label: str
    method: str
    path: str
    body: Any = None
    #: Statuses the request may answer (the bound admits it, or refuses what lies past it).
    expected: tuple[int, ...] = (200,)


def cases(sizes: Sizes) -> list[Case]:
    words = [*dataset.KINDS, *dataset.PRODUCTS, *dataset.ADJECTIVES]
    common = " ".join(dict.fromkeys(w[:3] for w in words))  # distinct prefixes
    common = " ".join(common.split()[:SEARCH_WORDS_MAX])
    q = (common + " " + "-" * DEFAULT.search_text_max)[: DEFAULT.search_text_max]
    # Every word must match: one prefix most names share is the broadest search.
    broad = (words[0][:3] + " " + "-" * DEFAULT.search_text_max)[: DEFAULT.search_text_max]
    sort = ",".join(["-close_date", "amount", "-name", "status", "company", "note", "-created_at",
                     "updated_at", "-amount", "id"][: DEFAULT.sort_keys_max])
    columns = ",".join(FIELDS)
    pick = random.Random(11)
    batch = [{"name": f"Capped deal {i}", "company": pick.randint(1, sizes.small_rows),
              "status": pick.choice(dataset.STATUSES), "amount": pick.randrange(dataset.AMOUNTS),
              "close_date": "2026-06-30", "note": "x" * 200} for i in range(DEFAULT.batch_max)]
    deep: Any = 1
    for _ in range(DEFAULT.json_depth_max - 1):
        deep = [deep]
    limit = DEFAULT.page_size_max
    return [
        Case(f"q of {DEFAULT.search_text_max:,} characters, {SEARCH_WORDS_MAX} common prefixes (API list)",
             "GET", f"/api/v1/deal?q={q}&limit={limit}"),
        Case(f"q of {DEFAULT.search_text_max:,} characters, one common prefix (API list)", "GET",
             f"/api/v1/deal?q={broad}&limit={limit}"),
        Case("q at its bound on the global search", "GET", f"/search?q={q}"),
        Case("q of one common prefix on the global search", "GET", f"/search?q={broad}"),
        Case(f"q of {DEFAULT.search_text_max + 1:,} characters (refused)", "GET",
             f"/api/v1/deal?q={'a' * (DEFAULT.search_text_max + 1)}", expected=(400,)),
        Case(f"{DEFAULT.sort_keys_max} sort keys, page of {limit}", "GET",
             f"/api/v1/deal?sort={sort}&limit={limit}"),
        Case(f"page of {limit}, filter + sort with blanks", "GET",
             f"/api/v1/deal?status=open&sort=-close_date&limit={limit}"),
        Case(f"HTML list, every column, page of {limit}", "GET", f"/e/deal?columns={columns}&limit={limit}"),
        Case(f"bulk create of {DEFAULT.batch_max:,} records", "POST", "/api/v1/deal", batch, (201, 200)),
        Case(f"bulk create of {DEFAULT.batch_max + 1:,} records (refused)", "POST", "/api/v1/deal",
             batch + batch[:1], (413,)),
        Case(f"JSON nested {DEFAULT.json_depth_max} deep (refused by the field)", "POST", "/api/v1/deal",
             {"name": "Deep", "note": deep}, (400, 422)),
        Case(f"a number of {DEFAULT.json_number_length_max} digits (refused by the field)", "POST",
             "/api/v1/deal", None, (400, 422)),
    ]


def run(engine: sa.Engine, sizes: Sizes) -> list[Figure]:
    db = engine.dialect.name
    figures = []
    app = create_app(engine, make_plugin_manager())
    with TestClient(app, raise_server_exceptions=False, base_url="http://localhost",
                    headers=authorization(engine)) as http:
        for case in cases(sizes):
            worst, size, status = 0.0, 0, 0
            for _ in range(TRIES if case.method == "GET" else 1):
                if case.body is None and case.method == "POST":
                    digits = "9" * DEFAULT.json_number_length_max
                    content = ('{"name": "Big", "amount": ' + digits + "}").encode()
                else:
                    content = json.dumps(case.body).encode() if case.body is not None else b""
                headers = {"content-type": "application/json"} if case.method == "POST" else {}
                started = time.perf_counter()
                answer = http.request(case.method, case.path, content=content or None, headers=headers)
                worst = max(worst, time.perf_counter() - started)
                size, status = max(size, len(answer.content)), answer.status_code
                if status not in case.expected:
                    raise RuntimeError(f"{case.label}: answered {status}, expected {case.expected}: "
                                       f"{answer.text[:300]}")
            figures.append(Figure(f"at a bound: {case.label}", db, sizes.rows, worst * 1000, 0, "ms",
                                  "— (reported; never a 5xx)", None,
                                  f"answered {status}, {size:,} bytes; slowest of "
                                  f"{TRIES if case.method == 'GET' else 1}"))
    return figures
