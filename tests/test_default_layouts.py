"""The default packs' layouts and form logic, as a user of a fresh SlateCRM meets them, on
SQLite and PostgreSQL: an account's record page in tabs with its contacts, opportunities and
activities listed; a deal closed lost only with a reason (given only then); a primary
contact chosen among the account's people; a lead disqualified only with a reason; and an
upgrade from the packs' previous versions that plans no SQL for any of it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform import installer

from .packs import install, plan


def made(client: TestClient, entity: str, **values: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/{entity}", json=values)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def related_section(html: str, anchor: str) -> str:
    section = html[html.index(f'id="{anchor}"'):]
    return section[: section.index("</section>")]


def test_the_account_page_shows_tabs_and_related_lists(client: TestClient) -> None:
    acme = made(client, "account", name="Acme", industry="technology", phone="+1 202 555 0100",
                billing_address={"street": "1 Main St", "city": "Springfield", "country": "US"},
                description="Our oldest customer")
    ann = made(client, "contact", name={"first": "Ann", "last": "Lee"}, job_title="CTO", account=acme["id"])
    made(client, "opportunity", name="Acme renewal", account=acme["id"], primary_contact=ann["id"],
         amount={"amount": "5000", "currency": "USD"}, close_date="2027-03-31")
    made(client, "activity", subject="Kick-off call", activity_type="call", account=acme["id"])
    response = client.get(f"/e/account/{acme['id']}")
    assert response.status_code == 200, response.text
    html = response.text
    tabs = re.findall(r'<a href="#(tab-\d)"[^>]*role="tab"[^>]*>([^<]+)</a>', html)
    assert [label for _, label in tabs] == ["Overview", "Addresses", "Notes"]
    overview = html[html.index('id="tab-1"'):html.index('id="tab-2"')]
    assert "<h2>Pipeline</h2>" in overview and "Open opportunities" in overview
    addresses = html[html.index('id="tab-2"'):html.index('id="tab-3"')]
    assert "Billing address" in addresses and "Springfield" in addresses
    assert "Our oldest customer" in html[html.index('id="tab-3"'):]
    lists = re.findall(r'id="(related-[a-z_]+-[a-z_]+)"', html)
    assert lists[:3] == ["related-contact-account", "related-opportunity-account", "related-activity-account"]
    people = related_section(html, "related-contact-account")
    assert re.findall(r'<th scope="col">([^<]+)</th>', people) == ["Name", "Job title", "E-mails", "Phones"]
    assert "Ann" in people and "CTO" in people
    deals = related_section(html, "related-opportunity-account")
    assert re.findall(r'<th scope="col">([^<]+)</th>', deals) == [
        "Name", "Sales stage", "Amount", "Close date"]
    assert "Acme renewal" in deals
    assert "Kick-off call" in related_section(html, "related-activity-account")


def test_a_deal_closes_lost_only_with_a_reason_given_only_then(client: TestClient) -> None:
    acme = made(client, "account", name="Acme")
    deal = made(client, "opportunity", name="Acme renewal", account=acme["id"])
    path = f"/api/v1/opportunity/{deal['id']}"
    early = client.patch(path, json={"loss_reason": "price"}, headers={"If-Match": f'"{deal["version"]}"'})
    assert early.status_code == 422, early.text
    assert early.json()["errors"]["loss_reason"] == [
        "is hidden by the form's logic (shown only when stage = 'closed_lost'): leave it out"]
    lost = client.patch(path, json={"stage": "closed_lost"}, headers={"If-Match": f'"{deal["version"]}"'})
    assert lost.status_code == 422, lost.text
    assert "loss_reason" in lost.json()["errors"]
    assert client.get(path).json()["stage"] == "prospecting"
    closed = client.patch(path, json={"stage": "closed_lost", "loss_reason": "price"},
                          headers={"If-Match": f'"{deal["version"]}"'})
    assert closed.status_code == 200, closed.text
    assert closed.json()["loss_reason"] == "price"


def test_the_primary_contact_is_one_of_the_accounts_people(client: TestClient) -> None:
    acme = made(client, "account", name="Acme")
    globex = made(client, "account", name="Globex")
    ann = made(client, "contact", name={"first": "Ann", "last": "Lee"}, account=acme["id"])
    hank = made(client, "contact", name={"first": "Hank", "last": "Scorpio"}, account=globex["id"])
    refused = client.post("/api/v1/opportunity", json={"name": "Acme renewal", "account": acme["id"],
                                                       "primary_contact": hank["id"]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"]["primary_contact"] == [
        f"record {hank['id']} is not offered: only when primary_contact.account = account"]
    deal = made(client, "opportunity", name="Acme renewal", account=acme["id"], primary_contact=ann["id"])
    assert deal["primary_contact"]["id"] == ann["id"]


def test_a_lead_is_disqualified_only_with_a_reason(client: TestClient) -> None:
    lead = made(client, "lead", last_name="Doe", company="Doe Ltd")
    path = f"/api/v1/lead/{lead['id']}"
    refused = client.patch(path, json={"status": "disqualified"},
                           headers={"If-Match": f'"{lead["version"]}"'})
    assert refused.status_code == 422 and "disqualification_reason" in refused.json()["errors"]
    early = client.patch(path, json={"disqualification_reason": "no_budget"},
                         headers={"If-Match": f'"{lead["version"]}"'})
    assert early.status_code == 422 and "is hidden by the form's logic" in early.json()["errors"][
        "disqualification_reason"][0]
    done = client.patch(path, json={"status": "disqualified", "disqualification_reason": "no_budget"},
                        headers={"If-Match": f'"{lead["version"]}"'})
    assert done.status_code == 200, done.text


def previous_versions(root: Path) -> list[Path]:
    """The default packs as their previous versions shipped them: no layouts, no form logic."""
    logic = re.compile(r"^    (visible_if|required_if|read_only_if|options_if):.*\n", re.MULTILINE)
    copies = []
    for name, version in [("crm-core", "0.1.1"), ("sales", "0.2.5")]:
        copy = root / name
        shutil.copytree(installer.default_config_dir() / name, copy)
        shutil.rmtree(copy / "layouts")
        for entity in (copy / "entities").glob("*.yaml"):
            entity.write_text(logic.sub("", entity.read_text()))
        manifest = copy / "pack.yaml"
        manifest.write_text(re.sub(r"^version: .*$", f"version: {version}", manifest.read_text(),
                                   count=1, flags=re.MULTILINE))
        copies.append(copy)
    return copies


def test_upgrading_from_the_previous_versions_plans_no_sql(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, *previous_versions(tmp_path))
    upgrade = plan(engine, registry, "crm-core", "sales").plan
    assert not upgrade.blocked
    assert sorted(c.summary for c in upgrade.changes) == sorted([
        "change definition of lead.disqualification_reason (no schema change)",
        "change definition of lead.converted_account (no schema change)",
        "change definition of lead.converted_contact (no schema change)",
        "change definition of opportunity.primary_contact (no schema change)",
        "change definition of opportunity.loss_reason (no schema change)",
        "add layout account (account)", "add layout contact (contact)",
        "add layout lead (lead)", "add layout opportunity (opportunity)"])
    assert [c.summary for c in upgrade.changes if c.sql] == []
