"""Layouts (`kind: layout`, issue 15), on SQLite and PostgreSQL: a bad layout refused at its
line, layouts replaced by name (a pack requiring the layout's pack, the organisation's layer),
stored with the revision and planned without DDL; the record page and the form following
the layout (tabs, sections, order, fields left out, related lists' columns, order and
length), a form save that keeps the fields it does not show, a hidden field left out even
when placed, and board cards showing the compact layout."""

from __future__ import annotations

import re
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
from slatecrm.platform.storage import revisions

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack

CLIENT = """\
    kind: entity
    name: client
    title_field: name
    fields:
      name: {type: text, required: true}
      city: {type: text}
    """
TICKET = """\
    kind: entity
    name: ticket
    title_field: subject
    fields:
      subject: {type: text, required: true}
      client: {type: reference, target: client}
      priority: {type: integer}
      secret_note: {type: text}
      internal_code: {type: text}
      details: {type: long_text}
    pipelines:
      flow:
        field: status
        stages:
          - {key: open, label: Open}
          - {key: closed, label: Closed}
    """
TICKET_LAYOUT = """\
    kind: layout
    entity: ticket
    tabs:
      - label: Summary
        sections:
          - label: Essentials
            columns: 2
            fields: [priority, subject, client]
      - label: More
        sections:
          - label: Notes
            fields: [details, secret_note]
    compact:
      fields: [priority, client]
    """
CLIENT_LAYOUT = """\
    kind: layout
    entity: client
    sections:
      - label: Client
        fields: [name]
    related_lists:
      - entity: ticket
        field: client
        label: Support tickets
        columns: [subject, priority]
        sort: [-priority]
        limit: 2
    compact:
      fields: [city]
    """
HELPDESK = {"entities/client.yaml": CLIENT, "entities/ticket.yaml": TICKET,
            "layouts/ticket.yaml": TICKET_LAYOUT, "layouts/client.yaml": CLIENT_LAYOUT}
#: A role that may not see ticket.secret_note (placed in the layout all the same).
CLERK = """\
    kind: role
    name: clerk
    entities:
      ticket:
        actions: all
        scope: all
        fields: {secret_note: hidden}
      client:
        actions: all
        scope: all
    """


def helpdesk(root: Path, version: str = "1.0.0", **changed: str | None) -> Path:
    files = {**HELPDESK, "roles/clerk.yaml": CLERK, **changed}
    return write_files_pack(root, {k: v for k, v in files.items() if v is not None}, name="helpdesk",
                            version=version, requires={})


def problems_of(engine: sa.Engine, registry: FieldTypeRegistry, *folders: Path) -> list[tuple[str, int, str]]:
    with pytest.raises(DefinitionError) as refused:
        plan(engine, registry, *folders)
    return [(p.location.file, p.location.line, p.message) for p in refused.value.problems]


# --- pack files ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("layout", "line", "message"), [
    ("kind: layout\nentity: tiket\nsections:\n  - fields: [subject]\n", 2,
     "entity 'tiket' is not defined by any pack given, installed or required (did you mean 'ticket'?)"),
    ("kind: layout\nentity: ticket\nsections:\n  - fields: [subject, prority]\n", 4,
     "'ticket' has no field 'prority' (did you mean 'priority'?)"),
    ("kind: layout\nentity: ticket\nsections:\n  - fields: [subject, priority]\n  - fields:\n"
     "      - priority\n", 6, "field 'priority' is placed twice (also at layouts/ticket.yaml:4"),
    ("kind: layout\nentity: ticket\nsections:\n  - fields: [priority]\n", 2,
     "field 'subject' is required and has no default: place it in the layout"),
    ("kind: layout\nentity: ticket\ntabs:\n  - label: A\n    sections:\n      - fields: [subject]\n"
     "sections:\n  - fields: [priority]\n", 7,
     "give tabs (each with its sections) or sections (no tabs), not both"),
    ("kind: layout\nentity: ticket\nsections:\n  - fields: [subject]\n    columns: 3\n", 5,
     "is not one of 1, 2"),
    ("kind: layout\nentity: client\nrelated_lists:\n  - entity: ticket\n    field: priority\n", 5,
     "ticket.priority does not point at 'client'"),
    ("kind: layout\nentity: client\nrelated_lists:\n  - entity: tickets\n    field: client\n", 4,
     "entity 'tickets' is not defined"),
    ("kind: layout\nentity: client\nrelated_lists:\n  - entity: ticket\n    field: client\n"
     "    columns: [subject, colour]\n", 6, "'ticket' has no field 'colour'"),
    ("kind: layout\nentity: client\nrelated_lists:\n  - entity: ticket\n    field: client\n"
     "    sort: [-urgency]\n", 6, "'ticket' has no field 'urgency' to sort by"),
    ("kind: layout\nentity: ticket\ncompact:\n  fields: [subject, nothing]\n", 4,
     "'ticket' has no field 'nothing'"),
])
def test_a_bad_layout_is_refused_at_its_line(engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path,
                                            layout: str, line: int, message: str) -> None:
    found = problems_of(engine, registry, helpdesk(tmp_path, **{"layouts/ticket.yaml": layout,
                                                                "layouts/client.yaml": None}))
    at = [(file, at) for file, at, said in found if message in said]
    assert at == [("layouts/ticket.yaml", line)], found


def test_an_entity_has_one_layout_and_an_unrelated_pack_may_not_replace_one(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    second = "kind: layout\nname: other\nentity: ticket\nsections:\n  - fields: [subject]\n"
    found = problems_of(engine, registry, helpdesk(tmp_path / "a", **{"layouts/other.yaml": second}))
    at = [(f, at) for f, at, said in found if "already has layout 'other'" in said]
    assert at == [("layouts/ticket.yaml", 2)], found
    other = write_files_pack(tmp_path / "b", {"layouts/ticket.yaml": "kind: layout\nentity: ticket\n"
                                              "sections:\n  - fields: [subject]\n"},
                             name="stranger", requires={})
    found = problems_of(engine, registry, helpdesk(tmp_path / "c"), other)
    assert any(f == "layouts/ticket.yaml" and "layout 'ticket' is already defined by pack 'helpdesk'" in said
               for f, _, said in found), found


def test_a_pack_requiring_the_layouts_pack_replaces_it_by_name_and_the_plan_says_so(
        engine: sa.Engine, registry: FieldTypeRegistry, tmp_path: Path) -> None:
    install(engine, registry, helpdesk(tmp_path))
    with engine.connect() as conn:
        stored = revisions.current(conn)
    assert stored is not None
    layout = stored.metamodel.layout_of("ticket")
    assert layout is not None and layout.placed == ("priority", "subject", "client", "details", "secret_note")
    assert Metamodel.from_dict(stored.metamodel.as_dict()) == stored.metamodel
    replacing = write_files_pack(tmp_path / "d", {"layouts/ticket.yaml": "kind: layout\nentity: ticket\n"
                                                  "sections:\n  - fields: [subject, internal_code]\n"},
                                 name="extras", requires={"helpdesk": "^1.0.0"})
    installation = plan(engine, registry, replacing)
    assert [c.summary for c in installation.plan.changes] == ["change layout ticket (ticket)"]
    assert all(not c.sql for c in installation.plan.changes)
    install(engine, registry, replacing)
    with engine.connect() as conn:
        stored = revisions.current(conn)
    assert stored is not None
    replaced = stored.metamodel.layout_of("ticket")
    assert replaced is not None and replaced.placed == ("subject", "internal_code")
    assert replaced.pack == "extras"


# --- pages --------------------------------------------------------------------------------------
@dataclass
class Desk:
    app: Any
    http: TestClient

    def create(self, entity: str, **values: Any) -> dict[str, Any]:
        made = self.http.post(f"/api/v1/{entity}", json=values)
        assert made.status_code == 201, made.text
        record: dict[str, Any] = made.json()
        return record

    def page(self, path: str) -> str:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture
def desk(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[Desk]:
    install(engine, registry, helpdesk(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield Desk(app, http)
    app.state.engine.dispose()


def labels_in_order(html: str) -> list[str]:
    return re.findall(r"<dt>([^<]+)</dt>", html)


def test_the_record_page_follows_the_layout(desk: Desk) -> None:
    client = desk.create("client", name="Acme")
    ticket = desk.create("ticket", subject="Printer", client=client["id"], priority=3, secret_note="psst",
                         internal_code="X-1", details="Jammed")
    html = desk.page(f"/e/ticket/{ticket['id']}")
    tabs = re.findall(r'<a href="#(tab-\d)"[^>]*role="tab"[^>]*>([^<]+)</a>', html)
    assert tabs == [("tab-1", "Summary"), ("tab-2", "More")]
    assert labels_in_order(html)[:5] == ["Priority", "Subject", "Client", "Details", "Secret note"]
    assert 'class="fields columns-2"' in html and "<h2>Essentials</h2>" in html
    assert "Internal code" not in labels_in_order(html)  # not placed: not shown
    # ... but still there through the API
    assert desk.http.get(f"/api/v1/ticket/{ticket['id']}").json()["internal_code"] == "X-1"


def test_the_form_follows_the_layout_and_a_save_keeps_the_fields_it_does_not_show(desk: Desk) -> None:
    ticket = desk.create("ticket", subject="Printer", priority=3, internal_code="X-1")
    html = desk.page(f"/e/ticket/{ticket['id']}/edit")
    sent = re.findall(r'name="_fields" value="([a-z_]+)"', html)
    assert sent == ["priority", "subject", "client", "details", "secret_note", "owner"]
    assert 'id="f-internal_code"' not in html and 'role="tab"' in html
    form = {"csrftoken": re.search(r'name="csrftoken" value="([^"]+)"', html)[1],  # type: ignore[index]
            "version": str(ticket["version"]), "_fields": sent, "subject": "Printer 2", "priority": "3",
            "client": "", "details": "", "secret_note": ""}
    saved = desk.http.post(f"/e/ticket/{ticket['id']}/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    stored = desk.http.get(f"/api/v1/ticket/{ticket['id']}").json()
    assert stored["subject"] == "Printer 2" and stored["internal_code"] == "X-1" and stored["priority"] == 3
    new = desk.page("/e/ticket/new")
    assert re.findall(r'name="_fields" value="([a-z_]+)"', new)[:2] == ["priority", "subject"]


def test_related_lists_follow_the_layout(desk: Desk) -> None:
    client = desk.create("client", name="Acme")
    for subject, priority in [("Low", 1), ("High", 9), ("Mid", 5)]:
        desk.create("ticket", subject=subject, client=client["id"], priority=priority)
    html = desk.page(f"/e/client/{client['id']}")
    section = html[html.index('id="related-ticket-client"'):]
    section = section[: section.index("</section>")]
    assert "Support tickets" in section and "(Client: 3)" in section
    assert re.findall(r'<th scope="col">([^<]+)</th>', section) == ["Subject", "Priority"]
    assert re.findall(r'class="record-link" href="/e/ticket/\d+">([^<]+)</a>', section) == ["High", "Mid"]
    assert "All 3" in section
    assert "City" not in labels_in_order(html)


def test_a_field_the_user_may_not_read_is_not_shown_even_when_placed(desk: Desk, db_url: str) -> None:
    ticket = desk.create("ticket", subject="Printer", secret_note="psst")
    with signed_in(desk.app, "clerk@example.com", roles=("clerk",)) as clerk:
        page = clerk.get(f"/e/ticket/{ticket['id']}")
        form = clerk.get(f"/e/ticket/{ticket['id']}/edit")
    assert page.status_code == 200 and form.status_code == 200
    assert "Secret note" not in page.text and "psst" not in page.text
    assert 'id="f-secret_note"' not in form.text
    assert "Details" in labels_in_order(page.text)


def test_board_cards_show_the_compact_layout(desk: Desk) -> None:
    client = desk.create("client", name="Acme")
    desk.create("ticket", subject="Printer", client=client["id"], priority=7)
    html = desk.page("/e/ticket/board/flow")
    card = html[html.index('class="kanban-card"'):]
    card = card[: card.index("</li>")]
    assert re.findall(r'data-field="([a-z_]+)">([^<]*)<', card) == [("priority", "7"), ("client", "Acme")]


def test_the_organisation_replaces_a_packs_layout_through_the_admin_api(desk: Desk) -> None:
    ticket = desk.create("ticket", subject="Printer", internal_code="X-1")
    body = {"entity": "ticket", "sections": [{"label": "Ours", "fields": ["subject", "internal_code"]}]}
    planned = desk.http.put("/api/v1/admin/layouts/ticket", json=body)
    assert planned.status_code == 200, planned.text
    assert [c["summary"] for c in planned.json()["plan"]["changes"]] == ["change layout ticket (ticket)"]
    base = planned.json()["base_revision"]
    applied = desk.http.put(f"/api/v1/admin/layouts/ticket?confirm={base}", json=body)
    assert applied.status_code == 200 and applied.json()["applied"], applied.text
    html = desk.page(f"/e/ticket/{ticket['id']}")
    assert labels_in_order(html)[:2] == ["Subject", "Internal code"] and 'role="tab"' not in html
    bad = desk.http.put("/api/v1/admin/layouts/ticket", json={"entity": "ticket", "sections": [
        {"fields": ["subject", "nonesuch"]}]})
    assert bad.status_code == 422 and "'ticket' has no field 'nonesuch'" in bad.text
    removed = desk.http.delete(f"/api/v1/admin/layouts/ticket?confirm={applied.json()['revision']}")
    assert removed.status_code == 200, removed.text
    assert labels_in_order(desk.page(f"/e/ticket/{ticket['id']}"))[:2] == ["Priority", "Subject"]


def test_a_reference_link_loads_the_compact_layout_as_its_preview(desk: Desk) -> None:
    client = desk.create("client", name="Acme", city="Lyon")
    ticket = desk.create("ticket", subject="Printer", client=client["id"], priority=2)
    html = desk.page(f"/e/ticket/{ticket['id']}")
    assert f'hx-get="/e/client/{client["id"]}/preview"' in html
    preview = desk.page(f"/e/client/{client['id']}/preview")
    assert re.findall(r'data-field="([a-z_]+)"><span class="muted">([^<]+)</span> ([^<]+)<', preview) == [
        ("city", "City:", "Lyon")]
    assert "<strong>Acme</strong>" in preview
    default = desk.page(f"/e/ticket/{ticket['id']}/preview")  # compact: priority, client
    assert re.findall(r'data-field="([a-z_]+)"', default) == ["priority", "client"]
    assert desk.http.get(f"/e/client/{client['id'] + 99}/preview").status_code == 404


@pytest.mark.parametrize("layer", ["organisation", "all"])
def test_an_export_keeps_the_organisations_layout(desk: Desk, registry: FieldTypeRegistry,
                                                  layer: str) -> None:
    from slatecrm.platform import packexport

    body = {"entity": "ticket", "sections": [{"fields": ["subject", "internal_code"]}]}
    base = desk.http.put("/api/v1/admin/layouts/ticket", json=body).json()["base_revision"]
    assert desk.http.put(f"/api/v1/admin/layouts/ticket?confirm={base}", json=body).json()["applied"]
    with desk.app.state.engine.connect() as conn:
        _, exported = packexport.export(conn, registry, layer=layer, name="desk-export", version="1.0.0")
    layout = exported.layout_of("ticket")
    assert layout is not None and layout.placed == ("subject", "internal_code")
    client = exported.layout_of("client")
    assert client is not None and client.compact == ("city",)
