"""Checking a field's form logic (`visible_if`, `required_if`, `read_only_if`, `options_if`)
when a metamodel is installed: each rule typed as a condition over the field's entity, and
reported at its own line (an override's in the pack that wrote it).

An option filter has two forms, by the field's type: a choice names its options, each with
a rule over the record (an option without one is always offered); a reference to one
entity has one rule in which the field stands for the candidate record, so that
`contact.account = account` reads "a contact of the record's account".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from ..errors import Problem
from ..model import Entity, Field, Metamodel
from ..names import suggest
from .checker import Checked, check
from .definitions import formula_inputs, rule_problem
from .errors import RuleError
from .functions import RuleFunctions
from .types import BOOLEAN

if TYPE_CHECKING:
    from ..fieldtypes.base import FieldTypeRegistry

#: The conditions a field may have besides `options_if`.
CONDITIONS = ("visible_if", "required_if", "read_only_if")


def check_logic(metamodel: Metamodel, entity: Entity, field: Field, origin: Callable[[str], str],
                functions: RuleFunctions, registry: FieldTypeRegistry | None) -> Iterator[Problem]:
    """Every problem of `field`'s form logic."""
    def problem(key: str, message: str) -> Problem:
        own = key.split(".")[0]
        where = field.rule_sources.get(key) or field.rule_sources.get(own, field.source)
        return Problem(f"{key}: {message}", where, origin(field.rule_packs.get(own, field.pack)))

    def checked(key: str, text: str, problems: list[Problem]) -> Checked | None:
        try:
            return check(text, metamodel, entity.name, expect=BOOLEAN, functions=functions, registry=registry)
        except RuleError as error:
            at = problem(key, "")
            problems.append(rule_problem(error, key, at.location, at.pack))
            return None

    field_type = registry[field.type] if registry is not None and field.type in registry else None
    if (field_type is not None and not field_type.writable) or field.formula is not None:
        for key in (k for k in (*CONDITIONS, "options_if") if getattr(field, k) is not None):
            yield problem(key, "the system gives this field its value (its type or a formula): "
                               "form logic decides only about fields people set; leave it out")
        return
    problems: list[Problem] = []
    for key in CONDITIONS:
        text = getattr(field, key)
        if text is not None:
            checked(key, text, problems)
    if field.required and field.required_if is not None:
        problems.append(problem("required_if", "the field is required always (required: true); "
                                               "leave one out"))
    if field.options_if is not None:
        links = field_type is not None and field_type.links_records
        problems.extend(_options(field, links, problem, lambda key, text: checked(key, text, problems)))
    yield from problems


def _options(field: Field, links: bool, problem: Callable[[str, str], Problem],
             checked: Callable[[str, str], Checked | None]) -> Iterator[Problem]:
    """`options_if` in the form the field's type takes: a rule per option of a choice, one
    rule over the record offered of a reference to one entity (which must read the field)."""
    rules = field.options_if
    keys = [o.key for o in field.choices]
    example = f"like `{field.name}.owner = owner`"
    if field.type == "stage":
        yield problem("options_if", "a stage's next stages are its pipeline's `next`; give them there")
    elif keys and not links:
        if not isinstance(rules, Mapping):
            yield problem("options_if", "give a rule per option, as `option: rule` (an option without "
                                        f"one is always offered); the options: {', '.join(keys)}")
            return
        for key, text in rules.items():
            if key not in keys:
                yield problem(f"options_if.{key}",
                              f"{field.name!r} has no option {key!r}{suggest(key, keys)}")
            else:
                checked(f"options_if.{key}", text)
    elif links and field.target is not None:
        if not isinstance(rules, str):
            yield problem("options_if", f"a reference takes one rule, in which the field stands for the "
                                        f"record offered ({example})")
            return
        found = checked("options_if", rules)
        if found is not None and field.name not in formula_inputs(found.typed):
            yield problem("options_if", f"the rule does not read {field.name!r}, the record offered, so "
                                        f"it cannot choose among records ({example})")
    else:
        yield problem("options_if", "only a choice (a rule per option) or a reference to one entity "
                                    f"(a rule over the record offered) has options to filter, not a "
                                    f"{field.type} field")
