# ruff: noqa: E501 (a table of expressions and messages reads best one case a line)
"""A corpus of bad expressions: each gets its own message at its own place, and none
raises anything but RuleError (no internal exception ever reaches an author)."""

from __future__ import annotations

import pytest

from slatecrm.metamodel.model import Metamodel
from slatecrm.metamodel.rules import RuleError, check

from ..defaults import field_types
from .sample import sample_metamodel

#: (expression on the sample deal, message, line, column)
CASES = [
    ('amout > 1000', "unknown field 'amout' on deal (did you mean 'amount'?)", 1, 1),
    ('amount >', 'the expression ends too early; expected an operator, a value or a closing parenthesis', 1, 9),
    ('> 5', "unexpected '>': comparisons cannot be chained (a < b < c); join them with 'and'", 1, 1),
    ('amount > 1000 and', 'the expression ends too early; expected an operator, a value or a closing parenthesis', 1, 18),
    ('(amount > 5', "the expression ends too early; expected ')'", 1, 12),
    ('amount > 5)', "unexpected ')'; expected the end of the expression", 1, 11),
    ('amount < 5 < 10', "unexpected '<': comparisons cannot be chained (a < b < c); join them with 'and'", 1, 12),
    ('name = "abc', 'a text is not closed: add the closing quote on the same line', 1, 8),
    ("name = 'abc", 'a text is not closed: add the closing quote on the same line', 1, 8),
    ('amount > 5 AND won', "unexpected 'AND': words of the language are lower case ('and')", 1, 12),
    ('amount > 5 && won', "unexpected '&': write 'and'", 1, 12),
    ('amount > 5 || won', "unexpected '|': write 'or'", 1, 12),
    ('!won', "unexpected '!': write 'not', or '!=' for 'not equal'", 1, 1),
    ('amount = null', "a comparison with null is never true: write 'x is blank' or 'x is not blank'", 1, 10),
    ('null != amount', "a comparison with null is never true: write 'x is blank' or 'x is not blank'", 1, 1),
    ('name + "x" = "y"', "'+' adds numbers; join texts with concat(a, b)", 1, 1),
    ('amount > "5"', 'cannot compare a number with a text', 1, 1),
    ('close_date > now()', 'cannot compare a date with a datetime; compare dates with today() and dates and times with now()', 1, 1),
    ('signed_at < today()', 'cannot compare a datetime with a date; compare dates with today() and dates and times with now()', 1, 1),
    ('won > true', "'>' needs values with an order, not a boolean", 1, 1),
    ('tags > "hot"', 'cannot compare a list of options with a text', 1, 1),
    ('kind > "new"', "choices have no order: use = or in (…) (only stages compare with '>')", 1, 1),
    ('stage >= "qualifed"', "'qualifed' is not a stage of this field (did you mean 'qualified'?); stages: lead, qualified, proposal, won, lost", 1, 10),
    ('kind = "renewl"', "'renewl' is not an option of this field (did you mean 'renewal'?); options: new, renewal, upsell", 1, 8),
    ('kind in ("new", "upgrade")', "'upgrade' is not an option of this field; options: new, renewal, upsell", 1, 17),
    ('tags contains "warm"', "'warm' is not an option of this field; options: hot, cold, vip", 1, 15),
    ('amount in ("a", "b")', 'cannot compare a number with a text', 1, 12),
    ('amount in (1, null)', "null in a list never matches: write 'x is blank'", 1, 15),
    ('tags in ("hot")', "'in' compares one value with a list of values, not a list of options; use 'contains' for a multi-choice", 1, 1),
    ('name matches amount', "the regular expression after 'matches' must be a text in quotes", 1, 14),
    ('name matches "(a"', 'not a valid regular expression: missing ): (a', 1, 15),
    ('name matches "\\bword"', "'\\b' (word boundary) is not supported in rule regular expressions", 1, 15),
    ('name matches "(?=x)a"', 'only (?i) at the very start and non-capturing groups (?:…) are supported', 1, 15),
    ('name matches "(?m)^a"', 'only (?i) at the very start and non-capturing groups (?:…) are supported', 1, 15),
    ('amount matches "1"', "'matches' tests a text, got a number", 1, 1),
    ('name contains 5', "'contains' needs a text to look for, got a number", 1, 15),
    ('today', "'today' is a function: write today(…)", 1, 1),
    ('frobnicate(amount)', "unknown function 'frobnicate' (did you mean 'concat'?)", 1, 1),
    ('len(amount)', 'len() needs a text or a multi-choice, got a number', 1, 5),
    ('len()', 'len() takes 1 argument, got 0', 1, 1),
    ('round(amount, 9)', "round()'s places must be a whole number from 0 to 6", 1, 15),
    ('round(amount, quantity)', "round()'s places must be a whole number from 0 to 6", 1, 15),
    ('days_between(close_date)', 'days_between() takes 2 arguments, got 1', 1, 1),
    ('add_days(close_date, "3")', 'add_days() needs a number, got a text', 1, 22),
    ('year(amount)', 'year() needs a date or a date and time, got a number', 1, 6),
    ('concat(name, amount)', 'concat() joins texts, got a number', 1, 14),
    ('coalesce(name, amount)', 'coalesce() needs values of one type: a text and a number', 1, 16),
    ('coalesce(name)', 'coalesce() takes at least 2 arguments, got 1', 1, 1),
    ('if(amount, 1, 2)', 'if() needs a condition first, got a number', 1, 4),
    ('if(won, 1, "x")', 'if() needs values of one type: a number and a text', 1, 12),
    ('min(amount)', 'min() takes at least 2 arguments, got 1', 1, 1),
    ('abs("x")', 'abs() needs a number, got a text', 1, 5),
    ('is_new()', 'is_new() works in validation rules and workflow conditions, where there is a change; not here', 1, 1),
    ('changed(amount)', 'changed() works in validation rules and workflow conditions, where there is a change; not here', 1, 1),
    ('previous(company.name)', 'previous() works in validation rules and workflow conditions, where there is a change; not here', 1, 1),
    ('current_user.name', "current_user has no 'name'; it has id, roles, teams, manager", 1, 1),
    ('current_user', 'current_user needs an attribute; it has id, roles, teams, manager', 1, 1),
    ('company.nam = "x"', "unknown field 'nam' on company (did you mean 'name'?)", 1, 9),
    ('name.first = "x"', "'name' is a text field, not a reference: it has no field 'first'", 1, 5),
    ('company.parent.parent.parent.name = "x"', 'a path goes through at most 3 references', 1, 23),
    ('amount + 1', 'a condition must be true or false; this expression gives a number', 1, 1),
    ('not amount', "'not' needs a condition, got a number", 1, 5),
    ('won and amount', "'and' joins conditions, got a number", 1, 9),
    ('-name', "'-' needs a number, got a text", 1, 2),
    ('@2024-13-45 < close_date', "'2024-13-45' is not a date", 1, 1),
    ('close_date < @2024-02-30T10:00', "'2024-02-30T10:00' is not a date and time", 1, 14),
    ('12345678901234567890 > amount', 'a number has at most 18 digits', 1, 1),
    ('#', 'the expression ends too early; expected an operator, a value or a closing parenthesis', 1, 2),
    ('(((((((((((((((((((((((((((((((((((((((((((((x)))))))))))))))))))))))))))))))))))))))))))))', "unknown field 'x' on deal", 1, 46),
    ('close_date - 3 < today()', "'-' works on numbers; for dates use add_days(date, n) and days_between(a, b)", 1, 1),
    ('upper(name) = 5', 'cannot compare a text with a number', 1, 1),
    ('price.amount > 5', "'price' is a number field, not a reference: it has no field 'amount'", 1, 6),
    ('amount in ()', "unexpected ')'; expected '(', '-', a date (@2024-01-31), a date and time (@2024-01-31T09:00:00Z), a field or function name, a number, a text in quotes or a time of day (@14:30)", 1, 12),
    ('amount ? 5', "unexpected character '?'", 1, 8),
    ('stage >= kind', 'a stage compares by order only with a stage key in quotes or a field of the same pipeline', 1, 10),
    ('name < 5 or', 'the expression ends too early; expected an operator, a value or a closing parenthesis', 1, 12),
    ('not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not won', 'the expression nests deeper than 40 levels', 1, 161),
    ('', 'the expression is empty', 1, 1),
    ('   ', 'the expression is empty', 1, 1),
    ("amount > 5 and\n  nam = 'x'", "unknown field 'nam' on deal (did you mean 'name'?)", 2, 3),
    ("amount > " + "1 + " * 1100 + "1", "the expression is longer than 4000 characters", 1, 1),
    ("won and (amount > 1 or " * 20 + "won" + ")" * 20, "the expression nests deeper than 40 levels", 1, 461),
]


@pytest.fixture(scope="module")
def metamodel(tmp_path_factory: pytest.TempPathFactory) -> Metamodel:
    return sample_metamodel(tmp_path_factory.mktemp("sample"), field_types())


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 50
    assert len({text for text, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("text", "message", "line", "column"), CASES, ids=[c[0][:40] for c in CASES])
def test_bad_expression(metamodel: Metamodel, text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(RuleError) as refused:
        check(text, metamodel, "deal")
    error = refused.value
    assert (error.message, error.line, error.column) == (message, line, column)
    assert str(error) == f"{message} (line {line}, column {column})"
    caret = error.caret().splitlines()[-1]
    assert caret == " " * (column - 1) + "^"
