"""Problems found in definitions, each tied to the place a person has to fix."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Location:
    """A place in a pack: file (relative to the pack), 1-based line and column, document path."""

    file: str = ""
    line: int = 0
    column: int = 0
    path: str = ""

    def __str__(self) -> str:
        where = self.file or "<definitions>"
        if self.line:
            where += f":{self.line}:{self.column}"
        return where


@dataclass(frozen=True)
class Problem:
    message: str
    location: Location = field(default_factory=Location)
    pack: str = ""

    def __str__(self) -> str:
        prefix = f"{self.pack}/" if self.pack and self.location.file else ""
        where = f"{prefix}{self.location}"
        path = f" {self.location.path}:" if self.location.path else ""
        return f"{where}:{path} {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "pack": self.pack,
            "file": self.location.file,
            "line": self.location.line,
            "column": self.location.column,
            "path": self.location.path,
            "message": self.message,
        }


class DefinitionError(Exception):
    """One or more problems in definitions; nothing was changed."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: Sequence[Problem] = sorted(
            problems, key=lambda p: (p.pack, p.location.file, p.location.line, p.location.column)
        )
        super().__init__("\n".join(str(p) for p in self.problems))
