"""Every hook is documented: a docstring in hookspecs.py and a section in docs/plugins.md
whose heading gives the hook's arguments, with an example. A hook added without its
documentation, or documented with other arguments than it has, fails here."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import FunctionType

import pytest

from slatecrm.plugins import hookspecs
from slatecrm.plugins.manager import make_plugin_manager

DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"
HEADING = re.compile(r"^### (slatecrm_\w+)\((.*)\)\s*$", re.MULTILINE)


def declared_hooks() -> dict[str, FunctionType]:
    return {name: function for name, function in vars(hookspecs).items()
            if isinstance(function, FunctionType) and hasattr(function, "slatecrm_spec")}


def documented_sections() -> dict[str, tuple[list[str], str]]:
    """Hook name → (arguments in the heading, the section's text up to the next heading)."""
    text = DOCS.read_text()
    matches = list(HEADING.finditer(text))
    sections = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        arguments = [a.strip() for a in match.group(2).split(",") if a.strip()]
        sections[match.group(1)] = (arguments, text[match.end():end])
    return sections


def test_the_hooks_are_the_ones_the_manager_knows() -> None:
    manager = make_plugin_manager(entry_points=False)
    assert set(declared_hooks()) == {name for name in vars(manager.hook) if name.startswith("slatecrm_")}
    assert len(declared_hooks()) >= 7


@pytest.mark.parametrize("name", sorted(declared_hooks()))
def test_hook_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(declared_hooks()[name]) or ""
    assert len(doc.split()) >= 10, f"{name} in hookspecs.py needs a docstring saying when it is called"


@pytest.mark.parametrize("name", sorted(declared_hooks()))
def test_hook_has_a_section_in_the_docs(name: str) -> None:
    sections = documented_sections()
    assert name in sections, f"docs/plugins.md has no section '### {name}(…)'"
    arguments, body = sections[name]
    assert arguments == list(inspect.signature(declared_hooks()[name]).parameters), (
        f"the heading of {name} in docs/plugins.md lists other arguments than hookspecs.py")
    assert "```python" in body and "@hookimpl" in body, f"the section of {name} needs an example"
    for argument in arguments:
        assert f"`{argument}`" in body.split("```python")[0], (
            f"the section of {name} does not say what {argument!r} is")


def test_no_section_documents_a_hook_that_does_not_exist() -> None:
    assert set(documented_sections()) <= set(declared_hooks())
