"""The pack the tests of the rich_text, json and tags field types share: an `article` with a
title, a rich text `body`, a json `specs` checked against a schema, and free `labels`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry
from slatecrm.platform.storage import revisions
from slatecrm.platform.storage.runtime import build_runtime

from .defaults import make_app, signed_in
from .packs import install, write_pack
from .rules.strategies import NOW

SPECS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["size"],
    "additionalProperties": False,
    "properties": {
        "size": {"type": "integer", "minimum": 1},
        "colours": {"type": "array", "items": {"type": "string", "maxLength": 20}},
        "dimensions": {"type": "object", "properties": {"width": {"type": "number"}}},
    },
}

#: A schema with a reference (which the API's document cannot hold as it is).
PARTS_SCHEMA: dict[str, Any] = {"$defs": {"part": {"type": "string", "minLength": 1}},
                                "type": "array", "items": {"$ref": "#/$defs/part"}}


def article(**fields: Any) -> dict[str, Any]:
    return {"label": "Article", "label_plural": "Articles", "title_field": "title",
            "fields": {"title": {"type": "text", "required": True},
                       "body": {"type": "rich_text", "label": "Body"},
                       "specs": {"type": "json", "label": "Specs", "schema": SPECS_SCHEMA},
                       "labels": {"type": "tags", "label": "Labels", "max_items": 5, "max_length": 20},
                       "parts": {"type": "json", "schema": PARTS_SCHEMA},
                       **fields}}


def articles_pack(root: Path, version: str = "1.0.0", **fields: Any) -> Path:
    return write_pack(root, "press", version, {"article": article(**fields)})


def insert(engine: sa.Engine, registry: FieldTypeRegistry, values: list[dict[str, Any]]) -> None:
    """Rows written straight into the current revision's table (as an older version left them)."""
    with engine.begin() as conn:
        number, metamodel = revisions.current_metamodel(conn)
        table = build_runtime(number, metamodel, registry).tables["article"]
        conn.execute(table.insert(), [{"created_at": NOW, "updated_at": NOW, **v} for v in values])


def column_values(engine: sa.Engine, column: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(f"SELECT {column} FROM x_article ORDER BY id")).scalars())


@pytest.fixture
def press(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
          tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, articles_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def make(client: TestClient, **values: object) -> int:
    response = client.post("/api/v1/article", json={"title": "T", **values})
    assert response.status_code == 201, response.text
    made: int = response.json()["id"]
    return made


def patch(client: TestClient, record: int, **values: object) -> Any:
    version = client.get(f"/api/v1/article/{record}").json()["version"]
    return client.patch(f"/api/v1/article/{record}", json={**values, "version": version})
