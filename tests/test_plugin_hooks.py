"""Every hook, used by a plugin object registered on a fresh plugin manager, seen through the
surfaces a user has: the HTTP API and pages, and the CLI. On SQLite and PostgreSQL.

The plugin adds `slugify(text)` to the rule language (a validation rule, a formula and a
`?filter=` use it, so its Python and its SQL forms both run), watches record events,
adds a route with its own template, overrides a built-in route and a page, and marks the
app at start-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.testclient import TestClient

from slatecrm.metamodel.rules.functions import RuleFunction
from slatecrm.platform import installer
from slatecrm.platform.cli import main
from slatecrm.platform.records.errors import ValidationFailed
from slatecrm.platform.web.templating import render
from slatecrm.plugins.hookspecs import hookimpl
from slatecrm.plugins.manager import field_types, make_plugin_manager, rule_functions

from .defaults import make_app, signed_in
from .packs import write_pack


class Slug(FunctionElement[str]):
    """slugify's SQL: the databases spell "trim spaces" differently, so one rule per dialect."""

    inherit_cache = True
    name = "slug"


@compiles(Slug, "sqlite")
def _slug_sqlite(element: Slug, compiler: SQLCompiler, **kw: Any) -> str:
    return f"replace(lower(trim({compiler.process(element.clauses, **kw)}, ' ')), ' ', '-')"


@compiles(Slug, "postgresql")
def _slug_postgresql(element: Slug, compiler: SQLCompiler, **kw: Any) -> str:
    return f"replace(lower(btrim({compiler.process(element.clauses, **kw)}, ' ')), ' ', '-')"


SLUGIFY = RuleFunction(
    name="slugify", parameters=("text",), returns="text",
    python=lambda text: text.strip(" ").lower().replace(" ", "-"),
    sql=lambda args, dialect: Slug(*args),
    description="lower case, spaces to dashes",
)


class SlugPlugin:
    """Uses every hook; remembers what it saw."""

    def __init__(self, templates: Path) -> None:
        self.templates = templates
        self.saved: list[tuple[Any, ...]] = []
        self.started: list[Starlette] = []

    @hookimpl
    def slatecrm_rule_functions(self) -> list[RuleFunction]:
        return [SLUGIFY]

    @hookimpl
    def slatecrm_before_save(self, entity: str, action: str, values: dict[str, Any],
                             previous: Any, connection: sa.Connection) -> None:
        if entity != "article":
            return
        if values.get("name") == "forbidden":
            raise ValidationFailed({"name": ["the plugin refuses this name"]})
        if values.get("slug") == "auto":  # the plugin's own convention
            values["slug"] = SLUGIFY.python(values["name"])
        # Same transaction: what the write sees is visible here.
        assert connection.in_transaction()
        if action == "update":
            assert previous is not None and "name" in previous

    @hookimpl
    def slatecrm_record_saved(self, entity: str, record_id: int, action: str, version: int,
                              changes: dict[str, Any], user: int | None) -> None:
        self.saved.append((entity, record_id, action, version, changes))

    @hookimpl
    def slatecrm_routes(self) -> list[BaseRoute]:
        async def hello(request: Request) -> Response:
            name = request.query_params.get("name", "world")
            return render(request, "hello", {"name": name}, twin={"hello": name})

        async def favicon(request: Request) -> Response:
            return Response(b"icon", media_type="image/x-icon")
        return [Route("/hello", hello), Route("/favicon.ico", favicon)]

    @hookimpl
    def slatecrm_template_dirs(self) -> list[Path]:
        return [self.templates]

    @hookimpl
    def slatecrm_startup(self, app: Starlette) -> None:
        self.started.append(app)


class FailingAfterCommit:
    @hookimpl
    def slatecrm_record_saved(self, record_id: int) -> None:
        raise RuntimeError(f"mail server down for {record_id}")


def articles_pack(root: Path) -> Path:
    return write_pack(root, "press", "0.1.0", {"article": {
        "fields": {
            "name": {"type": "text", "required": True},
            "slug": {"type": "text"},
            "handle": {"type": "text", "formula": "slugify(name)"},
        },
        "validations": [{"name": "slug_matches", "condition": "slug is blank or slug = slugify(name)",
                         "message": "the slug must be the name in lower case with dashes",
                         "field": "slug"}],
    }, "remark": {"fields": {
        "text": {"type": "text", "required": True},
        "article": {"type": "reference", "target": "article", "on_delete": "cascade"},
        "echo": {"type": "reference", "target": "article", "on_delete": "set_null"},
    }}})


def write_templates(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "hello.html").write_text('<p id="hello">Hello {{ name }} from a plugin</p>')
    (folder / "record-article.html").write_text(
        '{% extends "record.html" %}{% block main %}<p id="plugin-page">Article page</p>'
        '{{ super() }}{% endblock %}')
    return folder


@pytest.fixture
def plugin(tmp_path: Path) -> SlugPlugin:
    return SlugPlugin(write_templates(tmp_path / "templates"))


@pytest.fixture
def manager(plugin: SlugPlugin) -> pluggy.PluginManager:
    return make_plugin_manager(plugin, entry_points=False)


@pytest.fixture
def site(engine: sa.Engine, db_url: str, manager: pluggy.PluginManager,
         tmp_path: Path) -> Iterator[TestClient]:
    registry = field_types(manager)
    installer.create_system_tables(engine)
    installation = installer.plan_install(
        engine, installer.load_packs([str(articles_pack(tmp_path))], registry), registry,
        functions=rule_functions(manager))
    installer.install(engine, installation, author="test")
    app = make_app(db_url, manager)
    with signed_in(app, raise_server_exceptions=False) as http:
        yield http
    app.state.engine.dispose()


# --- rule functions -------------------------------------------------------------------------
def test_plugin_function_in_a_validation_rule(site: TestClient) -> None:
    made = site.post("/api/v1/article", json={"name": "Hello World", "slug": "hello-world"})
    assert made.status_code == 201, made.text
    refused = site.post("/api/v1/article", json={"name": "Hello World", "slug": "hello"})
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"slug": ["the slug must be the name in lower case with dashes"]}
    # The same rule on an update, through the record's form as well.
    record = made.json()
    changed = site.patch(f"/api/v1/article/{record['id']}",
                         json={"name": "Other Name", "version": record["version"]})
    assert changed.status_code == 422
    assert "slug" in changed.json()["errors"]


def test_plugin_function_in_a_formula(site: TestClient) -> None:
    made = site.post("/api/v1/article", json={"name": "  Rule Functions  "}).json()
    assert made["handle"] == "rule-functions"


def test_plugin_function_in_a_list_filter(site: TestClient) -> None:
    for name in ("Hello World", "hello world"):
        assert site.post("/api/v1/article", json={"name": name}).status_code == 201
    assert site.post("/api/v1/article", json={"name": "Goodbye", "slug": "goodbye"}).status_code == 201

    def names(condition: str) -> list[str]:
        found = site.get("/api/v1/article", params={"filter": condition, "sort": "id"})
        assert found.status_code == 200, found.text
        return [r["name"] for r in found.json()["data"]]

    assert names('slugify(name) = "hello-world"') == ["Hello World", "hello world"]
    assert names('slugify(name) != handle') == []
    # Null in, null out, in SQL as in Python: a blank slug is neither equal nor unequal.
    assert names('not (slugify(slug) = "zzz")') == ["Goodbye"]
    assert names("slugify(slug) is blank") == ["Hello World", "hello world"]
    # A constant argument is computed once, in Python, and bound.
    assert names('slug = slugify(" GoodBye ")') == ["Goodbye"]


def test_plugin_function_wrongly_called_is_a_clear_400(site: TestClient) -> None:
    wrong = site.get("/api/v1/article", params={"filter": 'slugify(1) = "a"'})
    assert wrong.status_code == 400
    assert "slugify() needs a text" in json.dumps(wrong.json())
    unknown = site.get("/api/v1/article", params={"filter": 'slugifi(name) = "a"'})
    assert unknown.status_code == 400
    assert "did you mean 'slugify'" in json.dumps(unknown.json())


def test_without_the_plugin_the_function_is_unknown(tmp_path: Path, manager: pluggy.PluginManager) -> None:
    pack = str(articles_pack(tmp_path))
    bare = CliRunner().invoke(main, ["pack", "validate", pack], obj=make_plugin_manager(entry_points=False))
    assert bare.exit_code == 1
    assert "unknown function 'slugify'" in bare.output
    with_plugin = CliRunner().invoke(main, ["pack", "validate", pack], obj=manager)
    assert with_plugin.exit_code == 0, with_plugin.output
    assert "press 0.1.0: valid" in with_plugin.output


def test_a_plugin_function_cannot_take_a_language_name() -> None:
    with pytest.raises(ValueError, match="the rule language already uses this name"):
        RuleFunction("lower", ("text",), "text", str.lower, lambda args, dialect: args[0])
    with pytest.raises(ValueError, match="'money' is not a type"):
        RuleFunction("tax", ("money",), "number", abs, lambda args, dialect: args[0])
    with pytest.raises(ValueError, match="rule function 'slugify' is registered twice"):
        rule_functions(make_plugin_manager(SlugPlugin(Path()), SlugPlugin(Path()), entry_points=False))


# --- record events ----------------------------------------------------------------------------
def test_record_events_after_commit(site: TestClient, plugin: SlugPlugin) -> None:
    made = site.post("/api/v1/article", json={"name": "First Post", "slug": "auto"}).json()
    assert made["slug"] == "first-post"  # filled by the plugin before saving, then validated
    changed = site.patch(f"/api/v1/article/{made['id']}",
                         json={"name": "Second Post", "slug": "second-post", "version": 1}).json()
    assert site.delete(f"/api/v1/article/{made['id']}").status_code == 204
    assert plugin.saved == [
        ("article", made["id"], "create", 1,
         {"name": [None, "First Post"], "slug": [None, "first-post"], "handle": [None, "first-post"]}),
        ("article", made["id"], "update", 2,
         {"name": ["First Post", "Second Post"], "slug": ["first-post", "second-post"],
          "handle": ["first-post", "second-post"]}),
        ("article", made["id"], "delete", 3, {}),
    ]
    assert changed["version"] == 2


def test_every_record_a_delete_touches_is_announced(site: TestClient, plugin: SlugPlugin) -> None:
    article = site.post("/api/v1/article", json={"name": "Parent"}).json()["id"]
    other = site.post("/api/v1/article", json={"name": "Other"}).json()["id"]
    child = site.post("/api/v1/remark", json={"text": "cascaded", "article": article}).json()["id"]
    echo = site.post("/api/v1/remark",
                     json={"text": "nulled", "article": other, "echo": article}).json()["id"]
    plugin.saved.clear()
    assert site.delete(f"/api/v1/article/{article}").status_code == 204
    assert sorted(plugin.saved, key=repr) == sorted([
        ("remark", child, "delete", 2, {}),
        ("remark", echo, "update", 2, {"echo": [article, None]}),
        ("article", article, "delete", 2, {}),
    ], key=repr)


def test_before_save_refusal_writes_nothing(site: TestClient, plugin: SlugPlugin) -> None:
    refused = site.post("/api/v1/article", json={"name": "forbidden"})
    assert refused.status_code == 422
    assert refused.json()["errors"] == {"name": ["the plugin refuses this name"]}
    assert site.get("/api/v1/article").json()["data"] == []
    assert plugin.saved == []  # nothing committed, nothing announced


def test_a_failing_after_commit_plugin_is_logged_and_the_write_stands(
        site: TestClient, manager: pluggy.PluginManager, plugin: SlugPlugin,
        caplog: pytest.LogCaptureFixture) -> None:
    manager.register(FailingAfterCommit())
    with caplog.at_level(logging.ERROR, logger="slatecrm.platform.records.events"):
        made = site.post("/api/v1/article", json={"name": "Still Saved"})
    assert made.status_code == 201
    assert site.get(f"/api/v1/article/{made.json()['id']}").status_code == 200
    assert "mail server down" in caplog.text and "the change is committed" in caplog.text
    assert [s[2] for s in plugin.saved] == ["create"]  # the other plugin still heard of it


# --- routes, templates, startup ------------------------------------------------------------
def test_plugin_route_with_its_own_template(site: TestClient) -> None:
    page = site.get("/hello", params={"name": "<Ada>"})
    assert page.status_code == 200
    assert '<p id="hello">Hello &lt;Ada&gt; from a plugin</p>' in page.text  # autoescaped
    assert site.get("/hello.json", params={"name": "Ada"}).json() == {"hello": "Ada"}


def test_plugin_route_comes_before_the_built_in_ones(site: TestClient) -> None:
    icon = site.get("/favicon.ico")
    assert (icon.status_code, icon.content) == (200, b"icon")
    assert site.get("/api/v1/article").status_code == 200  # the built-in API is there too


def test_plugin_template_overrides_one_entity_page(site: TestClient) -> None:
    made = site.post("/api/v1/article", json={"name": "Overridden"}).json()
    page = site.get(f"/e/article/{made['id']}")
    assert page.status_code == 200
    assert '<p id="plugin-page">Article page</p>' in page.text
    assert "Overridden" in page.text  # the built-in page around it


def test_startup_hook_gets_the_app(site: TestClient, plugin: SlugPlugin) -> None:
    assert plugin.started == [site.app]


class Misconfigured:
    @hookimpl
    def slatecrm_startup(self) -> None:
        raise RuntimeError("slatecrm-press: set PRESS_API_KEY")


def test_a_failing_startup_hook_stops_the_start(tmp_path: Path) -> None:
    manager = make_plugin_manager(Misconfigured(), entry_points=False)
    app = make_app(f"sqlite:///{tmp_path / 'never.db'}", manager)
    with pytest.raises(RuntimeError, match="set PRESS_API_KEY"), TestClient(app):
        pass
    app.state.engine.dispose()


def test_cli_lists_installed_plugins(manager: pluggy.PluginManager) -> None:
    shown = CliRunner().invoke(main, ["plugins", "--json"], obj=manager)
    assert shown.exit_code == 0, shown.output
    [listed] = json.loads(shown.output)
    assert listed["hooks"] == sorted(["slatecrm_before_save", "slatecrm_record_saved",
                                      "slatecrm_routes", "slatecrm_rule_functions", "slatecrm_startup",
                                      "slatecrm_template_dirs"])
    everything = json.loads(CliRunner().invoke(main, ["plugins", "--all", "--json"], obj=manager).output)
    assert {h for p in everything if p["builtin"] for h in p["hooks"]} == {
        "slatecrm_field_types", "slatecrm_routes", "slatecrm_template_dirs"}
