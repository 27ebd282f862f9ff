"""Parse → pretty-print → parse gives the same tree; any text gives a tree or a RuleError,
never another exception; bounded size and depth; regular expressions that cannot hang."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.rules import RuleContext, RuleError, ast, check, compile_python, parse, pretty

from ..defaults import field_types
from .sample import sample_metamodel

NAMES = st.sampled_from(["amount", "name", "stage", "won", "a", "b_2", "current_user"])
FUNCTIONS = st.sampled_from(["today", "concat", "round", "if", "f"])


def _number(value: int | Decimal) -> ast.Node:
    return ast.Literal("number", abs(value) if value == 0 else value)


literals = st.one_of(
    st.integers(-10**17, 10**17).map(_number),
    st.decimals(-10**6, 10**6, places=3, allow_nan=False, allow_infinity=False).map(_number),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12).map(
        lambda v: ast.Literal("text", v)),
    st.booleans().map(lambda v: ast.Literal("boolean", v)),
    st.just(ast.Literal("null", None)),
    st.dates(dt.date(1900, 1, 1), dt.date(2999, 12, 31)).map(lambda v: ast.Literal("date", v)),
    st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2999, 1, 1)).map(
        lambda v: ast.Literal("datetime", v.replace(microsecond=0, tzinfo=dt.UTC))),
)
leaves = st.one_of(literals, st.lists(NAMES, min_size=1, max_size=3).map(lambda p: ast.Name(tuple(p))))


def _extend(children: st.SearchStrategy[ast.Node]) -> st.SearchStrategy[ast.Node]:
    def negate(node: ast.Node) -> ast.Node:
        # "-5" reads as the number -5, so minus applies to numbers as literals only
        if isinstance(node, ast.Literal) and node.kind == "number":
            return ast.Literal("number", -node.value) if node.value else node  # type: ignore[operator]
        return ast.Unary("-", node)
    return st.one_of(
        st.builds(ast.Unary, st.just("not"), children),
        children.map(negate),
        st.builds(ast.Binary, st.sampled_from(["+", "-", "*", "/", "=", "!=", "<", "<=", ">", ">=",
                                               "contains", "starts_with", "matches"]), children, children),
        st.builds(ast.Logic, st.sampled_from(["and", "or"]),
                  st.lists(children, min_size=2, max_size=3).map(tuple)),
        st.builds(ast.InList, children, st.lists(children, min_size=1, max_size=3).map(tuple), st.booleans()),
        st.builds(ast.Blank, children, st.booleans()),
        st.builds(ast.Call, FUNCTIONS, st.lists(children, max_size=3).map(tuple)),
    )


trees = st.recursive(leaves, _extend, max_leaves=25)


@settings(max_examples=1000, deadline=None)
@given(trees)
def test_parse_pretty_parse_gives_the_same_tree(tree: ast.Node) -> None:
    text = pretty(tree)
    assert parse(text) == tree, text
    assert pretty(parse(text)) == text


@pytest.fixture(scope="module")
def metamodel(tmp_path_factory: pytest.TempPathFactory) -> Metamodel:
    return sample_metamodel(tmp_path_factory.mktemp("sample"), field_types())


TOKENS = ["amount", "name", "stage", "kind", "tags", "company", ".", "size", "(", ")", ",", "and", "or",
          "not", "in", "is", "blank", "contains", "matches", "starts_with", "=", "<", ">=", "!=",
          "+", "-", "*", "/",
          "1", "2.5", '"x"', "'q'", "@2024-01-01", "null", "true", "today", "round", "concat", "if",
          "changed", "current_user", "roles", '"[a"', "\n", "#", "@", "é", "\\"]


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join), st.text(max_size=40)))
def test_any_text_is_a_rule_or_a_rule_error(metamodel: Metamodel, text: str) -> None:
    try:
        checked = check(text, metamodel, "deal")
    except RuleError as error:
        assert error.line >= 1 and error.column >= 1 and error.message
        return
    compile_python(checked.typed)({}, RuleContext())  # runs on an empty record


def test_regular_expressions_run_in_linear_time(metamodel: Metamodel) -> None:
    """(a+)+$ backtracks exponentially in Python's re; RE2 answers at once."""
    checked = check('name matches "(a+)+$"', metamodel, "deal")
    rule = compile_python(checked.typed)
    assert rule({"name": "a" * 50_000 + "!"}, RuleContext()) is False


def test_no_access_beyond_declared_fields(metamodel: Metamodel) -> None:
    for text in ("__class__ = 1", "name.__class__ = 1", "company.__dict__ = 1", "current_user.__init__ = 1"):
        with pytest.raises(RuleError):
            check(text, metamodel, "deal")


def test_comments_and_lines(metamodel: Metamodel, tmp_path: Path) -> None:
    checked = check("amount > 5  # big enough\nand won", metamodel, "deal")
    assert compile_python(checked.typed)({"amount": Decimal("6"), "won": True}, RuleContext()) is True


def test_values_beyond_every_range_are_unknown_not_errors(metamodel: Metamodel) -> None:
    far = check("add_days(close_date, 999999) > today()", metamodel, "deal")
    assert compile_python(far.typed)({"close_date": dt.date(9999, 1, 1)}, RuleContext()) is None
    huge = check("round(amount * amount * amount * amount / 0.000001, 2) > 1", metamodel, "deal")
    assert compile_python(huge.typed)({"amount": Decimal("9" * 16)}, RuleContext()) in (True, None)
