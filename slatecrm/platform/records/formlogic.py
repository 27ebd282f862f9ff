"""Form logic enforced on writes, and the state a form shows: which fields are hidden,
required, read-only, and which options are offered, for a record as it will be saved.

The rules (`visible_if`, `required_if`, `read_only_if`, `options_if`: docs/packs.md, "Form
logic") are evaluated here only, in Python, on the record's final state (the stored values
merged with those given, defaults and formulas applied). The write pipeline refuses what
they forbid (422 naming the field and the rule) and the web form asks the same code, through
the server, what to show: there is no second evaluator in the browser to disagree with it.

A rule that cannot be decided (null) does not hold: a field whose `visible_if` is unknown is
hidden, an option whose rule is unknown is not offered, and `required_if` / `read_only_if`
apply only when true.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slatecrm.metamodel.model import Entity
from slatecrm.metamodel.rules import RuleContext
from slatecrm.metamodel.rules.definitions import formula_inputs

from .compiled import is_blank

if TYPE_CHECKING:
    from .rules import Condition, RevisionRules


@dataclass(frozen=True)
class Rule:
    """One checked rule of a field, with the fields of the record it reads."""

    text: str
    condition: Condition
    reads: frozenset[str]

    def holds(self, record: Mapping[str, Any], context: RuleContext) -> bool:
        return self.condition.holds(record, context)


@dataclass(frozen=True)
class FieldLogic:
    name: str
    visible: Rule | None = None
    required: Rule | None = None
    read_only: Rule | None = None
    #: A choice's options that have a rule (the others are always offered).
    options: Mapping[str, Rule] = field(default_factory=dict)
    #: A reference's rule over the record offered (the field holds the candidate's id).
    candidates: Rule | None = None

    @property
    def rules(self) -> list[Rule]:
        found = [self.visible, self.required, self.read_only, self.candidates, *self.options.values()]
        return [r for r in found if r is not None]


@dataclass(frozen=True)
class FormState:
    """What the logic decides for one record: the fields hidden, required and read-only,
    the options offered of each choice with option rules, and the candidates offered of
    each reference with a rule (of those asked about)."""

    hidden: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    #: Per choice with option rules, the options whose rule does not hold.
    refused_options: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Per reference with a rule, those of the candidates asked about that are offered.
    offered: Mapping[str, frozenset[int]] = field(default_factory=dict)


#: The state of a record whose entity has no form logic.
NO_STATE = FormState()


@dataclass(frozen=True)
class EntityLogic:
    fields: tuple[FieldLogic, ...] = ()

    @property
    def inputs(self) -> frozenset[str]:
        """The fields some rule reads: a form asks the server again when one changes."""
        return frozenset(name for f in self.fields for r in f.rules for name in r.reads)

    @property
    def decided(self) -> frozenset[str]:
        """The fields some rule decides about: those a form re-renders."""
        return frozenset(f.name for f in self.fields)

    def state(self, record: Mapping[str, Any], context: RuleContext,
              candidates: Mapping[str, Sequence[int]] | None = None) -> FormState:
        hidden: set[str] = set()
        required: set[str] = set()
        read_only: set[str] = set()
        options: dict[str, frozenset[str]] = {}
        offered: dict[str, frozenset[int]] = {}
        for logic in self.fields:
            name = logic.name
            if logic.visible is not None and not logic.visible.holds(record, context):
                hidden.add(name)
                continue
            if logic.required is not None and logic.required.holds(record, context):
                required.add(name)
            if logic.read_only is not None and logic.read_only.holds(record, context):
                read_only.add(name)
            if logic.options:
                options[name] = frozenset(k for k, rule in logic.options.items()
                                          if not rule.holds(record, context))
            if logic.candidates is not None and candidates and name in candidates:
                rule = logic.candidates
                offered[name] = frozenset(i for i in candidates[name]
                                          if rule.holds({**record, name: i}, context))
        return FormState(frozenset(hidden), frozenset(required), frozenset(read_only), options, offered)

    def refusals(self, record: Mapping[str, Any], context: RuleContext, *, given: Mapping[str, Any],
                 before: Mapping[str, Any] | None, changed: set[str], people: bool) -> dict[str, list[str]]:
        """What a write breaks: a required field left blank (every write), and, when people
        write (`people`), a value given for a hidden field, a change to a read-only one, an
        option or a record not offered: the system (the CLI, sample data, imports) sets
        what it must, as it sets a `read_only` field. Given values equal to the stored ones
        are an echo, not a change (a client sending back the record it read)."""
        errors: dict[str, list[str]] = {}
        for logic in self.fields:
            name = logic.name
            value = record.get(name)
            sets = name in given and (not is_blank(value) if before is None else value != before.get(name))
            if logic.visible is not None and not logic.visible.holds(record, context):
                if people and sets:
                    errors.setdefault(name, []).append(
                        f"is hidden by the form's logic (shown only when {logic.visible.text}): leave it out")
                continue
            if people and sets and logic.read_only is not None and logic.read_only.holds(record, context):
                errors.setdefault(name, []).append(f"is read-only when {logic.read_only.text}")
            if logic.required is not None and is_blank(value) and logic.required.holds(record, context):
                errors.setdefault(name, []).append(f"is required when {logic.required.text}")
            if is_blank(value) or not people:
                continue
            rules = [logic.candidates] if logic.candidates is not None else list(logic.options.values())
            if not (name in changed or any(changed & r.reads for r in rules)):
                continue  # neither the value nor what decides about it changed
            for key in value if isinstance(value, list | tuple) else [value]:
                rule = logic.candidates if logic.candidates is not None else logic.options.get(str(key))
                if rule is not None and not rule.holds(record, context):
                    what = f"record {key}" if logic.candidates is not None else f"option {key!r}"
                    errors.setdefault(name, []).append(f"{what} is not offered: only when {rule.text}")
        return errors


NO_LOGIC = EntityLogic()


def compile_logic(rules: RevisionRules, entity: Entity) -> EntityLogic:
    """The form logic of `entity`'s fields, checked and compiled (at install the same rules
    were checked with their file:line: metamodel/rules/formlogic.py)."""
    def rule(text: str | None) -> Rule | None:
        if text is None:
            return None
        checked = rules.checked(entity.name, text, False)
        return Rule(text, rules.condition(entity.name, text), frozenset(formula_inputs(checked.typed)))

    found = []
    for each in entity.active_fields:
        if not each.has_logic:
            continue
        options_if = each.options_if
        found.append(FieldLogic(
            name=each.name, visible=rule(each.visible_if), required=rule(each.required_if),
            read_only=rule(each.read_only_if),
            options={k: r for k, t in options_if.items() if (r := rule(t)) is not None}
            if isinstance(options_if, Mapping) else {},
            candidates=rule(options_if) if isinstance(options_if, str) else None))
    return EntityLogic(tuple(found)) if found else NO_LOGIC
