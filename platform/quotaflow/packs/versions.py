"""Semantic versions and the constraints packs use for `extends` and `requires`."""

from __future__ import annotations

import re

_CLAUSE = re.compile(r"^\s*(\^|~|>=|<=|>|<|==|=)?\s*(\d+(?:\.\d+){0,2})\s*$")

Version = tuple[int, int, int]


def parse_version(text: str) -> Version:
    """'1.4.0' -> (1, 4, 0); missing parts are 0; a pre-release suffix is ignored."""
    core = re.split(r"[-+]", text.strip(), maxsplit=1)[0]
    parts = [int(p) for p in core.split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def satisfies(version: str, constraint: str) -> bool:
    """Whether `version` meets a constraint like '^1.0', '~1.2.3', '>=0.1,<2'."""
    have = parse_version(version)
    return all(_clause_holds(have, clause) for clause in constraint.split(",") if clause.strip())


def valid_constraint(constraint: str) -> bool:
    """Whether every comma-separated clause of the constraint can be read."""
    return all(_CLAUSE.match(c) for c in constraint.split(",")) and bool(constraint.strip())


def _clause_holds(have: Version, clause: str) -> bool:
    match = _CLAUSE.match(clause)
    if not match:
        return False
    op, text = match.group(1) or "=", match.group(2)
    want = parse_version(text)
    given = len(text.split("."))
    if op == "^":
        upper = (want[0] + 1, 0, 0) if want[0] else (0, want[1] + 1, 0)
        return want <= have < upper
    if op == "~":
        upper = (want[0], want[1] + 1, 0) if given >= 2 else (want[0] + 1, 0, 0)
        return want <= have < upper
    return {
        ">=": have >= want,
        "<=": have <= want,
        ">": have > want,
        "<": have < want,
    }.get(op, have[:given] == want[:given])
