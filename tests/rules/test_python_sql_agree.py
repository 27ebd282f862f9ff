"""The Python closure and the SQL filter select exactly the same records, nulls included,
on SQLite and PostgreSQL, over thousands of generated expressions and records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from slatecrm.metamodel.rules import RuleContext, check, compile_python, pretty
from slatecrm.metamodel.rules.functions import RuleFunction, RuleFunctions
from slatecrm.platform.records.compiled import compile_entities
from slatecrm.platform.records.rulesql import SqlCompiler
from slatecrm.platform.storage.engine import create_engine, text_in_code_point_order
from slatecrm.platform.storage.runtime import RuntimeHolder

from .. import conftest
from ..defaults import field_types
from ..packs import install
from .sample import sample_pack
from .strategies import NOW, booleans, company_values, deal_values

CONTEXT = RuleContext(now=NOW, user_id=1, user_roles=("sales",))


class Bench:
    """One installed sample database, shared by every example of the module."""

    def __init__(self, url: str, root: Path):
        self.registry = field_types()
        self.engine = create_engine(url)
        install(self.engine, self.registry, sample_pack(root))
        runtime = RuntimeHolder(self.engine, self.registry).current()
        self.metamodel = runtime.metamodel
        self.compiled = compile_entities(runtime.metamodel.entities, runtime.tables, self.registry)
        self.sql = SqlCompiler(runtime.tables, self.engine.dialect.name, self.registry,
                               text_in_code_point_order(self.engine))  # starts_with as a range where exact

    def load(self, companies: list[dict[str, Any]], deals: list[dict[str, Any]]) -> None:
        deal, company = self.compiled["deal"], self.compiled["company"]
        now = NOW
        with self.engine.begin() as conn:
            conn.execute(deal.table.delete())
            conn.execute(company.table.update().values(parent=None))
            conn.execute(company.table.delete())
            for index, values in enumerate(companies, start=1):
                row = {"id": index, "created_at": now, "updated_at": now, "version": 1}
                for name, field in company.fields.items():
                    row.update(field.to_row(values.get(name)))
                row["parent"] = None
                conn.execute(company.table.insert().values(row))
            for index in range(1, len(companies) + 1):  # each company's parent: the previous one
                conn.execute(company.table.update().where(company.table.c.id == index).values(
                    parent=index - 1 if index > 1 else None))
            for index, values in enumerate(deals, start=1):
                row = {"id": index, "created_at": now, "updated_at": now, "version": 1}
                for name, field in deal.fields.items():
                    value = values.get(name)
                    if name == "company" and value is not None and not 1 <= value <= len(companies):
                        value = None
                    row.update(field.to_row(value))
                conn.execute(deal.table.insert().values(row))

    def python_view_and_context(self) -> tuple[list[Mapping[str, Any]], RuleContext]:
        """The records as the service reads them, and a rule context whose paths look up
        the loaded companies."""
        records, companies_by_id = self.python_view()
        return records, RuleContext(now=CONTEXT.now, user_id=1, user_roles=("sales",),
                                    lookup=lambda entity, key: companies_by_id.get((entity, key)))

    def python_view(self) -> tuple[list[Mapping[str, Any]], dict[tuple[str, int], Mapping[str, Any]]]:
        """The records as the records service reads them, and a lookup for paths."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            for entity in ("deal", "company"):
                ce = self.compiled[entity]
                rows = conn.execute(ce.select.order_by(ce.table.c.id)).mappings().all()
                out[entity] = [{"id": r["id"], **{n: f.from_row(r) for n, f in ce.fields.items()}}
                               for r in rows]
        index = {("company", c["id"]): c for c in out["company"]}
        return out["deal"], index


def _bench(kind: str, tmp: Path) -> Iterator[Bench]:
    if kind == "sqlite":
        bench = Bench(f"sqlite:///{tmp / 'rules.db'}", tmp)
        yield bench
        bench.engine.dispose()
        return
    for url in conftest._postgres_database():
        bench = Bench(url, tmp)
        try:
            yield bench
        finally:
            bench.engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def bench(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    yield from _bench(request.param, tmp_path_factory.mktemp("rules"))


EXPRESSIONS_PER_EXAMPLE = 30


# No shrinking: a failure names its expression, and shrinking database examples takes minutes.
@settings(max_examples=100, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(companies=st.lists(company_values, min_size=0, max_size=3),
       deals=st.lists(deal_values, min_size=1, max_size=8),
       expressions=st.lists(booleans(2), min_size=EXPRESSIONS_PER_EXAMPLE, max_size=EXPRESSIONS_PER_EXAMPLE))
def test_closure_and_sql_select_the_same_records(bench: Bench, companies: list[dict[str, Any]],
                                                 deals: list[dict[str, Any]], expressions: list[Any]) -> None:
    bench.load(companies, deals)
    records, context = bench.python_view_and_context()
    deal = bench.compiled["deal"]
    with bench.engine.connect() as conn:
        for tree in expressions:
            text = pretty(tree)
            checked = check(text, bench.metamodel, "deal")
            closure = compile_python(checked.typed)
            in_python = {r["id"] for r in records if closure(r, context) is True}
            where = bench.sql.condition(checked.typed, "deal")(context)
            in_sql = set(conn.execute(sa.select(deal.table.c.id).where(where)).scalars())
            assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("^(?:Ac|B)me$", {1, 3}),
    ("(?i)^(?:ac)+me", {1, 2}),
    ("^a(?:c(?:a)?)+me$", {2}),
])
def test_non_capturing_groups_mean_the_same_in_python_and_sql(bench: Bench, pattern: str,
                                                              expected: set[int]) -> None:
    # docs/rules.md promises RE2: its non-capturing groups (which PostgreSQL reads alike).
    bench.load([], [{"name": "Acme"}, {"name": "acacme"}, {"name": "Bme"}, {"name": None},
                    {"name": "Ac\nme"}])
    records, _ = bench.python_view()
    checked = check(f'name matches "{pattern}"', bench.metamodel, "deal")
    closure = compile_python(checked.typed)
    in_python = {r["id"] for r in records if closure(r, CONTEXT) is True}
    where = bench.sql.condition(checked.typed, "deal")(CONTEXT)
    deal = bench.compiled["deal"]
    with bench.engine.connect() as conn:
        in_sql = set(conn.execute(sa.select(deal.table.c.id).where(where)).scalars())
    assert in_python == in_sql == expected
# --- plugin functions ------------------------------------------------------------------------
def _is_weekend_sql(args: list[Any], dialect: str) -> Any:
    if dialect == "sqlite":
        return sa.func.strftime("%w", args[0]).in_(["0", "6"])
    return sa.extract("isodow", args[0]) >= 6


PLUGIN_FUNCTIONS = RuleFunctions([
    RuleFunction("double", ("number",), "number", lambda n: n * 2, lambda args, dialect: args[0] * 2),
    RuleFunction("is_weekend", ("date",), "boolean", lambda d: d.weekday() >= 5, _is_weekend_sql),
    RuleFunction("shout", ("text",), "text", lambda s: s + "!",
                 lambda args, dialect: args[0].concat(sa.literal("!", sa.String))),
])
PLUGIN_EXPRESSIONS = (
    "double(amount) > 100", "not (double(amount) <= 50)", "double(quantity) = 4",
    "coalesce(double(amount), 0) < 10", "double(price) >= double(amount)",
    "is_weekend(close_date)", "not is_weekend(close_date)", "is_weekend(close_date) or double(quantity) > 2",
    'shout(name) = concat(name, "!")', 'shout(kind) = "new!"', "shout(name) is blank",
    "double(company.rating) > 5",
)


@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(companies=st.lists(company_values, min_size=0, max_size=3),
       deals=st.lists(deal_values, min_size=1, max_size=8))
def test_plugin_functions_select_the_same_records(bench: Bench, companies: list[dict[str, Any]],
                                                  deals: list[dict[str, Any]]) -> None:
    """A plugin's Python and SQL forms, nulls included (the platform makes both strict)."""
    bench.load(companies, deals)
    records, context = bench.python_view_and_context()
    deal = bench.compiled["deal"]
    with bench.engine.connect() as conn:
        for text in PLUGIN_EXPRESSIONS:
            checked = check(text, bench.metamodel, "deal", functions=PLUGIN_FUNCTIONS)
            closure = compile_python(checked.typed)
            in_python = {r["id"] for r in records if closure(r, context) is True}
            where = bench.sql.condition(checked.typed, "deal")(context)
            in_sql = set(conn.execute(sa.select(deal.table.c.id).where(where)).scalars())
            assert in_python == in_sql, f"{text}: Python {sorted(in_python)}, SQL {sorted(in_sql)}"
