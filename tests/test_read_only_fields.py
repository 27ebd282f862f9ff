"""The field options `read_only` and `read_only_after_create` (issue "Metamodel II"), on SQLite
and PostgreSQL: a bad value refused at its line, a person's write refused through the API,
forms and bulk edits (as a role's read-only field is), the system's writes (the records
service without a user, workflows) accepted, the OpenAPI document marking them `readOnly`,
and a change of either option planned and applied as a definition change without DDL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.metamodel.model import Metamodel
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage import revisions
from slatecrm.platform.workflows.worker import Worker

from .defaults import make_app, signed_in
from .packs import install, plan, write_files_pack

#: `reference` is given once, by whoever opens the ticket; `escalation` only the system sets.
TICKET = """\
    kind: entity
    name: ticket
    title_field: subject
    fields:
      subject:
        type: text
        required: true
      reference:
        type: text{reference}
      escalation:
        type: integer{escalation}
      note:
        type: text
    """
READ_ONLY_TICKET = TICKET.format(reference="\n        read_only_after_create: true",
                                 escalation="\n        read_only: true")
PLAIN_TICKET = TICKET.format(reference="", escalation="")

#: Workflows setting both fields: one in the person's own write (before save), one run by a
#: worker after a person changes the note.
URGENT = """\
    kind: workflow
    name: urgent
    entity: ticket
    timing: before_save
    trigger: {kind: created}
    condition: "note = 'urgent'"
    actions:
      - kind: update
        set:
          escalation: "2"
    """
RENUMBER = """\
    kind: workflow
    name: renumber
    entity: ticket
    trigger: {kind: updated, fields: [note]}
    condition: "note = 'renumber'"
    actions:
      - kind: update
        set:
          reference: "concat('R-', subject)"
          escalation: "5"
    """

READ_ONLY_REFUSED = "is read-only for you"
FIXED_REFUSED = "is set when the record is created and cannot be changed afterwards"


def ticket_pack(root: Path, entity: str = READ_ONLY_TICKET, version: str = "1.0.0") -> Path:
    files = {"entities/ticket.yaml": entity, "workflows/urgent.yaml": URGENT,
             "workflows/renumber.yaml": RENUMBER}
    return write_files_pack(root / version, files, name="helpdesk", version=version, requires={})


@dataclass
class Desk:
    """The helpdesk pack installed, an app over it, and a client signed in as an administrator
    (a person: the options bind every role, the administrator's too)."""

    engine: sa.Engine
    app: Any
    http: TestClient

    @property
    def system(self) -> RecordsService:
        """The records service of the app without a user: the system (sample data, the CLI)."""
        records: RecordsService = self.app.state.records
        return records

    def stored(self, record_id: int) -> dict[str, Any]:
        values: dict[str, Any] = self.system.get("ticket", record_id).values
        return values

    def create(self, **values: Any) -> dict[str, Any]:
        made = self.http.post("/api/v1/ticket", json={"subject": "Printer", **values})
        assert made.status_code == 201, made.text
        record: dict[str, Any] = made.json()
        return record

    def patch(self, record: dict[str, Any], **values: Any) -> Any:
        """A person's PATCH of `record` (as created, at its version) through the API."""
        body = {"version": record["version"], **values}
        return self.http.patch(f"/api/v1/ticket/{record['id']}", json=body)


@pytest.fixture
def desk(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry, tmp_path: Path) -> Iterator[Desk]:
    install(engine, registry, ticket_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield Desk(engine, app, http)
    app.state.engine.dispose()


# --- pack files -------------------------------------------------------------------------------------
#: The start of an entity file; the lines each case adds come after its line 5.
BAD_TICKET = "kind: entity\nname: ticket\nfields:\n  subject:\n    type: text\n"


@pytest.mark.parametrize(("fields", "line", "message"), [
    ("  reference:\n    type: text\n    read_only: 'yes'\n", 8, "expected true or false, got text 'yes'"),
    ("  reference:\n    type: text\n    read_only_after_create: 1\n", 8,
     "expected true or false, got the number 1"),
    ("  reference:\n    type: text\n    read_only: true\n    read_only_after_create: true\n", 9,
     "read_only already keeps people from setting the field"),
    ("  total:\n    type: integer\n    formula: '1 + 1'\n    read_only: true\n", 9,
     "read_only: a field with a formula is computed"),
    ("  number:\n    type: auto_number\n    read_only_after_create: true\n", 8,
     "read_only_after_create: a field of type auto_number is set by the system"),
])
def test_a_bad_read_only_option_is_refused_at_its_line(engine: sa.Engine, registry: FieldTypeRegistry,
                                                       tmp_path: Path, fields: str, line: int,
                                                       message: str) -> None:
    folder = write_files_pack(tmp_path, {"entities/ticket.yaml": BAD_TICKET + fields}, name="helpdesk",
                              requires={})
    with pytest.raises(DefinitionError) as refused:
        plan(engine, registry, folder)
    found = [(p.location.file, p.location.line, p.message) for p in refused.value.problems]
    at_lines = [(file, at) for file, at, said in found if message in said]
    assert at_lines == [("entities/ticket.yaml", line)], found


def test_the_options_are_stored_with_the_revision_and_shown_by_the_api(desk: Desk) -> None:
    with desk.engine.connect() as conn:
        stored = revisions.current(conn)
    assert stored is not None
    ticket = stored.metamodel.entity("ticket")
    assert ticket is not None
    flags = {f.name: (f.read_only, f.read_only_after_create) for f in ticket.active_fields}
    assert flags == {"subject": (False, False), "reference": (False, True), "escalation": (True, False),
                     "note": (False, False)}
    assert Metamodel.from_dict(stored.metamodel.as_dict()) == stored.metamodel
    meta = desk.http.get("/api/v1/meta").json()
    fields = {f["name"]: f for e in meta["entities"] if e["name"] == "ticket" for f in e["fields"]}
    assert fields["escalation"]["read_only"] is True and fields["reference"]["read_only_after_create"] is True
    assert "read_only" not in fields["note"]  # stored only when set: older revisions read the same


# --- the API ----------------------------------------------------------------------------------------
def test_the_api_refuses_a_person_setting_a_read_only_field(desk: Desk) -> None:
    refused = desk.http.post("/api/v1/ticket", json={"subject": "Printer", "escalation": 3})
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"escalation": [READ_ONLY_REFUSED]}
    assert desk.http.get("/api/v1/ticket").json()["data"] == []
    made = desk.create(escalation=None)  # blank on a new record: nothing set, accepted
    assert made["escalation"] is None
    changed = desk.patch(made, escalation=4)
    assert changed.status_code == 422
    assert changed.json()["errors"] == {"escalation": [READ_ONLY_REFUSED]}
    # Sent back unchanged (a client echoing the record it read): accepted, as for a role's field.
    echoed = desk.patch(made, escalation=None, note="seen")
    assert echoed.status_code == 200, echoed.text
    assert desk.stored(made["id"])["escalation"] is None and desk.stored(made["id"])["note"] == "seen"


def test_a_read_only_after_create_field_is_given_on_create_and_never_changed(desk: Desk) -> None:
    made = desk.create(reference="T-1")
    assert made["reference"] == "T-1"
    changed = desk.patch(made, reference="T-2")
    assert changed.status_code == 422
    assert changed.json()["errors"] == {"reference": [FIXED_REFUSED]}
    cleared = desk.patch(made, reference=None)
    assert cleared.status_code == 422 and "reference" in cleared.json()["errors"]
    echoed = desk.patch(made, reference="T-1", note="seen")
    assert echoed.status_code == 200, echoed.text
    assert desk.stored(made["id"])["reference"] == "T-1"


def test_a_bulk_edit_of_either_field_is_refused_for_every_record(desk: Desk) -> None:
    ids = [desk.create(reference=f"T-{i}")["id"] for i in range(2)]
    for name, value in (("escalation", "3"), ("reference", "T-9")):
        answer = desk.http.post("/e/ticket/bulk", data={"ids": [str(i) for i in ids], "action": "set",
                                                        "field": name, "value": value},
                                headers={"Accept": "application/json"})
        assert answer.status_code == 200 and answer.json()["done"] == [], answer.text
        refused = answer.json()["refused"]
        assert set(refused) == {str(i) for i in ids} and name in refused[str(ids[0])], refused
    assert [desk.stored(i)["reference"] for i in ids] == ["T-0", "T-1"]
    assert {desk.stored(i)["escalation"] for i in ids} == {None}


# --- the system -------------------------------------------------------------------------------------
def test_the_system_sets_and_changes_both_fields(desk: Desk) -> None:
    made = desk.system.create("ticket", {"subject": "Import", "reference": "IMP-1", "escalation": 7})
    assert (made.values["reference"], made.values["escalation"]) == ("IMP-1", 7)
    changed = desk.system.update("ticket", made.id, {"reference": "IMP-2", "escalation": 8},
                                 version=made.version)
    assert (changed.values["reference"], changed.values["escalation"]) == ("IMP-2", 8)


def test_workflows_set_both_fields_in_and_after_a_persons_write(desk: Desk) -> None:
    urgent = desk.create(note="urgent")
    assert urgent["escalation"] == 2  # the before-save workflow, in the person's own write
    made = desk.create(reference="T-1")
    changed = desk.patch(made, note="renumber")
    assert changed.status_code == 200, changed.text
    assert Worker(desk.engine, desk.system).run_until_idle() >= 1
    stored = desk.stored(made["id"])
    assert (stored["reference"], stored["escalation"]) == ("R-Printer", 5)


# --- forms ------------------------------------------------------------------------------------------
def test_forms_show_the_fields_as_text_and_a_form_post_cannot_change_them(desk: Desk) -> None:
    new = desk.http.get("/e/ticket/new").text
    assert 'name="reference"' in new  # given on create
    assert 'id="f-escalation"' in new and 'name="escalation"' not in new and "(read-only)" in new
    made = desk.create(reference="T-1", note="first")
    edit = desk.http.get(f"/e/ticket/{made['id']}/edit").text
    for name in ("reference", "escalation"):
        assert f'id="f-{name}"' in edit and f'name="{name}"' not in edit, name
    assert 'value="T-1"' in edit and "(set when created)" in edit
    assert 'name="note"' in edit
    saved = desk.http.post(f"/e/ticket/{made['id']}/edit", follow_redirects=False, data={
        "version": str(made["version"]), "_fields": ["note", "reference", "escalation"],
        "note": "second", "reference": "T-2", "escalation": "9"})
    assert saved.status_code == 303, saved.text
    stored = desk.stored(made["id"])
    assert (stored["note"], stored["reference"], stored["escalation"]) == ("second", "T-1", None)
    created = desk.http.post("/e/ticket/new", follow_redirects=False, data={
        "subject": "Form", "reference": "F-1", "escalation": "9"})
    assert created.status_code == 303, created.text
    record_id = int(created.headers["location"].rsplit("/", 1)[1])
    assert (desk.stored(record_id)["reference"], desk.stored(record_id)["escalation"]) == ("F-1", None)
    listing = desk.http.get("/e/ticket").text  # the bulk edit offers neither
    assert 'value="note"' in listing
    assert 'value="reference"' not in listing and 'value="escalation"' not in listing


# --- OpenAPI ----------------------------------------------------------------------------------------
def test_the_openapi_document_marks_them_read_only_where_a_request_may_not_set_them(desk: Desk) -> None:
    schemas = desk.http.get("/api/v1/openapi.json").json()["components"]["schemas"]

    def read_only(schema: str, name: str) -> bool:
        return bool(schemas[schema]["properties"][name].get("readOnly"))

    assert [read_only("Ticket", n) for n in ("escalation", "reference", "note")] == [True, False, False]
    assert [read_only("TicketInput", n) for n in ("escalation", "reference", "note")] == [True, False, False]
    assert [read_only("TicketPatch", n) for n in ("escalation", "reference", "note")] == [True, True, False]


# --- plans ------------------------------------------------------------------------------------------
def test_changing_the_options_is_a_field_change_applied_without_ddl(engine: sa.Engine, db_url: str,
                                                                    registry: FieldTypeRegistry,
                                                                    tmp_path: Path) -> None:
    install(engine, registry, ticket_pack(tmp_path, PLAIN_TICKET, "1.0.0"))
    app = make_app(db_url)
    try:
        records: RecordsService = app.state.records
        kept = records.create("ticket", {"subject": "Before", "reference": "B-1"})
    finally:
        app.state.engine.dispose()
    upgrade = ticket_pack(tmp_path, READ_ONLY_TICKET, "1.1.0")
    shown = CliRunner().invoke(main, ["pack", "plan", str(upgrade), "--database", db_url])
    assert shown.exit_code == 0, shown.output
    for name in ("reference", "escalation"):
        assert f"change definition of ticket.{name} (no schema change)" in shown.output, shown.output
    installation = plan(engine, registry, upgrade)
    changes = [(c.action, c.field, c.sql) for c in installation.plan.changes if c.entity == "ticket"]
    assert sorted(changes, key=str) == [("change field", "escalation", ()), ("change field", "reference", ())]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        installer.install(engine, installation, author="test")
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    ddl = [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP"))]
    assert ddl == [] and statements
    app = make_app(db_url)  # the new revision: the options hold at once
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            refused = http.patch(f"/api/v1/ticket/{kept.id}",
                                 json={"version": kept.version, "reference": "B-2"})
            assert refused.status_code == 422 and refused.json()["errors"] == {"reference": [FIXED_REFUSED]}
    finally:
        app.state.engine.dispose()


# --- another pack's field, made read-only by an extension ------------------------------------------
LOCK_NOTE = """\
    kind: extension
    entity: ticket
    field_overrides:
      note:
        read_only: true
      reference:
        read_only_after_create: false
    """


def test_an_extension_makes_another_packs_field_read_only_or_lifts_it(engine: sa.Engine, db_url: str,
                                                                      registry: FieldTypeRegistry,
                                                                      tmp_path: Path) -> None:
    """`field_overrides` sets the options on a field a required pack defined (here `note`
    locked, `reference` made editable again): the organisation's own read-only fields."""
    extension = write_files_pack(tmp_path / "ext", {"extensions/ticket.yaml": LOCK_NOTE}, name="desk-rules",
                                 requires={"helpdesk": "^1.0.0"})
    install(engine, registry, ticket_pack(tmp_path), extension)
    app = make_app(db_url)
    try:
        with signed_in(app, raise_server_exceptions=False) as http:
            refused = http.post("/api/v1/ticket", json={"subject": "Printer", "note": "mine"})
            assert refused.status_code == 422, refused.text
            assert READ_ONLY_REFUSED in str(refused.json()["errors"]["note"])
            made = http.post("/api/v1/ticket", json={"subject": "Printer", "reference": "T-1"})
            assert made.status_code == 201, made.text
            record = made.json()
            changed = http.patch(f"/api/v1/ticket/{record['id']}",
                                 json={"version": record["version"], "reference": "T-2"})
            assert changed.status_code == 200, changed.text
        system: RecordsService = app.state.records
        assert system.update("ticket", record["id"], {"note": "set by the system"},
                             version=changed.json()["version"]).values["note"] == "set by the system"
    finally:
        app.state.engine.dispose()


@pytest.mark.parametrize(("override", "line", "message"), [
    ("  reference:\n    read_only: true\n", 5, "give only one of read_only and read_only_after_create"),
    ("  total:\n    read_only_after_create: true\n", 5, "a field with a formula is computed"),
    ("  note:\n    read_only: maybe\n", 5, "expected true or false"),
])
def test_a_read_only_override_is_checked_at_its_line(engine: sa.Engine, registry: FieldTypeRegistry,
                                                     tmp_path: Path, override: str, line: int,
                                                     message: str) -> None:
    base = READ_ONLY_TICKET.replace("      note:\n", "      total:\n        type: integer\n"
                                                    "        formula: '1 + 1'\n      note:\n")
    text = "kind: extension\nentity: ticket\nfield_overrides:\n" + override
    extension = write_files_pack(tmp_path / "ext", {"extensions/ticket.yaml": text}, name="desk-rules",
                                 requires={"helpdesk": "^1.0.0"})
    with pytest.raises(DefinitionError) as refused:
        plan(engine, registry, ticket_pack(tmp_path, base), extension)
    found = [(p.location.file, p.location.line, p.message) for p in refused.value.problems]
    at_lines = [(file, at) for file, at, said in found if message in said]
    assert at_lines == [("extensions/ticket.yaml", line)], found


def test_an_administrator_locks_a_packs_field_through_the_admin_api(client: TestClient) -> None:
    """The organisation's layer: plan → confirm of `read_only` on a field the crm-core pack
    defines; people are then refused, and the lock is lifted the same way."""
    from .test_api_live_editing import confirmed

    locked = confirmed(client, "PUT", "/api/v1/admin/entities/account/fields/website", {"read_only": True})
    assert [c["action"] for c in locked["plan"]["changes"]] == ["change field"]
    refused = client.post("/api/v1/account", json={"name": "Acme", "website": "https://acme.example"})
    assert refused.status_code == 422, refused.text
    assert READ_ONLY_REFUSED in str(refused.json()["errors"]["website"])
    confirmed(client, "PUT", "/api/v1/admin/entities/account/fields/website", {"read_only": False})
    made = client.post("/api/v1/account", json={"name": "Acme", "website": "https://acme.example"})
    assert made.status_code == 201, made.text
