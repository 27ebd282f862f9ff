"""Form logic in the designer's field form, over HTTP on SQLite and PostgreSQL: Visible if,
Required if, Read-only if and the option filter are inputs of their own, for a pack's field
too, where they become the organisation's override of it (only what changed: the pack keeps
the rest); the records service then enforces them on API writes; each input is checked as it
is typed with what the records service will evaluate (a caret under the fault); an edit of a
field keeps its logic; a new field's type, and a new entity's title field's, come from the
type registry."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import BUILTIN_TYPES, FieldTypeRegistry

from .pack_templates import PackTemplates
from .signed_in import Site, site
from .test_api_live_editing import confirmed
from .test_designer import applied, reviewed, text_of
from .test_form_logic import Deals, deals  # noqa: F401 (a fixture)

WEBSITE = "/admin/entities/account/fields/website"


@pytest.fixture
def web(engine: sa.Engine, db_url: str, pack_templates: PackTemplates,
        registry: FieldTypeRegistry) -> Iterator[Site]:
    yield from site(engine, db_url, pack_templates, registry)


@pytest.fixture
def admin(web: Site) -> TestClient:
    return web.client(web.user("root@example.com", "Rita Root", roles=("administrator",)))


def shown_form(page: str) -> dict[str, Any]:
    """The field form as a browser would post it back unchanged (its inputs and textareas)."""
    form: dict[str, Any] = {}
    body = re.search(r'<form method="post"[^>]*id="field-form".*?</form>', page, re.S)
    assert body, "no field form"
    for tag in re.finditer(r"<input ([^>]*)>", body.group(0)):
        attrs = dict(re.findall(r'(\w[\w.-]*)="([^"]*)"', tag.group(1)))
        if "name" not in attrs or attrs.get("name") == "csrf_token" or "disabled" in tag.group(1):
            continue
        if attrs.get("type") == "checkbox" and "checked" not in tag.group(1):
            continue
        form.setdefault(attrs["name"], []).append(html.unescape(attrs.get("value", "")))
    for area in re.finditer(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', body.group(0), re.S):
        form[area.group(1)] = [html.unescape(area.group(2))]
    for select in re.finditer(r'<select [^>]*name="([^"]+)"(?![^>]*disabled)[^>]*>(.*?)</select>',
                              body.group(0), re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', select.group(2))
        form[select.group(1)] = [chosen.group(1) if chosen else ""]
    return {k: v[0] if len(v) == 1 else v for k, v in form.items()}


def logic_of(page: str, key: str) -> str:
    found = re.search(rf'<textarea id="r-{key}" name="{key}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found, f"no {key} input"
    return html.unescape(found.group(1))


def overrides(http: TestClient, entity: str) -> dict[str, Any]:
    docs = http.get("/api/v1/admin/customisations").json()["data"]
    extension = next((d["document"] for d in docs if d["kind"] == "extension" and d["name"] == entity), {})
    found: dict[str, Any] = extension.get("field_overrides", {})
    return found


def check(http: TestClient, url: str, data: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(url, data=data, headers={"accept": "application/json"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_a_pack_field_takes_form_logic_as_the_organisations_override(admin: TestClient) -> None:
    page = admin.get(WEBSITE)
    assert page.status_code == 200
    assert logic_of(page.text, "visible_if") == "" and logic_of(page.text, "required_if") == ""
    assert 'id="f-website"' in admin.get("/e/account/new").text
    form = {**shown_form(page.text), "op": "save", "visible_if": "type = 'partner'",
            "required_if": "type = 'partner'"}
    plan, _ = reviewed(admin, WEBSITE, form)
    assert "account.website" in text_of(plan)
    assert overrides(admin, "account") == {}  # nothing applied yet
    applied(admin, WEBSITE, form)
    # Only the logic is the organisation's: the pack keeps the label, help and the rest.
    assert overrides(admin, "account") == {"website": {"visible_if": "type = 'partner'",
                                                       "required_if": "type = 'partner'"}}
    refused = admin.post("/api/v1/account", json={"name": "Acme", "type": "partner"})
    assert refused.status_code == 422 and "website" in refused.text
    assert "is required when type = 'partner'" in refused.text
    made = admin.post("/api/v1/account", json={"name": "Acme", "type": "partner", "website": "https://acme.example"})
    assert made.status_code == 201, made.text
    hidden = admin.post("/api/v1/account", json={"name": "Bolt", "type": "prospect", "website": "https://b.example"})
    assert hidden.status_code == 422 and "hidden by the form's logic" in hidden.text
    # The designer's form shows the logic; the record form hides the field while it does not hold.
    again = admin.get(WEBSITE).text
    assert logic_of(again, "visible_if") == "type = 'partner'"
    assert logic_of(again, "required_if") == "type = 'partner'"
    assert "visible_if" not in logic_of(again, "read_only_if")
    assert 'id="f-website"' not in admin.get("/e/account/new").text
    meta = admin.get("/api/v1/meta").json()
    account = next(e for e in meta["entities"] if e["name"] == "account")
    website = next(f for f in account["fields"] if f["name"] == "website")
    assert website["visible_if"] == "type = 'partner'"


def test_an_edit_of_a_field_keeps_its_logic(admin: TestClient) -> None:
    applied(admin, WEBSITE, {**shown_form(admin.get(WEBSITE).text), "op": "save",
                             "visible_if": "type = 'partner'", "required_if": "type = 'partner'"})
    # Relabelled from the form as shown: the rules come back with the form, nothing is lost.
    applied(admin, WEBSITE, {**shown_form(admin.get(WEBSITE).text), "op": "save", "label": "Web site"})
    assert overrides(admin, "account")["website"] == {"label": "Web site", "visible_if": "type = 'partner'",
                                                      "required_if": "type = 'partner'"}
    assert admin.post("/api/v1/account", json={"name": "Acme", "type": "partner"}).status_code == 422
    # The organisation's own field: its logic is in the inputs, not in "Other settings", and kept.
    vehicle = {"label": "Vehicle", "title_field": "plate",
               "fields": {"plate": {"type": "text", "required": True},
                          "kind": {"type": "choice", "options": [{"key": "car"}, {"key": "truck"}]},
                          "load": {"type": "integer", "visible_if": "kind = 'truck'"},
                          "trailer": {"type": "choice", "options": [{"key": "none"}, {"key": "heavy"}],
                                      "options_if": {"heavy": "kind = 'truck'"}}}}
    confirmed(admin, "PUT", "/api/v1/admin/entities/vehicle", vehicle)
    url = "/admin/entities/vehicle/fields/trailer"
    page = admin.get(url).text
    assert logic_of(page, "options_if") == "heavy: kind = 'truck'"
    more = re.search(r'<textarea id="f-more"[^>]*>(.*?)</textarea>', page, re.S)
    assert more is None or "options_if" not in more.group(1)
    applied(admin, url, {**shown_form(page), "op": "save", "label": "Trailer hitch"})
    load = "/admin/entities/vehicle/fields/load"
    applied(admin, load, {**shown_form(admin.get(load).text), "op": "save", "label": "Load (kg)"})
    meta = admin.get("/api/v1/meta").json()
    fields = {f["name"]: f for e in meta["entities"] if e["name"] == "vehicle" for f in e["fields"]}
    assert fields["trailer"]["label"] == "Trailer hitch"
    assert fields["trailer"]["options_if"] == {"heavy": "kind = 'truck'"}
    assert fields["load"]["label"] == "Load (kg)" and fields["load"]["visible_if"] == "kind = 'truck'"
    refused = admin.post("/api/v1/vehicle", json={"plate": "A", "kind": "car", "trailer": "heavy"})
    assert refused.status_code == 422 and "not offered" in refused.text


def test_a_pack_rule_is_replaced_not_removed(deals: Deals) -> None:  # noqa: F811 (the fixture)
    http, url = deals.http, "/admin/entities/deal/fields/loss_reason"
    http.follow_redirects = False  # Apply's answer is a redirect to read
    page = http.get(url).text
    assert logic_of(page, "visible_if") == "status = 'lost'"
    blanked = http.post(url, data={**shown_form(page), "op": "save", "visible_if": ""})
    assert blanked.status_code == 422
    assert "Visible if: the pack gives this rule (status = 'lost')" in text_of(blanked.text)
    assert 'id="apply"' not in blanked.text
    applied(http, url, {**shown_form(page), "op": "save", "visible_if": "status != 'open'"})
    assert overrides(http, "deal") == {"loss_reason": {"visible_if": "status != 'open'"}}
    made = deals.post("deal", name="Won deal", status="won", loss_reason="Price")
    assert made.status_code == 201, made.text
    # Blanking the organisation's replacement drops its override: the pack's rule is back.
    applied(http, url, {**shown_form(page), "op": "save", "visible_if": ""})
    assert overrides(http, "deal") == {}
    assert logic_of(http.get(url).text, "visible_if") == "status = 'lost'"
    same = http.post(url, data={**shown_form(http.get(url).text), "op": "save"})
    assert same.status_code == 422 and "nothing to change" in text_of(same.text)
    # A reference's option filter stays one rule over the record offered.
    contact = "/admin/entities/deal/fields/contact"
    assert logic_of(http.get(contact).text, "options_if") == "contact.company = company"


def test_logic_inputs_are_checked_as_typed_with_a_caret(admin: TestClient) -> None:
    url = "/admin/entities/account/check?field=website&rule="
    typo = admin.post(url + "visible_if", data={"type": "url", "visible_if": "tpye = 'partner'"})
    assert typo.status_code == 200
    caret = re.search(r'<pre class="caret">(.*?)</pre>', typo.text, re.S)
    assert caret, typo.text
    line, mark = html.unescape(caret.group(1)).split("\n")
    assert line == "tpye = 'partner'" and mark == "^"
    assert "did you mean 'type'" in text_of(typo.text)
    broken = check(admin, url + "required_if", {"type": "url", "required_if": "type = = 'partner'"})
    assert broken["ok"] is False and broken["line"] == 1 and broken["column"] == 8
    assert broken["caret"].split("\n")[1] == " " * 7 + "^"
    not_a_condition = check(admin, url + "read_only_if", {"type": "url", "read_only_if": "name"})
    assert not_a_condition["ok"] is False and "true or false" in not_a_condition["message"]
    changes = check(admin, url + "read_only_if", {"type": "url", "read_only_if": "changed(name)"})
    assert changes["ok"] is False
    good = admin.post(url + "visible_if", data={"type": "url", "visible_if": "type = 'partner'"})
    assert "valid" in good.text and "rule-error" not in good.text
    # A choice: a rule per option, each line checked; the caret is under the line's fault.
    industry = "/admin/entities/account/check?field=industry&rule=options_if"
    wrong_key = check(admin, industry, {"type": "choice", "options_if": "technology: employees > 10\n"
                                                                        "financ: employees > 1"})
    assert wrong_key["ok"] is False and wrong_key["line"] == 2
    assert "no option 'financ' (did you mean 'finance'?)" in wrong_key["message"]
    fault = check(admin, industry, {"type": "choice", "options_if": "retail: employes > 10"})
    assert fault["ok"] is False and "employes" in fault["message"]
    assert fault["caret"] == "retail: employes > 10\n" + " " * 8 + "^"
    assert check(admin, industry, {"type": "choice", "options_if": "retail: employees > 10"})["ok"] is True
    # A reference: one rule over the record offered, which must read the field.
    parent = "/admin/entities/account/check?field=parent_account&rule=options_if"
    assert check(admin, parent, {"type": "reference",
                                 "options_if": "parent_account.type = 'customer'"})["ok"] is True
    unread = check(admin, parent, {"type": "reference", "options_if": "type = 'customer'"})
    assert unread["ok"] is False and "does not read 'parent_account'" in unread["message"]
    # A new field (not in the metamodel yet) may be named by its own filter; the install's other
    # checks answer too: a required field's required_if, a computed field's logic.
    new = "/admin/entities/account/check?field=&rule="
    fresh = check(admin, new + "options_if", {"name": "holding", "type": "reference", "target": "account",
                                             "options_if": "holding.type = 'partner'"})
    assert fresh["ok"] is True, fresh
    required = check(admin, new + "required_if", {"name": "code", "type": "text", "required": "1",
                                                 "required_if": "type = 'partner'"})
    assert required["ok"] is False and "required always" in required["message"]
    computed = check(admin, new + "visible_if", {"name": "shout", "type": "text", "formula": "name",
                                                "visible_if": "type = 'partner'"})
    assert computed["ok"] is False and "the system gives this field its value" in computed["message"]
    # A form post with a broken rule is refused by the plan, naming the rule; nothing applied.
    refused = admin.post(WEBSITE, data={**shown_form(admin.get(WEBSITE).text), "op": "save",
                                        "visible_if": "tpye = 'partner'"})
    assert refused.status_code == 422 and "tpye" in text_of(refused.text)
    assert 'id="apply"' not in refused.text
    lines = admin.post("/admin/entities/account/fields/industry",
                       data={**shown_form(admin.get("/admin/entities/account/fields/industry").text),
                             "op": "save", "options_if": "retail employees > 10"})
    assert lines.status_code == 422 and "line 1: give an option's key and its rule" in text_of(lines.text)


def test_a_new_fields_type_comes_from_the_registry(admin: TestClient, registry: FieldTypeRegistry) -> None:
    default = registry.default_type
    assert registry[default].writable and registry[default].searchable
    page = admin.get("/admin/entities/account/new-field").text
    assert f'<option value="{default}" selected>' in page
    assert 'id="r-options_if"' not in page  # a single line of text has no options to filter
    # The type changed (htmx fetches the form again): the rules typed so far come back, and the
    # option filter the new type takes.
    changed = admin.get("/admin/entities/account/new-field",
                        params={"type": "choice", "name": "tier", "visible_if": "type = 'partner'"}).text
    assert logic_of(changed, "visible_if") == "type = 'partner'" and logic_of(changed, "options_if") == ""
    assert "one line per option" in changed
    applied(admin, "/admin/new-entity", {"name": "vessel", "label": "Vessel", "title_field": "hull"})
    meta = admin.get("/api/v1/meta").json()
    vessel = next(e for e in meta["entities"] if e["name"] == "vessel")
    assert {f["name"]: f["type"] for f in vessel["fields"]}["hull"] == default


def test_the_registry_says_its_default_type() -> None:
    assert FieldTypeRegistry(BUILTIN_TYPES).default_type == BUILTIN_TYPES[0].name
    later = [t for t in BUILTIN_TYPES if not t.searchable or not t.writable] + list(BUILTIN_TYPES)
    unique = list(dict.fromkeys(later, None))
    first_fit = next(t for t in unique if t.writable and not t.required_settings and t.searchable)
    assert FieldTypeRegistry(unique).default_type == first_fit.name
    assert first_fit is not unique[0]
    with pytest.raises(LookupError):
        _ = FieldTypeRegistry().default_type

