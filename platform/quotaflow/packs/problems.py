"""What is wrong with a pack, said so a consultant can fix it: file, line, path, message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from quotaflow.errors import QuotaflowError

Path_ = tuple[str | int, ...]


def path_text(path: Path_) -> str:
    """A JSON path as people read it: fields/2/visible_if ('(document)' for the root)."""
    return "/".join(str(p) for p in path) or "(document)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in a pack."""

    file: str
    line: int | None
    path: str
    message: str
    detail: str = ""  # e.g. the expression with a caret under the mistake

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}"
        if self.detail:
            text += "\n" + "\n".join("    " + line for line in self.detail.splitlines())
        return text


class PackInvalid(QuotaflowError):
    """A pack with one or more problems; nothing was installed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        summary = f"{count} problem{'s' if count != 1 else ''} found; nothing was installed"
        super().__init__("\n".join([*map(str, self.problems), summary]))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' — did you mean 'x'?' when a candidate is close enough, else ''."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


def unknown(what: str, name: str, candidates: Iterable[str]) -> str:
    """ "unknown field 'amout' — did you mean 'amount'?" (or the list when short)."""
    pool = sorted(set(candidates))
    hint = did_you_mean(name, pool)
    if not hint and pool and len(pool) <= 8:
        hint = f" (known: {', '.join(pool)})"
    return f"unknown {what} '{name}'{hint}"
