"""A rule that cannot be read or does not fit the metamodel, with the place to fix."""

from __future__ import annotations


class RuleError(Exception):
    """`message` for people, at `line`/`column` (1-based) of the expression `text`."""

    def __init__(self, message: str, line: int, column: int, text: str = ""):
        self.message = message
        self.line = line
        self.column = column
        self.text = text
        super().__init__(f"{message} (line {line}, column {column})")

    def with_text(self, text: str) -> RuleError:
        return RuleError(self.message, self.line, self.column, text)

    def caret(self) -> str:
        """The offending line of the expression with a caret under the place."""
        lines = self.text.splitlines() or [""]
        source = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        return f"{source}\n{' ' * (max(self.column, 1) - 1)}^"

    def describe(self) -> str:
        """The message, its position and the caret, for terminals and pack errors."""
        return f"{self}\n{self.caret()}"
