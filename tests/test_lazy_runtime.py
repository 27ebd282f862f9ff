"""A revision's tables and compiled entities are built on first use, one entity at a time,
once however many threads ask; what needs every entity still sees them all."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.records.service import RecordsService
from slatecrm.platform.storage.once import LazyMapping
from slatecrm.platform.storage.runtime import RuntimeHolder

from .pack_templates import PackTemplates

#: A failure detector for the threads below, not a timing assertion.
STUCK = 60


def test_a_request_builds_only_the_entities_it_reads(
        engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates) -> None:
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    writer = RecordsService(engine, RuntimeHolder(engine, registry), registry)
    acme = writer.create("account", {"name": "Acme"})
    ada = writer.create("contact", {"name": {"first": "Ada", "last": "Lovelace"}, "account": acme.id})

    holder = RuntimeHolder(engine, registry)
    records = RecordsService(engine, holder, registry)
    snapshot = records.snapshot()
    runtime = holder.current()
    assert gc.isenabled()  # reading the revision pauses the cycle collector, and only then
    assert [name for name in runtime.tables if runtime.tables.is_built(name)] == []

    read = records.get("contact", ada.id)
    assert read.titles["account"] == "Acme" and read.values["name"]["last"] == "Lovelace"
    contact = runtime.metamodel.entity("contact")
    assert contact is not None
    wanted = {"contact"} | {f.target for f in contact.active_fields if f.target}
    assert {name for name in runtime.tables if runtime.tables.is_built(name)} == wanted
    assert len(runtime.tables) > len(wanted)  # the rest are still to build

    # Which entities refer to the account is known without compiling them all ...
    assert ("contact", "account") in records.reverse_references("account")
    assert {name for name in runtime.tables if runtime.tables.is_built(name)} == wanted
    # ... and what needs every entity gets every one.
    active = {e.name for e in runtime.metamodel.active_entities}
    assert {ce.name for ce in snapshot.entities.values()} == active
    assert {t.name for t in runtime.metadata.tables.values()} >= {f"x_{name}" for name in active}


def asked_at_once(ask: Callable[[], object], release: threading.Event, threads: int) -> list[object]:
    """What `threads` threads got from `ask`, all of them asking before `release` is set
    (the build each one may start waits for it), so they ask at the same time."""
    asking = threading.Semaphore(0)
    seen: list[object] = []

    def one() -> None:
        asking.release()
        seen.append(ask())

    started = [threading.Thread(target=one) for _ in range(threads)]
    for thread in started:
        thread.start()
    for _ in started:
        assert asking.acquire(timeout=STUCK)
    release.set()
    for thread in started:
        thread.join(STUCK)
    return seen


def test_threads_asking_for_the_same_value_at_once_get_one_build() -> None:
    built: list[str] = []
    release = threading.Event()

    def build(key: str) -> object:
        built.append(key)
        release.wait(STUCK)
        return object()

    values = LazyMapping(["account"], build)
    seen = asked_at_once(lambda: values["account"], release, 8)
    assert built == ["account"]
    assert len(seen) == 8 and all(value is seen[0] for value in seen)


def test_a_slow_build_holds_up_only_those_asking_for_the_same_key() -> None:
    release = threading.Event()

    def build(key: str) -> str:
        if key == "slow":
            release.wait(STUCK)
        return key.upper()

    values = LazyMapping(["slow", "quick"], build)
    slow = threading.Thread(target=lambda: values["slow"])
    slow.start()
    try:
        answered: list[str] = []
        quick = threading.Thread(target=lambda: answered.append(values["quick"]))
        quick.start()
        quick.join(STUCK)
        assert answered == ["QUICK"] and not values.is_built("slow")
    finally:
        release.set()
        slow.join(STUCK)
    assert values["slow"] == "SLOW"
    assert "other" not in values and list(values) == ["slow", "quick"]


def test_a_page_compiles_the_entities_it_shows_and_the_menu_still_names_them_all(client: TestClient) -> None:
    page = client.get("/e/account")
    assert page.status_code == 200
    records: RecordsService = client.app.state.records  # type: ignore[attr-defined]
    snapshot = records.snapshot()
    compiled = snapshot.entities
    assert isinstance(compiled, LazyMapping)
    assert compiled.is_built("account")
    untouched = [name for name in compiled if not compiled.is_built(name)]
    assert untouched  # e.g. activities: nothing on an account list reads them
    for name in untouched:
        entity = snapshot.metamodel.entity(name)
        assert entity is not None and f'href="/e/{name}"' in page.text  # in the menu all the same


def test_threads_needing_an_entitys_rules_at_once_compile_them_once(
        engine: sa.Engine, registry: FieldTypeRegistry, pack_templates: PackTemplates,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Request threads share a revision's rules: the validations, formulas and defaults of
    an entity are compiled by the first thread that needs them, the others get that result."""
    pack_templates.copy_to(engine, registry, "crm-core", "sales")
    rules = RecordsService(engine, RuntimeHolder(engine, registry), registry).snapshot().rules
    compile_entity = type(rules)._compile_entity
    compiled: list[str] = []
    release = threading.Event()

    def slow_compile(self: object, name: str) -> object:
        compiled.append(name)
        release.wait(STUCK)
        return compile_entity(self, name)  # type: ignore[arg-type]

    monkeypatch.setattr(type(rules), "_compile_entity", slow_compile)
    seen = asked_at_once(lambda: rules.entity("contact"), release, 6)
    assert compiled == ["contact"]
    assert len(seen) == 6 and all(value is seen[0] for value in seen)
