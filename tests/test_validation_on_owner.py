"""A validation may show its message on `owner`, the system field a person sets: the pack
validates, and the API reports the refusal on `owner` (SQLite and PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .defaults import make_app, signed_in
from .packs import install

CASE = Path(__file__).parent / "data" / "bad_packs" / "validation-unknown-field"


def test_a_validation_on_owner_reports_on_owner(engine: sa.Engine, db_url: str,
                                                registry: FieldTypeRegistry, tmp_path: Path) -> None:
    pack = shutil.copytree(CASE, tmp_path / "visits", ignore=shutil.ignore_patterns("expected.txt"))
    visit = pack / "entities" / "visit.yaml"
    visit.write_text(visit.read_text().split("  - name: has_site")[0])  # only the owner rule
    install(engine, registry, pack)
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        # Owner left blank on purpose (without it, the signed-in user would own the visit).
        refused = http.post("/api/v1/visit", json={"site": "Depot", "owner": None})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"] == {"owner": ["Every visit needs an owner"]}
    app.state.engine.dispose()
