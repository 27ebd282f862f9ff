"""The `rich_text` field type: formatted notes, kept as HTML sanitised on input.

Every value passes through nh3 (the Ammonia sanitiser) with an allow-list suited to notes:
paragraphs, line breaks, bold / italic / underline / strike, links (http, https and mailto
only, rel="noopener noreferrer"), lists, quotes, code and headings h2–h4. Nothing else
survives: no scripts, styles, event handlers, images or frames.

Two columns: the main column holds the value's plain text (tags stripped), which the
list's search, rules, sorting and list filters read; `<name>__html` holds the sanitised
HTML, which the API returns and record pages render (sanitised once more on the way out).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, ClassVar

import nh3
import sqlalchemy as sa
from markupsafe import Markup

from ..rules.types import TEXT, Type
from .base import CoercionError, ColumnSpec, FieldType, SampleSource, text_pattern

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..model import Field

#: The tags a rich text may hold (anything else is removed, its text kept).
ALLOWED_TAGS = frozenset({"p", "br", "b", "strong", "i", "em", "u", "s", "a", "ul", "ol", "li",
                          "blockquote", "code", "pre", "h2", "h3", "h4"})
ALLOWED_ATTRIBUTES = {"a": {"href"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
#: Tags whose content goes with them (what a note never means to show).
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "noscript", "title"})
#: Tags that end a line of the plain text.
_BLOCKS = frozenset({"p", "br", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6",
                     "div", "tr", "table"})
#: A text holding one of these is HTML; a text without is read as lines of plain text.
_TAG = re.compile(r"<[A-Za-z/!]")
#: A text with a character outside its tags, other than a space (not blank once sanitised,
#: short of a value made only of a script or of entities such as &nbsp;).
SOME_TEXT = "^(?:[^\\u0000]*>)?[^<\\u0000]*[^<>\\s\\u0000][^\\u0000]*$"
#: The longest HTML a value may have unless the field says less (the `max_length` setting).
MAX_HTML = 1_000_000


def sanitise(html: str) -> str:
    """`html` with only the allowed tags, attributes and link schemes left."""
    return nh3.clean(html, tags=set(ALLOWED_TAGS), clean_content_tags=set(DROPPED_WITH_CONTENT),
                     attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer", strip_comments=True)


class _PlainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")
        self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")
        self.pre -= tag == "pre" and self.pre > 0

    def handle_data(self, data: str) -> None:
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def plain_text(html: str) -> str:
    """The text a reader sees in `html`, one line per paragraph (or line break, list item,
    heading), each line trimmed, blank lines left out."""
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)


def _shortened(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RichText(FieldType):
    name = "rich_text"
    label = "Rich text"
    settings_schema = {"max_length": {"type": "integer", "minimum": 1, "maximum": MAX_HTML,
                                      "description": "the most characters of (sanitised) HTML"}}
    constraint_settings = ("max_length",)
    widget_template = "widgets/rich_text.html"
    value_template = "values/rich_text.html"
    section = "notes"
    searchable = True
    computable = False  # a formula gives plain text, not a document
    widget_scripts = ("/static/vendor/squire.js", "/static/richtext.js")
    list_rank: ClassVar[int | None] = None

    # --- storage: the plain text in the main column, the HTML beside it -------------------------
    def sql_type(self, field: Field) -> sa.types.TypeEngine[Any]:
        return sa.String()

    def columns(self, field: Field) -> list[ColumnSpec]:
        return [ColumnSpec("", sa.String()), ColumnSpec("html", sa.String())]

    def to_columns(self, value: Any, field: Field) -> dict[str, Any]:
        if value is None:
            return {"": None, "html": None}
        return {"": plain_text(value), "html": value}

    def from_columns(self, values: Mapping[str, Any], field: Field) -> Any:
        html = values.get("html")
        if html is None and values.get("") is not None:  # only the text: show it as text
            return nh3.escape(str(values[""])).replace("\n", "<br>")
        return html

    def companions_convert(self, field: Field) -> bool:
        """The HTML column is the value itself: a text type would take it as markup in place
        of the text the main column holds, so a retype dropping it is blocked while it holds
        values (the planner never drops a column with data; export the notes first)."""
        return False

    # --- values -------------------------------------------------------------------------------
    def convert(self, value: Any, field: Field) -> Any:
        """A value the platform converts (a retype's stored text, a pack's default): refused
        when sanitising would lose some of its text (a script's, say), so a retype reports
        those rows instead of dropping what they hold."""
        text = self._text(value)
        html = self._clean(text, field)
        after = plain_text(html or "")
        before = plain_text(text) if _TAG.search(text) else after
        if " ".join(before.split()) != " ".join(after.split()):
            raise CoercionError(f"sanitising the HTML drops text (the value reads {_shortened(before)!r}, "
                                f"would read {_shortened(after)!r})")
        return html

    def coerce_given(self, value: Any, field: Field) -> Any:
        """What a client sends is sanitised: anything not allowed is removed."""
        if value is None:
            return None
        return self._clean(self._text(value), field)

    def _text(self, value: Any) -> str:
        if not isinstance(value, str):
            kind = "true/false" if isinstance(value, bool) else type(value).__name__
            raise CoercionError(f"expected HTML text, got {kind}: send the HTML as a JSON string")
        if "\x00" in value:
            raise CoercionError("contains a NUL character, which text cannot hold")
        return value

    def _clean(self, text: str, field: Field) -> str | None:
        if not _TAG.search(text):  # plain text: its line breaks are kept as <br>
            text = "\n".join(text.splitlines())
            html = sanitise(text).strip().replace("\n", "<br>")
        else:
            html = sanitise(text).strip()
        if not plain_text(html):  # "<p><br></p>", what an editor leaves when emptied
            return None
        limit = min(int(field.settings.get("max_length", MAX_HTML)), MAX_HTML)
        if len(html) > limit:
            raise CoercionError(f"is {len(html):,} characters of HTML; at most {limit:,} are allowed")
        return html

    def display(self, value: Any, field: Field) -> str:
        """The plain text (CSV export, titles, history)."""
        return "" if value is None else plain_text(value)

    def safe_html(self, value: Any, field: Field) -> Markup:
        """The HTML a page shows: sanitised once more (the stored value already was), so
        nothing that reached the column by another way is shown unsanitised."""
        return Markup(sanitise(str(value or "")))

    def form_inputs(self, value: Any, field: Field) -> dict[str, Any]:
        return {"": "" if value is None else str(value)}

    def sample(self, field: Field, pick: SampleSource) -> Any:
        sentences = [pick.fake.sentence() for _ in range(3)]
        return (f"<p><strong>{sentences[0]}</strong> {sentences[1]}</p>"
                f"<ul><li>{sentences[2]}</li></ul>")

    # --- the API ------------------------------------------------------------------------------
    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "contentMediaType": "text/html"}
        if "max_length" in field.settings:
            schema["maxLength"] = field.settings["max_length"]
        return schema

    def input_schema(self, field: Field, *, required: bool) -> dict[str, Any]:
        # Any text without NUL: the server sanitises it. A required value must have some text
        # outside its tags (SOME_TEXT); maxLength counts the text sent, the limit applies to
        # the sanitised HTML (a link gains its rel attribute), so the server may refuse a
        # little more than the document.
        schema: dict[str, Any] = {"type": "string", "pattern": "^[^\\u0000]*$"}
        if required:
            schema["pattern"] = SOME_TEXT
        if "max_length" in field.settings:
            schema["maxLength"] = field.settings["max_length"]
        return schema

    def filter_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "pattern": text_pattern("\\u0000", required=True)}

    def parse_text(self, text: str, field: Field) -> Any:
        """A list filter's value is the plain text to compare, taken as typed: markup in
        it is text to find, never sanitised away (`notes__ne=a <b` means those characters),
        so no filter value the document admits is refused. Given back as the HTML whose
        plain text it is, which the main column is compared with."""
        text = self._text(text)
        if not text.strip():
            return None
        return nh3.escape("\n".join(text.splitlines())).replace("\n", "<br>")

    # --- rules: the plain text ---------------------------------------------------------------
    def rule_type(self, field: Field) -> Type | None:
        return TEXT

    def rule_value(self, value: Any, field: Field) -> Any:
        return None if value is None else plain_text(value)

    def check_definition(self, field: Field) -> Iterator[tuple[str, str]]:
        return iter(())
