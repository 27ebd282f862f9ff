"""Record titles from a template such as `{first_name} {last_name}`.

A title is what a person sees wherever a record is referenced, so a blank part must not
leave stray spaces or separators behind ("Smith", not " Smith" or "– Smith").
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

_SEPARATORS = " \t-–—,;:/|·"
_SPACES = re.compile(r"\s+")


class TemplateError(ValueError):
    pass


def template_fields(template: str) -> tuple[str, ...]:
    """The field names a template uses, in order; TemplateError for anything but plain
    `{field}` placeholders (no format specs, conversions, indexing or attributes)."""
    names: list[str] = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise TemplateError(f"{error} (write a literal brace as {{{{ or }}}})") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name or spec or conversion or not name.isidentifier():
            shown = "{" + (name or "") + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"{shown} is not a field placeholder; write {{field_name}}")
        if name not in names:
            names.append(name)
    if not names:
        raise TemplateError("a title template needs at least one {field} placeholder")
    return tuple(names)


def render(template: str, texts: Mapping[str, str]) -> str:
    """The template filled with each field's display text; blanks leave no trace."""
    pieces = []
    for literal, name, _, _ in string.Formatter().parse(template):
        pieces.append(literal)
        if name is not None:
            pieces.append(texts.get(name, "") or "\0")
    text = "".join(pieces)
    # A separator next to a blank part goes with it: "{company} – {city}" with no city.
    text = re.sub(r"[" + re.escape(_SEPARATORS) + r"]*\0[" + re.escape(_SEPARATORS) + r"]*", " ", text)
    return _SPACES.sub(" ", text).strip(_SEPARATORS)
