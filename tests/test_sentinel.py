"""The sentinel test (issue 12): hidden fields hold a unique string, and no answer to the user
they are hidden from ever holds it, on SQLite and PostgreSQL.

`deal.secret` (the field right after the title) and `client.codename` are hidden for the
rep (tests/data/access-pack). The string is in the rep's own deal (a record they see), in
deals they do not see, in every deal the walk makes, in the client their deal references,
and in history (the rep's deal's secret was changed from one sentinel value to another).
Every route of the access matrix's table is called as the rep (every method, GET with its
HEAD and its `.json` twin), then the pages the table does not vary: search, lists filtered,
sorted and searched, CSV export, board, history, OpenAPI, /api/v1/meta, reference pickers.
A filter, sort or search naming the hidden field answers as one naming an unknown field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from httpx import Response

from .access_world import World, build, database_urls
from .test_access_matrix import TABLE, fill

#: The string only hidden fields hold (a prefix shared by every sentinel value below).
SENTINEL = "SENTINEL-7f3a9e1b"
FIRST, LATER = f"{SENTINEL}-first", f"{SENTINEL}-later"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    hidden = {"secret": FIRST}
    extra = {"deal:rep": hidden, "deal:manager": hidden, "deal:other": hidden, "fresh": {"secret": LATER},
             **{f"client:{owner}": {"codename": f"{SENTINEL}-{owner}"} for owner in ("rep", "other")}}
    for url in database_urls(request, tmp_path_factory):
        for made in build(url, extra):
            deal = made.records.get("deal", made.ids["deal:rep"])
            made.records.update("deal", deal.id, {"secret": LATER}, version=deal.version)  # into history
            yield made


def leaks(answer: Response) -> bool:
    headers = "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
    return SENTINEL.lower() in (answer.text + headers).lower()


def rep_get(world: World, url: str) -> Response:
    with world.client("rep") as http:
        return http.get(url)


def test_the_sentinel_is_there_to_be_found(world: World) -> None:
    """The administrator sees the hidden values (so the walk below could find them)."""
    with world.client("admin") as http:
        deal = http.get(f"/api/v1/deal/{world.ids['deal:rep']}").json()
        assert deal["secret"] == LATER
        history = http.get(f"/api/v1/deal/{world.ids['deal:rep']}/history").text
        assert FIRST in history and LATER in history
        assert SENTINEL in http.get(f"/e/client/{world.ids['client:rep']}").text
        assert SENTINEL in http.get("/e/deal/export.csv").text
    assert rep_get(world, f"/api/v1/deal/{world.ids['deal:rep']}").status_code == 200  # the rep sees the deal


ROUTES = list(TABLE)


@pytest.mark.parametrize(("route", "method"), ROUTES, ids=[f"{m} {r}" for r, m in ROUTES])
def test_no_route_shows_a_hidden_value(world: World, route: str, method: str) -> None:
    """Every route of the matrix's table as the rep: the body and the headers never hold the
    sentinel (GET also as HEAD and as its `.json` twin)."""
    spec = TABLE[(route, method)].params(world, "rep")
    url = fill(route, spec.get("path", {}))
    query = TABLE[(route, method)].query
    urls = [url + (f"?{query}" if query else "")]
    if method == "GET" and not url.startswith(("/api/", "/static")) and "." not in url.rsplit("/", 1)[-1]:
        urls.append(url.rstrip("/") + ".json" + (f"?{query}" if query else ""))
    for target in urls:
        for verb in (method, "HEAD") if method == "GET" else (method,):
            with world.client("rep") as http:
                answer = http.request(verb, target, json=spec.get("json"), data=spec.get("data"),
                                      files=spec.get("files"))
            assert answer.status_code < 500, f"{verb} {target}: {answer.status_code}"
            assert not leaks(answer), f"{verb} {target} as the rep shows a hidden value: {answer.text[:400]}"


def _pages(world: World) -> list[str]:
    deal, client = world.ids["deal:rep"], world.ids["client:rep"]
    return [
        "/", "/.json", "/search?q=MK", "/search.json?q=MK",
        "/e/deal", "/e/deal.json", "/e/deal?columns=name,secret,client",
        "/e/deal/export.csv", "/e/deal/export.csv?columns=name,secret",
        "/e/deal/board/flow", "/e/deal/board/flow.json",
        f"/e/deal/{deal}", f"/e/deal/{deal}.json", f"/e/deal/{deal}/edit", f"/e/deal/{deal}/edit.json",
        f"/e/client/{client}", f"/e/client/{client}.json", f"/e/client/{client}/edit", "/e/client",
        "/e/client/options", "/e/client/options.json",
        "/e/deal/options?q=MK", "/e/deal/new?secret=x", "/e/deal/new.json",
        "/api/v1/deal", "/api/v1/client", f"/api/v1/deal/{deal}",
        f"/api/v1/deal/{deal}/history", f"/api/v1/deal/{deal}/stages", f"/api/v1/client/{client}",
        f"/api/v1/client/{client}/related/deal.client", f"/api/v1/client/{client}/history",
        f"/api/v1/client/{client}/related/partner_deals", f"/api/v1/client/{client}/related/deal.about",
        "/api/v1/meta", "/api/v1/openapi.json", "/me", "/api/v1/me",
    ]


def test_no_page_shows_a_hidden_value(world: World) -> None:
    """The pages the table calls once, with the queries that reach the hidden values: search,
    columns, export, board, history, the referenced client, pickers, meta and OpenAPI."""
    for url in _pages(world):
        answer = rep_get(world, url)
        assert answer.status_code < 500, f"GET {url}: {answer.status_code}"
        assert not leaks(answer), f"GET {url} as the rep shows a hidden value: {answer.text[:400]}"

    meta = rep_get(world, "/api/v1/meta").json()
    described = {(e["name"], f["name"]) for e in meta["entities"] for f in e["fields"]}
    schemas = rep_get(world, "/api/v1/openapi.json").json()["components"]["schemas"]
    for entity in ("Deal", "Client"):
        for suffix in ("", "Input", "Patch"):
            described |= {(entity.lower(), name) for name in schemas[entity + suffix].get("properties", {})}
    assert ("deal", "name") in described
    assert not described & {("deal", "secret"), ("client", "codename")}, "hidden fields described to the rep"


def _normalised(answer: Response, asked: str, name: str) -> tuple[int, str]:
    """The status and the body with what was asked (echoed in a search box, a `next` link,
    an error message) replaced by placeholders."""
    text = answer.text.replace(asked, "VALUE").replace(name, "FIELD")
    return answer.status_code, re.sub(r"[\w-]{16,}\.[\w-]{16,}", "CSRF-TOKEN", text)


def _same_as_unknown(world: World, base: str, template: str) -> None:
    """`template` with the hidden field answers as with a field that does not exist, whatever
    value it asks about: with what was asked replaced by placeholders, the answers are equal,
    and hold no sentinel but the one asked about."""
    answers = []
    for name, value in (("secret", LATER), ("secret", "NOTHING-LIKE-IT-0000000"), ("nosuchfield", LATER)):
        url = base + template.format(field=name, value=value)
        status, text = _normalised(rep_get(world, url), value, name)
        assert SENTINEL not in text, f"{url} as the rep shows a hidden value: {text[:300]}"
        answers.append((status, text))
    hidden, other_value, unknown = answers
    assert hidden == other_value, f"{base}{template}: the answer depends on the hidden value"
    assert hidden == unknown, f"{base}{template}: the hidden field answers unlike an unknown one"


@pytest.mark.parametrize("base", ["/api/v1/deal", "/e/deal", "/e/deal.json", "/e/deal/export.csv",
                                  "/e/deal/board/flow", "/e/deal/board/flow.json"])
def test_filter_and_sort_on_a_hidden_field_confirm_nothing(world: World, base: str) -> None:
    _same_as_unknown(world, base, "?{field}={value}")
    _same_as_unknown(world, base, "?filter={field}%20%3D%20%27{value}%27")
    _same_as_unknown(world, base, "?sort={field}")


SEARCHED = ["/api/v1/deal", "/e/deal", "/e/deal.json", "/e/deal/export.csv", "/search", "/search.json",
            "/e/deal/board/flow.json",
            "/e/deal/options", "/e/client/options.json", "/api/v1/client"]


@pytest.mark.parametrize("base", SEARCHED)
def test_a_search_for_a_hidden_value_confirms_nothing(world: World, base: str) -> None:
    """Searching for the hidden value answers as searching for a value nobody holds."""
    answers = []
    for value in (LATER, FIRST, "NOTHING-LIKE-IT-0000000"):
        status, text = _normalised(rep_get(world, f"{base}?q={value}"), value, "q")
        assert SENTINEL not in text, f"{base}?q={value} as the rep shows a hidden value: {text[:300]}"
        answers.append((status, text))
    assert answers[0] == answers[1] == answers[2], f"{base}: a search confirms a hidden value"
