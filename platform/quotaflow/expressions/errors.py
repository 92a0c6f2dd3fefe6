"""The engine's error types: every problem with an expression is an ExpressionError."""

from __future__ import annotations

from quotaflow.errors import QuotaflowError


class ExpressionError(QuotaflowError):
    """The engine's only error type: a message, and where in the text it applies."""

    def __init__(
        self, message: str, text: str = "", line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.text, self.line, self.column = message, text, line, column

    def caret(self) -> str:
        """The offending source line and a ^ under the column ('' when unknown)."""
        if self.line is None or self.column is None or not self.text:
            return ""
        lines = self.text.splitlines() or [""]
        line = min(max(self.line, 1), len(lines))
        src = "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in lines[line - 1])
        if len(src) > 200:  # keep a readable window around the column
            start = max(0, self.column - 100)
            src = src[start : start + 200]
            column = self.column - start
        else:
            column = self.column
        column = min(max(column, 1), len(src) + 1)
        pad = "".join("\t" if ch == "\t" else " " for ch in src[: column - 1])
        return f"{src}\n{pad}^"

    def describe(self) -> str:
        """Message (with line and column when known) plus caret, ready to print."""
        caret = self.caret()
        if not caret:
            return self.message
        where = f"line {self.line}, column {self.column}: " if "\n" in self.text.strip() else ""
        return f"{where}{self.message}\n{caret}"

    def with_text(self, text: str) -> ExpressionError:
        """This error, attached to `text` when it has none yet."""
        if not self.text:
            self.text = text
        return self


class CycleError(ExpressionError):
    """Definitions that depend on each other in a loop; `.cycle` names them in order."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("circular dependency: " + " -> ".join(cycle))
        self.cycle = cycle
