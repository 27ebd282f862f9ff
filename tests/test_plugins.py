"""Field types from plugins: registered through the pluggy hook, they reach the pack schema
and the pack loader like the built-in ones. Each test builds its own plugin manager and
registry: there is no global one to disturb.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from slatecrm.metamodel.errors import DefinitionError
from slatecrm.metamodel.fieldtypes import BUILTIN_TYPES, CoercionError, FieldType, FieldTypeRegistry
from slatecrm.metamodel.model import Field
from slatecrm.metamodel.packs import load_pack
from slatecrm.metamodel.schemas import PackSchema
from slatecrm.plugins.hookspecs import hookimpl
from slatecrm.plugins.manager import field_types, make_plugin_manager

from .defaults import field_types as default_field_types
from .packs import write_pack


class Rating(FieldType):
    """A plugin's field type: a number of stars, at most `stars` (default 5). (Not the built-in
    `rating`: a plugin may not take a built-in's name.)"""

    name = "star_score"
    label = "Star score"
    settings_schema = {"stars": {"type": "integer", "minimum": 1, "maximum": 10}}

    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.SmallInteger()

    def convert(self, value: Any, field: Field) -> int:
        stars = int(field.settings.get("stars", 5))
        if isinstance(value, str) and value.strip().isdecimal():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= stars:
            raise CoercionError(f"{value!r} is not a rating from 1 to {stars}")
        return value

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": int(field.settings.get("stars", 5))}


class RatingPlugin:
    @hookimpl
    def slatecrm_field_types(self) -> list[FieldType]:
        return [Rating()]


class Text(FieldType):
    name = "text"
    label = "Another text"


class ClashingPlugin:
    @hookimpl
    def slatecrm_field_types(self) -> list[FieldType]:
        return [Text()]


def registry_with(*plugins: object) -> FieldTypeRegistry:
    """A fresh plugin manager with the built-ins and `plugins` (no installed ones)."""
    return field_types(make_plugin_manager(*plugins, entry_points=False))


def builtin_registry() -> FieldTypeRegistry:
    return registry_with()


def rating_pack(root: Path, **rating: Any) -> Path:
    return write_pack(root, "reviews", "0.1.0", {
        "review": {"fields": {
            "title": {"type": "text", "required": True},
            "score": {"type": "star_score", "label": "Score", **rating},
        }},
    })


def test_plugin_type_follows_the_built_ins() -> None:
    registry = registry_with(RatingPlugin())
    assert registry.names() == [*(t.name for t in BUILTIN_TYPES), "star_score"]
    assert isinstance(registry["star_score"], Rating)
    assert "star_score" in registry and "stars" not in registry


def test_plugin_type_is_in_the_pack_schema() -> None:
    document = PackSchema(registry_with(RatingPlugin())).document
    field_def = document["$defs"]["field"]
    assert "star_score" in field_def["properties"]["type"]["enum"]
    [rule] = [rule for rule in field_def["allOf"]
              if rule["if"]["properties"]["type"] == {"const": "star_score"}]
    assert rule["then"] == {"$ref": "#/$defs/field_star_score"}
    closed = document["$defs"]["field_star_score"]
    assert closed["properties"]["stars"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert {"label", "help", "required", "default"} <= set(closed["properties"])
    assert closed["additionalProperties"] is False
    # Another manager's registry is untouched: its schema knows no rating.
    plain = builtin_registry()
    assert "star_score" not in PackSchema(plain).document["$defs"]["field"]["properties"]["type"]["enum"]
    assert "star_score" not in plain


def test_pack_using_the_plugin_type_loads(tmp_path: Path) -> None:
    registry = registry_with(RatingPlugin())
    pack = load_pack(rating_pack(tmp_path, stars=10), registry)
    [entity] = pack.entities
    score = next(f for f in entity.fields if f.name == "score")
    assert (score.type, score.label, dict(score.settings)) == ("star_score", "Score", {"stars": 10})
    # The loaded definition drives the plugin's own coercion.
    assert registry["star_score"].coerce(" 9 ", score) == 9
    with pytest.raises(CoercionError, match="is not a rating from 1 to 10"):
        registry["star_score"].coerce(11, score)


@pytest.mark.parametrize(("rating", "message"), [
    ({"stars": 50}, "50 is greater than the maximum of 10"),
    ({"stars": "five"}, "expected a whole number, got text 'five'"),
    ({"colour": "gold"}, "unknown key 'colour'"),
])
def test_plugin_settings_are_validated_like_built_ins(tmp_path: Path, rating: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_pack(rating_pack(tmp_path, **rating), registry_with(RatingPlugin()))
    messages = [p.message for p in caught.value.problems]
    assert any(message in m for m in messages), messages
    assert all(p.location.file == "entities/review.yaml" and p.location.line for p in caught.value.problems)


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_pack(rating_pack(tmp_path), builtin_registry())
    [problem] = caught.value.problems
    assert "'star_score' is not a field type; known types: text, long_text" in problem.message


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="field type 'text' is registered twice"):
        registry_with(ClashingPlugin())
    with pytest.raises(ValueError, match="field type 'star_score' is registered twice"):
        registry_with(RatingPlugin(), RatingPlugin())
    registry = FieldTypeRegistry([Rating()])
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Rating())
    assert registry.names() == ["star_score"]


def test_each_manager_builds_its_own_registry() -> None:
    """No cached global registry: two managers, two registries, each with what was registered."""
    first, second = builtin_registry(), registry_with(RatingPlugin())
    assert first.names() == [t.name for t in BUILTIN_TYPES]
    assert first is not builtin_registry()
    assert "star_score" in second and "star_score" not in first


def test_the_default_manager_has_the_built_ins_then_installed_plugins() -> None:
    # tests/plugins/slatecrm_example_plugin is installed by `make install` (entry point).
    assert default_field_types().names() == [*[t.name for t in BUILTIN_TYPES], "color"]
