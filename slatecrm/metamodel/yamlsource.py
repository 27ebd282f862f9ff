"""YAML documents that remember where each key and value stood, for error messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .errors import Location, Problem

PathPart = str | int


@dataclass(frozen=True)
class SourceDocument:
    """A parsed file: plain data (dicts, lists, scalars) plus the positions of its nodes."""

    file: str
    data: Any
    _root: Any

    def locate(self, path: Sequence[PathPart], *, key: bool = False) -> Location:
        """The position of the node at `path` (of its key when `key`), or of its nearest parent."""
        node = self._root
        line, column = 0, 0
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(node, CommentedMap) and part in node:
                # An empty value has no position of its own: ruamel gives the next token's,
                # which may be lines below; the key is where the value is missing.
                at_key = (key and last) or node[part] is None
                pos = node.lc.key(part) if at_key else node.lc.value(part)
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                pos = node.lc.item(part)
            else:
                break
            line, column = pos[0] + 1, pos[1] + 1
            node = node[part]
        else:
            if not path and isinstance(node, CommentedMap | CommentedSeq):
                line, column = node.lc.line + 1, node.lc.col + 1
        return Location(self.file, line or 1, column or 1, render_path(path))


def render_path(path: Sequence[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.datetime | dt.date):
        return node.isoformat()
    return str(node)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _explain(error: MarkedYAMLError) -> str:
    """The parser's complaint in the words of someone editing the file.

    ruamel speaks of tokens ("expected <block end>, but found '<block mapping start>'"),
    which says nothing to a person who indented one key by a space too many.
    """
    what = (error.problem or "YAML syntax error").strip()
    context = (error.context or "").strip()
    opened = error.context_mark
    if "duplicate key" in what:
        key = what.split('"')[1] if '"' in what else ""
        return f"duplicate key {key!r}: each name may appear only once" if key else what
    if "'\\t'" in what:
        return "a tab character: indent with spaces (YAML does not allow tabs for indentation)"
    if context.startswith("while parsing a flow") and opened is not None:
        bracket, closing = ("[", "]") if "sequence" in context else ("{", "}")
        return (f"expected ',' or '{closing}': the '{bracket}' opened at {_at(opened)} "
                "is not closed, or a ',' is missing")
    if context.startswith("while parsing a block") and "<block end>" in what:
        return "bad indentation: this line does not line up with the lines above it"
    if "mapping values are not allowed" in what:
        return ("unexpected ':': put quotes around a value that holds ': ', "
                "or check the indentation")
    if context.startswith("while scanning a quoted scalar") and opened is not None:
        return f"the quote opened at {_at(opened)} is not closed"
    if "another document" in what:
        return "a second YAML document ('---'): a file holds one definition"
    return what


def parse_yaml(text: str, file: str) -> SourceDocument | Problem:
    """Parse one YAML document; a syntax error (or a duplicate key) becomes a Problem."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(f"YAML syntax error: {_explain(error)}", Location(file, line, column))
    except YAMLError as error:
        return Problem(f"YAML error: {error}", Location(file, 1, 1))
    return SourceDocument(file, _plain(root), root)
