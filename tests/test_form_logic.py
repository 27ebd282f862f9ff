"""Form logic per field (issue 15): `visible_if`, `required_if`, `read_only_if` and `options_if`
in packs, checked at install with file:line errors, stored with the revision, overridable by
another pack's `field_overrides`, and enforced by the records service on every write (the API
here, on SQLite and PostgreSQL): a hidden field is not writable, a field required by logic is
required for API writes too, a read-only one refuses a change, and an option or a reference
target outside the filter is refused, each with a 422 naming the field and the rule."""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import revisions

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack

#: A deal is lost with a reason (shown and required only then), closed deals are frozen, the
#: `expedite` option is offered only for large amounts, and the contact must be one of the
#: deal's company.
COMPANY = """\
    kind: entity
    name: company
    title_field: name
    fields:
      name: {type: text, required: true}
    """
PERSON = """\
    kind: entity
    name: person
    title_field: name
    fields:
      name: {type: text, required: true}
      company: {type: reference, target: company}
    """
DEAL = """\
    kind: entity
    name: deal
    title_field: name
    fields:
      name: {type: text, required: true}
      status:
        type: choice
        options: [{key: open}, {key: won}, {key: lost}]
        default: open
      loss_reason:
        type: text
        visible_if: "status = 'lost'"
        required_if: "status = 'lost'"
      amount:
        type: integer
        read_only_if: "status = 'won'"
      shipping:
        type: choice
        options: [{key: standard}, {key: expedite}]
        options_if:
          expedite: "amount >= 1000"
      company: {type: reference, target: company}
      contact:
        type: reference
        target: person
        options_if: "contact.company = company"
    """


def deal_pack(root: Path, deal: str = DEAL, extra: dict[str, str] | None = None) -> Path:
    files = {"entities/company.yaml": COMPANY, "entities/person.yaml": PERSON, "entities/deal.yaml": deal,
             **(extra or {})}
    return write_files_pack(root, files, name="deals", requires={})


@dataclass
class Deals:
    engine: sa.Engine
    app: Any
    http: TestClient

    @property
    def system(self) -> RecordsService:
        records: RecordsService = self.app.state.records
        return records

    def post(self, entity: str, **values: Any) -> Any:
        return self.http.post(f"/api/v1/{entity}", json=values)

    def made(self, entity: str, **values: Any) -> dict[str, Any]:
        answer = self.post(entity, **values)
        assert answer.status_code == 201, answer.text
        record: dict[str, Any] = answer.json()
        return record

    def patch(self, record: dict[str, Any], **values: Any) -> Any:
        return self.http.patch(f"/api/v1/deal/{record['id']}", json={"version": record["version"], **values})


@pytest.fixture
def deals(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[Deals]:
    install(engine, registry, deal_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield Deals(engine, app, http)
    app.state.engine.dispose()


# --- pack files -------------------------------------------------------------------------------------
def problems_of(engine: sa.Engine, registry: FieldTypeRegistry, folder: Path) -> list[tuple[str, int, str]]:
    with pytest.raises(DefinitionError) as refused:
        plan(engine, registry, folder)
    return [(p.location.file, p.location.line, p.message) for p in refused.value.problems]


@pytest.mark.parametrize(("old", "new", "message"), [
    ('visible_if: "status = \'lost\'"', 'visible_if: "stauts = \'lost\'"', "visible_if: unknown field"),
    ('required_if: "status = \'lost\'"', 'required_if: "status +"', "required_if:"),
    ('read_only_if: "status = \'won\'"', 'read_only_if: "amount + 1"',
     "read_only_if: a condition must be true or false"),
    ('expedite: "amount >= 1000"', 'express: "amount >= 1000"',
     "options_if.express: 'shipping' has no option"),
    ('expedite: "amount >= 1000"', 'expedite: "amount >= \'x\'"', "options_if.expedite:"),
    ('options_if: "contact.company = company"', 'options_if: "company = company"',
     "options_if: the rule does not read 'contact'"),
    ('options_if:\n      expedite: "amount >= 1000"', 'options_if: "amount >= 1000"',
     "options_if: give a rule per option"),
    ('read_only_if: "status = \'won\'"', 'options_if: "amount > 1"', "options_if: only a choice"),
])
def test_bad_form_logic_is_refused_at_its_line(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path,
                                               old: str, new: str, message: str) -> None:
    deal = textwrap.dedent(DEAL)
    assert old in deal
    deal = deal.replace(old, new)
    line = deal[:deal.index(new)].count("\n") + 1  # reported at the rule's own line
    found = problems_of(engine, registry, deal_pack(tmp_path, deal))
    at_lines = [(file, at) for file, at, said in found if message in said]
    assert at_lines == [("entities/deal.yaml", line)], found


def test_an_override_gives_form_logic_and_is_checked_in_its_own_file(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, deal_pack(tmp_path / "base"))
    good = write_files_pack(tmp_path / "ok", {"entities/deal.yaml": """\
        kind: extension
        entity: deal
        field_overrides:
          loss_reason:
            visible_if: "status != 'open'"
        """}, name="tweaks", requires={"deals": "^1.0.0"})
    bad = write_files_pack(tmp_path / "bad", {"entities/deal.yaml": """\
        kind: extension
        entity: deal
        field_overrides:
          loss_reason:
            visible_if: "status = 'gone'"
        """}, name="tweaks", requires={"deals": "^1.0.0"})
    found = problems_of(engine, registry, bad)
    assert [(f, at) for f, at, said in found if "visible_if" in said] == [("entities/deal.yaml", 5)], found
    install(engine, registry, good)
    with engine.connect() as conn:
        stored = revisions.current(conn)
    assert stored is not None
    deal = stored.metamodel.entity("deal")
    assert deal is not None
    reason = deal.field("loss_reason")
    assert reason is not None and reason.visible_if == "status != 'open'"
    assert reason.required_if == "status = 'lost'"
    assert Metamodel.from_dict(stored.metamodel.as_dict()) == stored.metamodel
    assert "visible_if" not in next(f for f in stored.metamodel.as_dict()["entities"][2]["fields"]
                                    if f["name"] == "name")  # stored only when given


# --- the API ----------------------------------------------------------------------------------------
def test_required_if_refuses_an_api_write_naming_the_field_and_the_rule(deals: Deals) -> None:
    refused = deals.post("deal", name="Big", status="lost")
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"loss_reason": ["is required when status = 'lost'"]}
    made = deals.made("deal", name="Big", status="lost", loss_reason="Price")
    assert made["loss_reason"] == "Price"
    deal = deals.made("deal", name="Small")
    moved = deals.patch(deal, status="lost")
    assert moved.status_code == 422 and "loss_reason" in moved.json()["errors"]


def test_a_field_hidden_by_logic_is_not_writable(deals: Deals) -> None:
    refused = deals.post("deal", name="Big", loss_reason="Price")
    assert refused.status_code == 422
    assert refused.json()["errors"] == {
        "loss_reason": ["is hidden by the form's logic (shown only when status = 'lost'): leave it out"]}
    assert deals.http.get("/api/v1/deal").json()["data"] == []
    deal = deals.made("deal", name="Big", loss_reason=None)  # blank: nothing set, accepted
    assert deals.patch(deal, loss_reason="Price").status_code == 422
    # The system (sample data, the CLI) is not a person: it may set what it must.
    imported = deals.system.create("deal", {"name": "Imported", "loss_reason": "Old"})
    assert imported.values["loss_reason"] == "Old"


def test_bulk_writes_meet_the_same_logic(deals: Deals) -> None:
    """A bulk create refuses the batch naming the record and field; a bulk edit from a list
    refuses each record the logic forbids and says why."""
    refused = deals.http.post("/api/v1/deal", json=[{"name": "A"}, {"name": "B", "status": "lost"}])
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"[1].loss_reason": ["is required when status = 'lost'"]}
    open_deal = deals.made("deal", name="Open")
    lost = deals.made("deal", name="Lost", status="lost", loss_reason="Price")
    form = {"ids": [str(open_deal["id"]), str(lost["id"])], "action": "set", "field": "loss_reason",
            "value": "Budget"}
    edited = deals.http.post("/e/deal/bulk", data=form, headers={"Accept": "application/json"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["done"] == [lost["id"]]
    assert "is hidden by the form's logic" in edited.json()["refused"][str(open_deal["id"])]


def test_read_only_if_refuses_a_change(deals: Deals) -> None:
    deal = deals.made("deal", name="Big", amount=500)
    won = deals.patch(deal, status="won")
    assert won.status_code == 200, won.text
    changed = deals.patch(won.json(), amount=900)
    assert changed.status_code == 422
    assert changed.json()["errors"] == {"amount": ["is read-only when status = 'won'"]}
    echoed = deals.patch(won.json(), amount=500, name="Bigger")  # the same value sent back: no change
    assert echoed.status_code == 200, echoed.text
    reopened = deals.patch(echoed.json(), status="open", amount=900)  # the final state decides
    assert reopened.status_code == 200, reopened.text


def test_options_if_refuses_an_option_outside_the_filter(deals: Deals) -> None:
    refused = deals.post("deal", name="Small", amount=10, shipping="expedite")
    assert refused.status_code == 422
    assert refused.json()["errors"] == {
        "shipping": ["option 'expedite' is not offered: only when amount >= 1000"]}
    deal = deals.made("deal", name="Big", amount=5000, shipping="expedite")
    shrunk = deals.patch(deal, amount=10)  # what decides about the option changed: checked again
    assert shrunk.status_code == 422 and "shipping" in shrunk.json()["errors"]
    assert deals.made("deal", name="Small", amount=10, shipping="standard")["shipping"] == "standard"


def test_options_if_refuses_a_reference_target_outside_the_filter(deals: Deals) -> None:
    acme, other = deals.made("company", name="Acme"), deals.made("company", name="Other")
    ann = deals.made("person", name="Ann", company=acme["id"])
    bob = deals.made("person", name="Bob", company=other["id"])
    refused = deals.post("deal", name="Big", company=acme["id"], contact=bob["id"])
    assert refused.status_code == 422
    assert refused.json()["errors"] == {
        "contact": [f"record {bob['id']} is not offered: only when contact.company = company"]}
    deal = deals.made("deal", name="Big", company=acme["id"], contact=ann["id"])
    assert deal["contact"]["id"] == ann["id"]
    moved = deals.patch(deal, company=other["id"])
    assert moved.status_code == 422 and "contact" in moved.json()["errors"]
    # The system (an import of older data) may link what a person may not pick.
    imported = deals.system.create("deal", {"name": "Legacy", "company": acme["id"], "contact": bob["id"]})
    assert imported.values["contact"] == bob["id"]


# --- the form, through the server -------------------------------------------------------------------
def row(html: str, name: str) -> str:
    """The form row of field `name` in a page or an htmx answer ('' when absent)."""
    found = re.search(rf'<div class="form-row[^"]*" id="row-{name}"[^>]*>.*?'
                      r'(?=<div class="form-row|</fieldset>|$)', html, re.S)
    return found.group(0) if found else ""


def test_the_form_hides_a_field_until_the_logic_shows_it_and_then_requires_it(deals: Deals) -> None:
    form = deals.http.get("/e/deal/new")
    assert 'id="row-loss_reason" hidden' in form.text and 'name="loss_reason"' not in form.text
    assert 'value="expedite"' not in row(form.text, "shipping")  # no amount yet: not offered
    # Changing the status asks the server, which answers the rows the logic decides about.
    answer = deals.http.post("/e/deal/validate", data={"name": "Big", "status": "lost"},
                             headers={"HX-Source": "select#f-status"})
    shown = row(answer.text, "loss_reason")
    assert 'hx-swap-oob="true"' in shown and 'name="loss_reason"' in shown
    assert 'aria-label="required"' in shown
    assert 'name="_fields" value="loss_reason"' in shown  # sent with the form from now on
    assert row(answer.text, "status") == ""  # the changed input itself is left alone
    bigger = deals.http.post("/e/deal/validate", data={"name": "Big", "amount": "5000"},
                             headers={"HX-Source": "input#f-amount"})
    assert 'value="expedite"' in row(bigger.text, "shipping")
    plain = deals.http.post("/e/deal/validate", data={"name": "Big"}, headers={"HX-Source": "input#f-name"})
    assert "row-" not in plain.text  # no rule reads the name: only error slots
    # Without JavaScript: the save is refused, the field shown with its error; then it saves.
    refused = deals.http.post("/e/deal/new", data={"name": "Big", "status": "lost"})
    assert refused.status_code == 422
    assert "is required when status = &#39;lost&#39;" in row(refused.text, "loss_reason")
    saved = deals.http.post("/e/deal/new", data={"name": "Big", "status": "lost", "loss_reason": "Price"},
                            follow_redirects=False)
    assert saved.status_code == 303, saved.text
    page = deals.http.get(saved.headers["location"])
    assert "<dt>Loss reason</dt>" in page.text and "Price" in page.text


def test_the_record_page_hides_a_field_hidden_by_logic(deals: Deals) -> None:
    deal = deals.system.create("deal", {"name": "Old", "loss_reason": "Kept from before"})
    page = deals.http.get(f"/e/deal/{deal.id}")
    assert "<dt>Name</dt>" in page.text and "<dt>Loss reason</dt>" not in page.text  # the fields shown
    assert deals.http.get(f"/api/v1/deal/{deal.id}").json()["loss_reason"] == "Kept from before"


def test_a_read_only_field_is_locked_and_a_picker_offers_only_allowed_records(deals: Deals) -> None:
    acme, other = deals.made("company", name="Acme"), deals.made("company", name="Other")
    deals.made("person", name="Ann", company=acme["id"])
    deals.made("person", name="Bob", company=other["id"])
    opened = deals.made("deal", name="Won", amount=10, company=acme["id"])
    won = deals.patch(opened, status="won").json()
    form = deals.http.get(f"/e/deal/{won['id']}/edit")
    assert 'name="amount"' not in form.text and "(read-only)" in row(form.text, "amount")
    contact = row(form.text, "contact")
    assert ">Ann</option>" in contact and ">Bob</option>" not in contact
    twin = deals.http.get(f"/e/deal/{won['id']}/edit.json").json()
    assert twin["logic"]["read_only"] == ["amount"] and twin["logic"]["hidden"] == ["loss_reason"]
    moved = deals.http.post(f"/e/deal/{won['id']}/validate",
                            data={"company": str(other["id"]), "_fields": ["company"],
                                  "_was.company": str(acme["id"])},
                            headers={"HX-Source": "select#f-company"})
    contact = row(moved.text, "contact")
    assert ">Bob</option>" in contact and ">Ann</option>" not in contact
    # The picker's search sends the form along: it finds only the records the rule offers.
    searched = deals.http.get("/e/deal/fields/contact/options",
                              params={"q": "", "company": str(other["id"]), "record": str(won["id"])})
    assert ">Bob</option>" in searched.text and ">Ann</option>" not in searched.text
    assert 'hx-get="/e/deal/fields/contact/options?record=' in form.text


def test_the_openapi_document_describes_the_rules(deals: Deals) -> None:
    schemas = deals.http.get("/api/v1/openapi.json").json()["components"]["schemas"]
    reason = schemas["DealInput"]["properties"]["loss_reason"]
    assert reason["x-slatecrm-visible-if"] == "status = 'lost'"
    assert reason["x-slatecrm-required-if"] == "status = 'lost'"
    assert "required when status = 'lost'" in reason["description"]
    shipping = schemas["Deal"]["properties"]["shipping"]
    assert shipping["x-slatecrm-options-if"] == {"expedite": "amount >= 1000"}
    assert schemas["DealPatch"]["properties"]["amount"]["x-slatecrm-read-only-if"] == "status = 'won'"
    assert "x-slatecrm-visible-if" not in schemas["DealInput"]["properties"]["name"]
    meta = deals.http.get("/api/v1/meta").json()
    fields = {f["name"]: f for e in meta["entities"] if e["name"] == "deal" for f in e["fields"]}
    assert fields["contact"]["options_if"] == "contact.company = company"


def test_the_organisation_layer_overrides_form_logic_through_the_admin_api(deals: Deals) -> None:
    url = "/api/v1/admin/entities/deal/fields/loss_reason"
    bad = deals.http.put(url, json={"type": "text", "visible_if": "status = 'gone'"})
    assert bad.status_code == 422 and "visible_if" in bad.text, bad.text
    change = {"type": "text", "visible_if": "status != 'open'"}
    planned = deals.http.put(url, json=change)
    assert planned.status_code == 200, planned.text
    applied = deals.http.put(url, params={"confirm": planned.json()["base_revision"]}, json=change)
    assert applied.status_code == 200, applied.text
    won = deals.made("deal", name="Won", status="won", loss_reason="Kept for the record")
    assert won["loss_reason"] == "Kept for the record"
    refused = deals.post("deal", name="Open", loss_reason="No")
    assert refused.status_code == 422 and "status != 'open'" in refused.json()["errors"]["loss_reason"][0]
    lost = deals.post("deal", name="Lost", status="lost")  # the pack's required_if stays
    assert lost.json()["errors"] == {"loss_reason": ["is required when status = 'lost'"]}


def test_the_designer_keeps_form_logic_when_it_edits_a_field(deals: Deals) -> None:
    """The designer's page of a field shows its rules in the form-logic inputs and posts them
    back: relabelling the organisation's field, or a pack's, keeps the rules."""
    from .test_designer import reviewed

    def applied(url: str, form: dict[str, str]) -> None:
        _, confirm = reviewed(deals.http, url, form)
        assert deals.http.post(url, data=confirm, follow_redirects=False).status_code == 303

    def shown_rules(url: str) -> dict[str, str]:
        """The form-logic inputs as the page shows them (what a browser posts back)."""
        page = deals.http.get(url).text
        return {name: html.unescape(text).strip() for name, text in re.findall(
            r'<textarea id="r-(\w+_if)" name="\w+"[^>]*>([^<]*)</textarea>', page, re.S)}

    body = {"type": "text", "visible_if": "status = 'won'"}
    planned = deals.http.put("/api/v1/admin/entities/deal/fields/win_note", json=body)
    confirmed = deals.http.put("/api/v1/admin/entities/deal/fields/win_note",
                               params={"confirm": planned.json()["base_revision"]}, json=body)
    assert confirmed.status_code == 200, confirmed.text
    url = "/admin/entities/deal/fields/win_note"
    assert shown_rules(url)["visible_if"] == "status = 'won'"
    applied(url, {"op": "save", "type": "text", "label": "Why we won", **shown_rules(url)})
    pack_field = "/admin/entities/deal/fields/loss_reason"
    assert shown_rules(pack_field)["visible_if"] == "status = 'lost'"
    applied(pack_field, {"op": "save", "type": "text", "label": "Why we lost", **shown_rules(pack_field)})
    meta = deals.http.get("/api/v1/meta").json()
    fields = {f["name"]: f for e in meta["entities"] if e["name"] == "deal" for f in e["fields"]}
    assert (fields["win_note"]["label"], fields["win_note"]["visible_if"]) == ("Why we won", "status = 'won'")
    reason = fields["loss_reason"]
    assert (reason["label"], reason["visible_if"]) == ("Why we lost", "status = 'lost'")
