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
                pos = node.lc.key(part) if (key and last) else node.lc.value(part)
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


def parse_yaml(text: str, file: str) -> SourceDocument | Problem:
    """Parse one YAML document; a syntax error (or a duplicate key) becomes a Problem."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = (error.problem or "YAML syntax error").strip()
        if "duplicate key" in what:
            key = str(getattr(error, "problem", "")).split('"')[1] if '"' in what else ""
            what = f"duplicate key {key!r}: each name may appear only once" if key else what
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(f"YAML syntax error: {what}", Location(file, line, column))
    except YAMLError as error:
        return Problem(f"YAML error: {error}", Location(file, 1, 1))
    return SourceDocument(file, _plain(root), root)
