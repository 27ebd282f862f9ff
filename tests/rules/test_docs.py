"""Every example of docs/rules.md runs: in Python, and (for filters) in SQL on SQLite."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.rules import RuleContext, RuleError, ast, check, compile_python, parse

from .test_python_sql_agree import Bench

DOC = Path(__file__).parents[2] / "docs" / "rules.md"
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
COMPANIES = [{"name": "Acme Holding", "size": 2000}, {"name": "Acme", "size": 120, "rating": Decimal("4.5")}]
DEAL = {"name": "Acme renewal", "amount": Decimal("1500.00"), "quantity": 3, "won": False,
        "close_date": dt.date(2026, 3, 31), "signed_at": None, "kind": "renewal", "tags": ["hot", "vip"],
        "price": {"amount": Decimal("49.90"), "currency": "EUR"}, "stage": "proposal", "company": 2}
BEFORE = {**DEAL, "amount": Decimal("1200.00"), "stage": "qualified"}


def examples() -> Iterator[tuple[str, str, str]]:
    """(kind of block, expression, expected) for each example of the page."""
    text = DOC.read_text(encoding="utf-8")
    for kind, body in re.findall(r"```(rule|rule-change|rule-error)\n(.*?)```", text, flags=re.S):
        pending: list[str] = []
        for line in body.splitlines():
            pending.append(line)
            if "⇒" in line:
                expression, expected = "\n".join(pending).rsplit("⇒", 1)
                yield kind, expression.strip(), expected.strip()
                pending = []


EXAMPLES = list(examples())


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("docs")
    bench = Bench(f"sqlite:///{root / 'docs.db'}", root)
    bench.load(COMPANIES, [DEAL])
    yield bench
    bench.engine.dispose()


def test_every_construct_has_an_example() -> None:
    assert len(EXAMPLES) >= 70
    written = " ".join(e for _, e, _ in EXAMPLES)
    for construct in ("and", "or", "not", " in (", "not in", "is blank", "is not blank", "contains",
                      "starts_with", "matches", "current_user.id", "current_user.roles", "current_user.teams",
                      "current_user.manager", "company.parent",
                      "@2026", "null", "true", "false", "+", "-", "*", "/", "=", "!=", "<", "<=", ">", ">=",
                      "#", "is_new(", "changed(", "previous(", *(f"{f}(" for f in (
                          "today", "now", "days_between", "add_days", "year", "month", "len", "lower",
                          "upper", "trim", "concat", "coalesce", "if", "round", "abs", "min", "max"))):
        assert construct in written, construct


def _expected(text: str) -> Any:
    node = parse(text)
    assert isinstance(node, ast.Literal), text
    return node.value


@pytest.mark.parametrize(("kind", "expression", "expected"), EXAMPLES, ids=[e[1][:50] for e in EXAMPLES])
def test_example(bench: Bench, kind: str, expression: str, expected: str) -> None:
    if kind == "rule-error":
        with pytest.raises(RuleError) as refused:
            check(expression, bench.metamodel, "deal")
        assert str(refused.value) == expected
        return
    records, companies = bench.python_view()
    context = RuleContext(now=NOW, user_id=7, user_roles=("sales",), user_teams=(2, 3), user_manager=4,
                          previous=BEFORE if kind == "rule-change" else None,
                          lookup=lambda entity, key: companies.get((entity, key)))
    checked = check(expression, bench.metamodel, "deal", expect=None, changes=kind == "rule-change")
    value = compile_python(checked.typed)(records[0], context)
    wanted = _expected(expected)
    assert value == wanted and (value is None) == (wanted is None), f"{expression} gave {value!r}"
    if kind == "rule-change":
        return
    # The same in SQL: the record is selected by "(expression) = expected" (or "is blank").
    test = f"({expression}) is blank" if wanted is None else (
        f"({expression})" if checked.type.kind == "boolean" and wanted is True else
        f"not ({expression})" if checked.type.kind == "boolean" else f"({expression}) = {expected}")
    condition = check(test, bench.metamodel, "deal")
    where = bench.sql.condition(condition.typed, "deal")(context)
    with bench.engine.connect() as conn:
        found = conn.execute(sa.select(bench.compiled["deal"].table.c.id).where(where)).scalars().all()
    assert found == [1], test
