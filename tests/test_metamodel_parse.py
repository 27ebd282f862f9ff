"""Reading a stored metamodel: fields are restored without their dataclass `__init__` (for
speed), so they must come out exactly as `__init__` would make them, and stored data it
would refuse is refused the same way."""

from __future__ import annotations

import pytest

from slatecrm.metamodel.errors import Location
from slatecrm.metamodel.model import ChoiceOption, Field, Metamodel


def stored(**field: object) -> dict[str, object]:
    return {"format": 2, "entities": [{"name": "thing", "label": "Thing", "label_plural": "Things",
                                       "fields": [field]}]}


def test_a_field_stored_with_only_some_keys_reads_as_the_constructor_makes_it() -> None:
    metamodel = Metamodel.from_dict(stored(
        name="size", type="choice", label="Size", choices=[{"key": "s", "label": "Small"}],
        source={"file": "entities/thing.yaml", "line": 3, "column": 5, "path": "fields.size"}))
    entity = metamodel.entities[0]
    assert entity.fields == (Field(
        "size", "choice", "Size", choices=(ChoiceOption("s", "Small"),),
        source=Location("entities/thing.yaml", 3, 5, "fields.size")),)
    field = entity.fields[0]
    assert (field.required, field.formula, field.settings, field.rule_sources) == (False, None, {}, {})
    assert field.source.line == 3 and field.choices[0].order == 0
    with pytest.raises(AttributeError):
        field.name = "other"  # type: ignore[misc]  # still frozen


@pytest.mark.parametrize(("field", "named"), [
    ({"name": "size", "label": "Size"}, "type"),
    ({"name": "size", "type": "text", "label": "Size", "colour": "red"}, "colour"),
])
def test_a_stored_field_the_constructor_would_refuse_is_refused(field: dict[str, object], named: str) -> None:
    with pytest.raises(TypeError, match=named):
        Metamodel.from_dict(stored(**field))
