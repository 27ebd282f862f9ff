"""A field type from an installed plugin works in every layer at once.

The `color` type comes from tests/plugins/slatecrm_example_plugin, a separate package
registered through the `slatecrm` entry point (installed by `make install`). The platform
never names it: these tests use it through the API, the pages, search, filters (list and
rule language), OpenAPI and CSV export, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from slatecrm.metamodel.fieldtypes import FieldTypeRegistry

from .defaults import make_app, plugin_manager, signed_in
from .packs import install, write_pack

PALETTE = {
    "label": "Swatch", "label_plural": "Swatches", "title_field": "name",
    "fields": {
        "name": {"type": "text", "required": True},
        "shade": {"type": "color", "label": "Shade"},
        "notes": {"type": "long_text"},
    },
    "validations": [{"name": "no_black", "condition": 'shade != "#000000"',
                     "message": "black is not a shade", "field": "shade"}],
}


def palette_pack(root: Path) -> Path:
    return write_pack(root, "paint", "1.0.0", {"swatch": PALETTE})


@pytest.fixture
def paint(engine: sa.Engine, db_url: str, registry: FieldTypeRegistry,
          tmp_path: Path) -> Iterator[TestClient]:
    install(engine, registry, palette_pack(tmp_path))
    app = make_app(db_url)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


def make(client: TestClient, **values: object) -> int:
    response = client.post("/api/v1/swatch", json=values)
    assert response.status_code == 201, response.text
    created: int = response.json()["id"]
    return created


def test_the_plugin_is_found_through_the_entry_point(registry: FieldTypeRegistry) -> None:
    names = {name for name, _ in plugin_manager().list_name_plugin()}
    assert "example_colour" in names
    assert "color" in registry and type(registry["color"]).__module__ == "slatecrm_example_plugin"


def test_api_coerces_validates_and_documents_the_type(paint: TestClient) -> None:
    made = make(paint, name="Sky", shade="ABC")
    assert paint.get(f"/api/v1/swatch/{made}").json()["shade"] == "#aabbcc"
    bad = paint.post("/api/v1/swatch", json={"name": "Mud", "shade": "brown"})
    assert bad.status_code == 422 and "shade" in bad.text and "'brown' is not a colour" in bad.text
    black = paint.post("/api/v1/swatch", json={"name": "Night", "shade": "#000"})
    assert black.status_code == 422 and "black is not a shade" in black.text  # a rule reads it
    schema = paint.get("/api/v1/openapi.json").json()["components"]["schemas"]
    shade = schema["Swatch"]["properties"]["shade"]
    assert shade["title"] == "Shade" and {"type": "string", "pattern": "^#[0-9a-f]{6}$"}.items() <= \
        next(s for s in shade.get("anyOf", [shade]) if s.get("type") == "string").items()


def test_search_filters_and_csv_export(paint: TestClient) -> None:
    sky, grass = make(paint, name="Sky", shade="#87ceeb"), make(paint, name="Grass", shade="#00ff00")
    make(paint, name="Blank")

    def ids(**params: str) -> list[int]:
        response = paint.get("/api/v1/swatch", params=params)
        assert response.status_code == 200, response.text
        return sorted(r["id"] for r in response.json()["data"])
    assert ids(q="87CEEB".lower()) == [sky]  # searchable, as the type says
    assert ids(shade="0F0") == [grass]  # a list filter reads the text with the type
    assert ids(filter='shade = "#87ceeb" or shade = "#00ff00"') == [sky, grass]  # rule language
    assert ids(filter='shade starts_with "#00"') == [grass]
    assert ids(sort="-shade", shade__blank="false") == [sky, grass]
    rows = list(csv.reader(io.StringIO(paint.get("/e/swatch/export.csv?sort=name").text)))
    assert rows[0] == ["id", "Name", "Shade", "Notes"]
    assert [r[1:3] for r in rows[1:]] == [["Blank", ""], ["Grass", "#00ff00"], ["Sky", "#87ceeb"]]


def test_form_widget_list_cell_and_record_page(paint: TestClient) -> None:
    form = paint.get("/e/swatch/new").text
    assert 'class="color-widget"' in form and 'placeholder="#rrggbb"' in form  # the plugin's template
    made = paint.post("/e/swatch/new", data={"name": "Rose", "shade": "#FF007F"}, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = paint.get(made.headers["location"]).text
    assert "<code>#ff007f</code>" in page and "background: #ff007f" in page  # its value template
    listed = paint.get("/e/swatch").text
    assert "<code>#ff007f</code>" in listed
    refused = paint.post("/e/swatch/new", data={"name": "Mud", "shade": "brown"})
    assert refused.status_code == 422 and "is not a colour" in refused.text
    assert 'value="brown"' in refused.text  # nothing typed is lost
    edit = paint.get(made.headers["location"] + "/edit").text
    assert 'value="#ff007f"' in edit and "background: #ff007f" in edit
