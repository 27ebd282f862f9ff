"""Money is never silently changed or mixed (docs/decisions.md, "Money: one currency at a time").

Through the public surfaces, on SQLite and PostgreSQL: the edit form keeps a record's
stored currency; board totals are per currency; list filters and sorts on an amount never
compare amounts in different currencies.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from starlette.testclient import TestClient


def make(client: TestClient, entity: str, **values: object) -> int:
    response = client.post(f"/api/v1/{entity}", json=values)
    assert response.status_code == 201, response.text
    created: int = response.json()["id"]
    return created


class FormReader(HTMLParser):
    """What a browser submits for the form `record-form` as served: every named input's
    value (checked boxes only), and each select's selected option (else its first)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self.select: str | None = None
        self.options: list[tuple[str, bool]] = []
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == "record-form"
        if not self.inside:
            return
        if tag == "input" and a.get("name") and a.get("type") != "search":
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select" and a.get("name"):
            self.select, self.options = a["name"], []
        elif tag == "option" and self.select is not None:
            self.options.append((a.get("value", "\0"), "selected" in a))
            self._pending = len(self.options) - 1
        elif tag == "textarea" and a.get("name"):
            self.textarea = a["name"]
            self.fields.append((a["name"], ""))

    def handle_data(self, data: str) -> None:
        if self.select is not None and self.options and self.options[-1][0] == "\0":
            self.options[-1] = (data.strip(), self.options[-1][1])
        if self.textarea is not None:
            name, text = self.fields[-1]
            self.fields[-1] = (name, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag == "textarea":
            self.textarea = None
        if tag == "select" and self.select is not None:
            chosen = [v for v, selected in self.options if selected] or [v for v, _ in self.options[:1]]
            self.fields += [(self.select, v) for v in chosen]
            self.select = None


def served_form(client: TestClient, url: str) -> list[tuple[str, str]]:
    page = client.get(url)
    assert page.status_code == 200, page.text
    reader = FormReader()
    reader.feed(page.text)
    return reader.fields


def replaced(fields: list[tuple[str, str]], name: str, value: str) -> dict[str, list[str]]:
    """The form data with one input changed, as a user typing in it would send it."""
    data: dict[str, list[str]] = {}
    for key, text in fields:
        data.setdefault(key, []).append(value if key == name else text)
    return data


def test_editing_another_field_keeps_a_stored_currency(client: TestClient) -> None:
    """Regression: the form offered USD/EUR/GBP only, so a JPY amount was re-saved as USD."""
    account = make(client, "account", name="Yen Co")
    deal = make(client, "opportunity", name="Tokyo", account=account,
                amount={"amount": "1500000", "currency": "JPY"})
    fields = served_form(client, f"/e/opportunity/{deal}/edit")
    assert ("amount__currency", "JPY") in fields  # offered and selected
    saved = client.post(f"/e/opportunity/{deal}/edit", data=replaced(fields, "name", "Tokyo 2"),
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    record = client.get(f"/api/v1/opportunity/{deal}").json()
    assert record["name"] == "Tokyo 2"
    assert record["amount"] == {"amount": "1500000.00", "currency": "JPY"}


def test_changing_the_amount_in_the_form_keeps_the_currency(client: TestClient) -> None:
    account = make(client, "account", name="Franc Co")
    deal = make(client, "opportunity", name="Geneva", account=account,
                amount={"amount": "10", "currency": "CHF"})
    fields = served_form(client, f"/e/opportunity/{deal}/edit")
    saved = client.post(f"/e/opportunity/{deal}/edit", data=replaced(fields, "amount", "25"),
                        follow_redirects=False)
    assert saved.status_code == 303, saved.text
    amount = client.get(f"/api/v1/opportunity/{deal}").json()["amount"]
    assert amount == {"amount": "25.00", "currency": "CHF"}


def _mixed(client: TestClient) -> dict[str, int]:
    account = make(client, "account", name="Mixed Co")
    amounts = {"usd_small": ("200", "USD"), "usd_big": ("1000", "USD"), "eur": ("300", "EUR"),
               "eur_big": ("700", "EUR"), "jpy": ("5000", "JPY")}
    return {key: make(client, "opportunity", name=key, account=account,
                      amount={"amount": amount, "currency": code})
            for key, (amount, code) in amounts.items()}


def _names(client: TestClient, **params: Any) -> list[str]:
    response = client.get("/api/v1/opportunity", params=params)
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["data"]]


def test_board_totals_are_per_currency(client: TestClient) -> None:
    """Regression: the board added USD, EUR and JPY and labelled the sum with USD."""
    _mixed(client)
    board = client.get("/e/opportunity/board/sales.json").json()
    first = board["columns"][0]
    assert first["count"] == 5
    assert first["total"] == "EUR 1,000.00 · JPY 5,000 · USD 1,200.00"
    assert first["totals"] == [{"amount": "1000.00", "currency": "EUR"},
                               {"amount": "5000.00", "currency": "JPY"},
                               {"amount": "1200.00", "currency": "USD"}]
    html = client.get("/e/opportunity/board/sales").text
    assert "EUR 1,000.00 · JPY 5,000 · USD 1,200.00" in html
    empty = board["columns"][1]
    assert (empty["count"], empty["total"], empty["totals"]) == (0, "USD 0.00", [])


def test_amount_filters_compare_within_one_currency(client: TestClient) -> None:
    _mixed(client)
    # With a currency: only amounts in that currency are compared.
    assert sorted(_names(client, amount__gte="500 EUR")) == ["eur_big"]
    assert sorted(_names(client, amount__lt="EUR 500")) == ["eur"]
    assert _names(client, amount="5000 JPY") == ["jpy"]
    # A bare number is in the field's default currency (USD), as when it is typed in a form.
    assert sorted(_names(client, amount__gte="250")) == ["usd_big"]
    assert sorted(_names(client, amount__gte="100")) == ["usd_big", "usd_small"]
    # "not equal" keeps every other currency and the blanks.
    assert sorted(_names(client, amount__ne="300 EUR")) == ["eur_big", "jpy", "usd_big", "usd_small"]
    bad = client.get("/api/v1/opportunity", params={"amount__gte": "12 XYZ"})
    assert bad.status_code == 400 and "XYZ" in bad.text


def test_amount_sorts_group_by_currency(client: TestClient) -> None:
    _mixed(client)
    assert _names(client, sort="amount") == ["eur", "eur_big", "jpy", "usd_small", "usd_big"]
    assert _names(client, sort="-amount") == ["eur_big", "eur", "jpy", "usd_big", "usd_small"]
    # Keyset pages follow the same order.
    first = client.get("/api/v1/opportunity", params={"sort": "-amount", "limit": 2}).json()
    rest = client.get("/api/v1/opportunity", params={"sort": "-amount", "limit": 5,
                                                     "after": first["next_cursor"]}).json()
    assert [r["name"] for r in first["data"] + rest["data"]] == \
        ["eur_big", "eur", "jpy", "usd_big", "usd_small"]


def test_a_narrowed_currency_list_still_offers_the_stored_currency() -> None:
    """An organisation that later allows only USD and EUR must not see a stored JPY amount
    silently become USD in the form."""
    from slatecrm.metamodel.model import Field

    from .defaults import field_types

    currency = field_types()["currency"]
    narrowed = Field(name="amount", type="currency", label="Amount", pack="x",
                     settings={"currencies": ["USD", "EUR"]})
    assert currency.codes_offered(narrowed, "JPY") == ["USD", "EUR", "JPY"]  # type: ignore[attr-defined]
    assert currency.codes_offered(narrowed, "EUR") == ["USD", "EUR"]  # type: ignore[attr-defined]
    anything = Field(name="amount", type="currency", label="Amount", pack="x", settings={"currency": "SEK"})
    offered = currency.codes_offered(anything, "NZD")  # type: ignore[attr-defined]
    assert offered[0] == "SEK" and "NZD" in offered and len(offered) == len(set(offered))
