"""Rendering a workflow's templates (an e-mail's subject, body and HTML part, a note's text).

Templates are Jinja2, rendered in Jinja2's immutable sandbox: a template reads what it is
given and can call no method that changes it, and reaching for Python's internals
(`record.__class__`, `''.__class__.__mro__`) stops the rendering with `TemplateFailed`
(the sandbox's default would be to print nothing, hiding the attempt). The install checks
the same templates in the same sandbox (metamodel/workflowchecks.py), so a template that
fails here fails on the data (a type error in an expression, say), not on its text.

What a template is given (metamodel.workflows.TEMPLATE_NAMES):

- `record`: the record's fields. A reference field reads as the record it points to, loaded
  when the template first reads it (`record.<reference>.<field>`), through `RecordView`;
- `previous`: the record's fields before the change, for the triggers that are changes
  (absent otherwise, so that `previous.x` prints nothing);
- `workflow`: the workflow's own name, label and the like.

A name or field that is not there prints nothing, as does a field that is empty (None), and
so does everything read through it (`record.missing.name`); computing with it (`+ 1`) is an
error. The subject and text body are rendered without escaping, the HTML part with
autoescaping on (a field's `<b>` arrives as `&lt;b&gt;`; `|safe` is the template's own
choice).

Compiled templates are kept (a bounded LRU keyed by the text), so a workflow that runs for
every record compiles each of its templates once per process.
"""

from __future__ import annotations

import functools
import operator as _operator
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateFailed

__all__ = ["RecordView", "TemplateFailed", "render"]

#: How many compiled templates are kept for each kind (text, HTML).
CACHE_SIZE = 512
#: The longest text a template may produce, in characters; and the largest exponent and the
#: longest repeated string or list (`'x' * n`) an expression may make on the way.
MAX_OUTPUT = 1_000_000
MAX_EXPONENT = 1_000

Lookup = Callable[[str, Any], Mapping[str, Any] | None]
"""`lookup(entity, id)`: the fields of the record of `entity` with that id, or None when there is none."""


class RecordView(Mapping[str, Any]):
    """A record's fields as a template reads them: `values` as given, but for the reference
    fields (`references`: field → the entity it points to), which read as the record they
    point to (a `RecordView` too), fetched with `lookup` the first time a template reads them,
    or None when the reference is empty or its record is gone.

    References are followed `depth` levels deep (2: `record.<ref>.<ref>.<field>`); the
    referenced records' own references come from `references_of(entity)`, without which
    they stay ids. Below the last level a reference reads as its id. Each record is fetched
    once per view tree (the views share what they fetched).
    """

    __slots__ = ("_depth", "_fetched", "_lookup", "_references", "_references_of", "_values")

    def __init__(self, values: Mapping[str, Any], *, lookup: Lookup | None = None,
                 references: Mapping[str, str] | None = None,
                 references_of: Callable[[str], Mapping[str, str]] | None = None,
                 depth: int = 2, _fetched: dict[tuple[str, Any], RecordView | None] | None = None) -> None:
        self._values = values
        self._lookup = lookup
        self._references = references or {}
        self._references_of = references_of
        self._depth = depth
        self._fetched = {} if _fetched is None else _fetched

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        entity = self._references.get(key)
        if entity is None or value is None or self._lookup is None or self._depth <= 0:
            return value
        known = (entity, value)
        if known not in self._fetched:
            found = self._lookup(entity, value)
            self._fetched[known] = None if found is None else RecordView(
                found, lookup=self._lookup,
                references=self._references_of(entity) if self._references_of is not None else None,
                references_of=self._references_of, depth=self._depth - 1, _fetched=self._fetched)
        return self._fetched[known]

    def __contains__(self, key: object) -> bool:  # without fetching the referenced record
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"RecordView({dict(self._values)!r})"


class _Undefined(ChainableUndefined):
    """Prints nothing, and so does anything read through it; arithmetic with it raises."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:  # without the Python class of what it was read from
        if self._undefined_hint:
            return self._undefined_hint
        return f"{self._undefined_name!r} is undefined (a missing name or field) and cannot be computed with"


def _finalize(value: Any) -> Any:
    return "" if value is None else value  # an empty field prints nothing, not "None"


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, where an unsafe access raises (SecurityError) rather than printing
    nothing, a mapping's keys come before its methods (a field named `items` or `values` reads as
    the field), and `*`/`**` cannot build an enormous value."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and not attribute.startswith("_"):
            try:
                if attribute in obj:
                    return obj[attribute]
            except TypeError:  # an unhashable key: not there
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} "
                            "value is not allowed in a template")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"an exponent above {MAX_EXPONENT} is not allowed in a template")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int) \
                        and len(sequence) * times > MAX_OUTPUT:
                    raise SecurityError(f"repeating a value to more than {MAX_OUTPUT:,} items is not "
                                        "allowed in a template")
        return {"*": _operator.mul, "**": _operator.pow}[operator](left, right)


def _environment(html: bool) -> _Sandbox:
    return _Sandbox(autoescape=html, undefined=_Undefined, finalize=_finalize,
                    keep_trailing_newline=True, auto_reload=False, cache_size=0)


_TEXT = _environment(html=False)
_HTML = _environment(html=True)

#: What an expression of a template may raise on the values it is given. Anything else (a
#: database error while a reference is fetched, say) is not the template's fault and passes.
_TEMPLATE_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError, RecursionError)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _text_template(text: str) -> Template:
    return _TEXT.from_string(text)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _html_template(text: str) -> Template:
    return _HTML.from_string(text)


def compiled(template_text: str, *, html: bool = False) -> Template:
    """The compiled template (from the cache when it is there); TemplateFailed when the text
    does not parse."""
    try:
        return (_html_template if html else _text_template)(template_text)
    except TemplateSyntaxError as error:
        raise TemplateFailed(f"the template does not parse: {error.message} "
                             f"(line {error.lineno} of the template)") from error


def render(template_text: str, *, record: Mapping[str, Any], previous: Mapping[str, Any] | None,
           workflow: Mapping[str, Any], html: bool = False) -> str:
    """`template_text` rendered for `record` (a mapping of its fields; a `RecordView` to reach
    referenced records), `previous` (the fields before the change, or None) and `workflow`,
    HTML-escaped when `html`. A template that cannot be rendered raises TemplateFailed, saying
    why and at which line of the template."""
    template = compiled(template_text, html=html)
    names: dict[str, Any] = {"record": record, "workflow": workflow}
    if previous is not None:
        names["previous"] = previous
    try:
        text = template.render(names)
    except SecurityError as error:
        raise TemplateFailed(f"the template was refused: {error}{_line(error)}") from error
    except _TEMPLATE_ERRORS as error:
        message = str(error) or type(error).__name__
        raise TemplateFailed(f"the template failed: {type(error).__name__}: {message}{_line(error)}") \
            from error
    if len(text) > MAX_OUTPUT:
        raise TemplateFailed(f"the template gave {len(text):,} characters; at most {MAX_OUTPUT:,} "
                             "are allowed")
    return text


def _line(error: BaseException) -> str:
    """` (line N of the template)`, from the frames Jinja2 puts in the traceback for the
    template's lines, or nothing."""
    line = None
    trace: types.TracebackType | None = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return "" if line is None else f" (line {line} of the template)"


def clear_cache() -> None:
    """Forgets the compiled templates (tests; a process never needs to)."""
    _text_template.cache_clear()
    _html_template.cache_clear()
