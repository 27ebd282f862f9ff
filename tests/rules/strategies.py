"""Hypothesis strategies: well-typed rule expressions on the sample deal, and deal records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from slatecrm.metamodel.rules import ast

TEXTS = ["", "a", "A", "ab", "b", "Acme", "acme", " x ", "a b", "zz", "é", "É"]
PATTERNS = ["^a", "b$", "a.b", "[0-9]", "(?i)acme", "^$", "x|y", "^.{2,3}$", "\\d", "\\s", "^(?:ac|b)",
            "(?i)(?:me)+$"]
STAGES = ["lead", "qualified", "proposal", "won", "lost"]
KINDS = ["new", "renewal", "upsell"]
TAGS = ["hot", "cold", "vip"]
DAY0 = dt.date(2026, 1, 1)
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def name(*parts: str) -> ast.Node:
    return ast.Name(tuple(parts))


def call(function: str, *args: ast.Node) -> ast.Node:
    return ast.Call(function, tuple(args))


def lit(kind: str, value: Any) -> ast.Node:
    return ast.Literal(kind, value)


numbers_literal = st.one_of(
    st.integers(-20, 20).map(lambda v: lit("number", v)),
    st.decimals(-100, 100, places=2, allow_nan=False, allow_infinity=False).map(lambda v: lit("number", v)),
)
dates_literal = st.integers(-60, 120).map(lambda d: lit("date", DAY0 + dt.timedelta(days=d)))
texts_literal = st.sampled_from(TEXTS).map(lambda v: lit("text", v))

number_leaves = st.one_of(
    numbers_literal,
    st.sampled_from([name("amount"), name("quantity"), name("price"), name("company", "size"),
                     name("company", "rating"), name("company", "parent", "size"), name("id")]),
)
text_leaves = st.one_of(
    texts_literal,
    st.sampled_from([name("name"), call("concat", name("kind")), name("company", "name"),
                     call("concat", name("stage"))]),
)
date_leaves = st.one_of(dates_literal, st.just(name("close_date")), st.just(call("today")))


def numbers(depth: int) -> st.SearchStrategy[ast.Node]:
    if depth <= 0:
        return number_leaves
    sub = numbers(depth - 1)
    return st.one_of(
        number_leaves,
        st.builds(lambda op, a, b: ast.Binary(op, a, b), st.sampled_from(["+", "-", "*", "/"]), sub, sub),
        sub.map(lambda a: ast.Unary("-", a)),
        st.builds(lambda a, d: call("round", a, lit("number", d)), sub, st.integers(0, 3)),
        sub.map(lambda a: call("abs", a)),
        st.builds(lambda f, a, b: call(f, a, b), st.sampled_from(["min", "max", "coalesce"]), sub, sub),
        texts(depth - 1).map(lambda a: call("len", a)),
        st.just(call("len", name("tags"))),
        st.builds(lambda a, b: call("days_between", a, b), dates(depth - 1), dates(depth - 1)),
        st.builds(lambda f, a: call(f, a), st.sampled_from(["year", "month"]),
                  st.one_of(dates(depth - 1), st.just(name("signed_at")))),
        st.builds(lambda c, a, b: call("if", c, a, b), booleans(depth - 1), sub, sub),
    )


def texts(depth: int) -> st.SearchStrategy[ast.Node]:
    if depth <= 0:
        return text_leaves
    sub = texts(depth - 1)
    return st.one_of(
        text_leaves,
        st.builds(lambda f, a: call(f, a), st.sampled_from(["lower", "upper", "trim"]), sub),
        st.builds(lambda a, b: call("concat", a, b), sub, sub),
        st.builds(lambda a, b: call("coalesce", a, b), sub, sub),
    )


def dates(depth: int) -> st.SearchStrategy[ast.Node]:
    if depth <= 0:
        return date_leaves
    return st.one_of(date_leaves, st.builds(lambda a, n: call("add_days", a, n), dates(depth - 1),
                                            st.one_of(numbers(0), st.integers(-40, 40).map(
                                                lambda v: lit("number", v)))))


COMPARE = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


def booleans(depth: int) -> st.SearchStrategy[ast.Node]:
    leaves = st.one_of(
        st.just(name("won")),
        st.sampled_from([lit("boolean", True), lit("boolean", False)]),
        st.builds(lambda op, a: ast.Binary(op, name("stage"), lit("text", a)), COMPARE,
                  st.sampled_from(STAGES)),
        st.builds(lambda a, neg: ast.InList(name("kind"), tuple(lit("text", k) for k in a), neg),
                  st.lists(st.sampled_from(KINDS), min_size=1, max_size=3), st.booleans()),
        st.builds(lambda tag: ast.Binary("contains", name("tags"), lit("text", tag)), st.sampled_from(TAGS)),
        st.builds(lambda f, neg: ast.Blank(f, neg), st.sampled_from(
            [name("name"), name("amount"), name("tags"), name("company"), name("company", "name"),
             name("close_date"), name("won"), name("kind")]), st.booleans()),
        st.builds(lambda op, value: ast.Binary(op, name("signed_at"), lit("datetime", value)), COMPARE,
                  st.sampled_from([NOW, NOW - dt.timedelta(days=3)])),
    )
    if depth <= 0:
        return leaves
    sub = booleans(depth - 1)
    return st.one_of(
        leaves,
        st.builds(lambda op, a, b: ast.Binary(op, a, b), COMPARE, numbers(depth - 1), numbers(depth - 1)),
        st.builds(lambda op, a, b: ast.Binary(op, a, b), COMPARE, texts(depth - 1), texts(depth - 1)),
        st.builds(lambda op, a, b: ast.Binary(op, a, b), COMPARE, dates(depth - 1), dates(depth - 1)),
        st.builds(lambda a, items, neg: ast.InList(a, tuple(items), neg), numbers(depth - 1),
                  st.lists(numbers(0), min_size=1, max_size=3), st.booleans()),
        st.builds(lambda op, a, b: ast.Binary(op, a, b), st.sampled_from(["contains", "starts_with"]),
                  texts(depth - 1), texts(depth - 1)),
        st.builds(lambda a, p: ast.Binary("matches", a, lit("text", p)), texts(depth - 1),
                  st.sampled_from(PATTERNS)),
        st.builds(lambda a, neg: ast.Blank(a, neg), st.one_of(numbers(depth - 1), texts(depth - 1)),
                  st.booleans()),
        st.builds(lambda op, items: ast.Logic(op, tuple(items)), st.sampled_from(["and", "or"]),
                  st.lists(sub, min_size=2, max_size=3)),
        sub.map(lambda a: ast.Unary("not", a)),
    )


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


company_values = st.fixed_dictionaries({
    "name": maybe(st.sampled_from(TEXTS[1:])),
    "size": maybe(st.integers(-5, 500)),
    "rating": maybe(st.decimals(-9, 9, places=1, allow_nan=False, allow_infinity=False)),
})
deal_values = st.fixed_dictionaries({
    "name": maybe(st.sampled_from([*TEXTS[1:], "ab1", "x\ny", "a9 b"])),
    "amount": maybe(st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False)),
    "quantity": maybe(st.integers(-10, 10)),
    "won": maybe(st.booleans()),
    "close_date": maybe(st.integers(-60, 120).map(lambda d: DAY0 + dt.timedelta(days=d))),
    "signed_at": maybe(st.sampled_from([NOW, NOW - dt.timedelta(days=1), NOW - dt.timedelta(days=5)])),
    "kind": maybe(st.sampled_from(KINDS)),
    "tags": maybe(st.lists(st.sampled_from(TAGS), min_size=1, max_size=3, unique=True)),
    "price": maybe(st.decimals(0, 50, places=2, allow_nan=False, allow_infinity=False).map(
        lambda v: {"amount": v, "currency": "EUR"})),
    "stage": maybe(st.sampled_from(STAGES)),
    "company": maybe(st.integers(0, 3)),
})
