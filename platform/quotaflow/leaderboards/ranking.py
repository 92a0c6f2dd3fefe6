"""Ranks as people expect them: ties share a rank and the next rank skips (1, 2, 2, 4).

Blank values are not ranked: a rep without a figure is listed last, without a number, rather
than ranked behind someone who scored zero.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


def _comparable(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        return None


def competition_ranks(
    values: Mapping[K, Any], *, higher_is_better: bool = True
) -> dict[K, int | None]:
    """key -> rank (1 is best; equal values share a rank; the next rank skips), None if blank."""
    numbers = {k: _comparable(v) for k, v in values.items()}
    ranked = sorted(
        (k for k, v in numbers.items() if v is not None),
        key=lambda k: numbers[k],  # type: ignore[arg-type, return-value]
        reverse=higher_is_better,
    )
    ranks: dict[K, int | None] = {k: None for k in values}
    previous: Decimal | None = None
    for position, key in enumerate(ranked, start=1):
        value = numbers[key]
        if previous is None or value != previous:
            rank = position
        ranks[key] = rank
        previous = value
    return ranks


def ordered(ranks: Mapping[K, int | None], name: Callable[[K], str]) -> list[K]:
    """Keys best first; ties and the unranked by name, the unranked last."""
    return sorted(ranks, key=lambda k: (ranks[k] is None, ranks[k] or 0, name(k).casefold()))


def winners(
    values: Mapping[K, Any],
    top: int,
    *,
    higher_is_better: bool = True,
    minimum: Decimal | None = None,
) -> set[K]:
    """Who wins a top-N award: rank within N (everyone tied at the line wins), a real
    figure (not blank; above zero when higher is better) and at least `minimum` if given."""
    eligible = {}
    for key, value in values.items():
        number = _comparable(value)
        if number is None or (higher_is_better and number <= 0):
            continue
        if minimum is not None and number < minimum:
            continue
        eligible[key] = number
    ranks = competition_ranks(eligible, higher_is_better=higher_is_better)
    return {k for k, r in ranks.items() if r is not None and r <= top}
