"""One parser for the whole numbers of URLs, forms and headers (slatecrm/digits.py),
and the places that read them refusing what the database could not hold with their own
message, never a 500 (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from slatecrm.digits import (
    BYTES_MAX,
    COUNT_MAX,
    RECORD_ID_MAX,
    VERSION_MAX,
    parse_digits,
)


@pytest.mark.parametrize(("text", "maximum", "expected"), [
    ("42", RECORD_ID_MAX, 42),
    (" 7 ", VERSION_MAX, 7),
    (b"1024", BYTES_MAX, 1024),
    ("0", VERSION_MAX, 0),
    ("0009", VERSION_MAX, 9),
    (str(RECORD_ID_MAX), RECORD_ID_MAX, RECORD_ID_MAX),
    (str(RECORD_ID_MAX + 1), RECORD_ID_MAX, None),  # 19 digits, one too many for the column
    (str(VERSION_MAX + 1), VERSION_MAX, None),
    ("9" * 400, COUNT_MAX, None),  # refused by length, before int() reads it
    ("", RECORD_ID_MAX, None),
    (None, RECORD_ID_MAX, None),
    ("-1", RECORD_ID_MAX, None),
    ("+1", RECORD_ID_MAX, None),
    ("1_000", RECORD_ID_MAX, None),
    ("1 0", RECORD_ID_MAX, None),
    ("²", RECORD_ID_MAX, None),  # isdigit() says yes, int() says no
    ("١٢", RECORD_ID_MAX, None),  # Arabic-Indic digits: int() would read 12
    ("1.0", RECORD_ID_MAX, None),
])
def test_only_ascii_digits_up_to_the_limit_of_the_use(text: str | bytes | None, maximum: int,
                                                     expected: int | None) -> None:
    assert parse_digits(text, maximum) == expected


def test_a_reference_typed_as_a_unicode_digit_is_a_field_error_not_a_500(client: TestClient) -> None:
    # The form's reference select used to run int() on whatever str.isdigit() accepted.
    refused = client.post("/e/contact/new", data={"first_name": "Ada", "last_name": "Lovelace",
                                                  "account": "²"})
    assert refused.status_code == 422, refused.text[:500]
    assert 'id="error-account"' in refused.text


@pytest.mark.parametrize("header", ["1e3", str(VERSION_MAX + 1), "-1"])
def test_an_if_match_the_version_column_cannot_hold_is_refused(client: TestClient, header: str) -> None:
    made = client.post("/api/v1/account", json={"name": "Acme"}).json()
    refused = client.patch(f"/api/v1/account/{made['id']}", json={"phone": "1"},
                           headers={"If-Match": f'"{header}"'})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"version": [
        f"If-Match {header!r} is not a record version (a whole number from 1 to {VERSION_MAX})"]}


@pytest.mark.parametrize("ids", [[str(RECORD_ID_MAX + 1)], ["²"]])
def test_bulk_ids_beyond_the_id_column_are_refused(client: TestClient, ids: list[str]) -> None:
    refused = client.post("/e/account/bulk", data={"ids": ids, "action": "delete"})
    assert refused.status_code == 422 and "is not a record id" in refused.text


def test_a_filter_on_an_id_beyond_the_column_is_a_400(client: TestClient) -> None:
    refused = client.get("/api/v1/contact", params={"id": str(RECORD_ID_MAX + 1)})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"id": [f"'{RECORD_ID_MAX + 1}' is not a record id"]}
    found = client.get("/api/v1/contact", params={"id": str(RECORD_ID_MAX)})
    assert found.status_code == 200 and found.json()["data"] == []
