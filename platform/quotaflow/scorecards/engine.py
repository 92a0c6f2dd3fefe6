"""Scoring one person on a scorecard from their figures, with an explanation that adds up.

Inputs are plain figures: a KPI's actual under its id, a plan target under `target.<kpi>`,
a manual rating under the item id. Every item is scored by its rule (a compiled expression),
blank items follow the declared policy, groups and the final score are weighted sums computed
in Decimal, and every contribution is kept so the page can show exactly why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from quotaflow.expressions import Expression, ExpressionError, ValueType, compile_expression
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import ScorecardDef, ScoreItemDef, label_text, readable_id

DEFAULT_KPI_SCORE = "MIN(actual / target, 1.2) * 100"
DEFAULT_RATING_SCORE = "rating / scale_max * 100"
BLANK_AWARE = frozenset({"IF", "ISBLANK", "COALESCE"})  # a rule using one decides blanks itself
HUNDRED = Decimal(100)
CENT = Decimal("0.01")


@cache
def _default(text: str, names: tuple[str, ...]) -> Expression:
    return compile_expression(text, dict.fromkeys(names, ValueType.NUMBER), expect=ValueType.NUMBER)


@dataclass(frozen=True, slots=True)
class ItemScore:
    """One item: its figures, its score, its effective weights and what it adds to the final."""

    id: str
    label: str
    group: str
    kind: str  # kpi | manual | formula
    actual: Decimal | None
    target: Decimal | None
    attainment: Decimal | None
    score: Decimal | None  # None only when excluded
    weight: Decimal  # as declared, within its group
    effective_weight: Decimal  # after blank items' weight was shared out
    contribution: Decimal  # points of the final score
    excluded: bool


@dataclass(frozen=True, slots=True)
class GroupScore:
    """A group: weighted score of its items, its effective weight and contribution."""

    id: str
    weight: Decimal
    effective_weight: Decimal
    score: Decimal | None
    contribution: Decimal


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A person's scorecard result with its full explanation."""

    scorecard: str
    items: tuple[ItemScore, ...]
    groups: tuple[GroupScore, ...]
    final_score: Decimal
    grade: str
    bonus: Decimal

    def outputs(self) -> dict[str, Any]:
        """Flat outputs for pack tests: final_score, grade, bonus, group.<id>, item.<id>."""
        out: dict[str, Any] = {
            "final_score": self.final_score,
            "grade": self.grade,
            "bonus": self.bonus,
        }
        out.update({f"group.{g.id}": g.score for g in self.groups})
        out.update({f"item.{i.id}": i.score for i in self.items})
        return out


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def item_id(item: ScoreItemDef, index: int) -> str:
    """The id an item is known by: its id, else its KPI or manual id."""
    return item.id or item.kpi or item.manual or f"item_{index + 1}"


def item_label(pack: CompiledPack, item: ScoreItemDef, index: int, locale: str) -> str:
    """An item's name for people: its own label, else its KPI's ("Won revenue"), else its id."""
    fallback = item_id(item, index)
    if item.label is None and item.kpi is not None and item.kpi in pack.kpis:
        return label_text(pack.kpis[item.kpi].label, locale, fallback)
    return label_text(item.label, locale, fallback)


def group_label(card: ScorecardDef, group: str, locale: str) -> str:
    """A group's name for people: its label in `group_labels`, else its id, capitalised."""
    labels = card.group_labels or {}
    return label_text(labels.get(group), locale, readable_id(group))


def score_card(
    pack: CompiledPack, scorecard_id: str, inputs: Mapping[str, Any], *, locale: str = "en"
) -> ScoreResult:
    """Score one person's figures on a scorecard."""
    card = pack.scorecards[scorecard_id]
    raw_scores = [_item_score(pack, card, i, item, inputs) for i, item in enumerate(card.items)]
    items: list[ItemScore] = []
    groups: list[GroupScore] = []
    group_scores: dict[str, Decimal | None] = {}
    group_items: dict[str, list[tuple[int, Decimal | None]]] = {g: [] for g in card.groups}
    for i, item in enumerate(card.items):
        group_items[item.group].append((i, raw_scores[i][3]))
    effective_item: dict[int, Decimal] = {}
    for group, members in group_items.items():
        kept = [(i, s) for i, s in members if s is not None]
        total = sum((Decimal(str(card.items[i].weight)) for i, _s in kept), Decimal(0))
        for i, _s in members:
            weight = Decimal(str(card.items[i].weight))
            effective_item[i] = (
                (weight * HUNDRED / total) if total and raw_scores[i][3] is not None else Decimal(0)
            )
        group_scores[group] = (
            sum((s * effective_item[i] / HUNDRED for i, s in kept), Decimal(0)) if kept else None
        )
    kept_groups = {
        g: Decimal(str(w)) for g, w in card.groups.items() if group_scores[g] is not None
    }
    group_total = sum(kept_groups.values(), Decimal(0))
    effective_group = {
        g: (kept_groups[g] * HUNDRED / group_total)
        if g in kept_groups and group_total
        else Decimal(0)
        for g in card.groups
    }
    for group, group_weight in card.groups.items():
        group_score = group_scores[group]
        contribution = (group_score or Decimal(0)) * effective_group[group] / HUNDRED
        groups.append(
            GroupScore(
                group, Decimal(str(group_weight)), effective_group[group], group_score, contribution
            )
        )
    for i, item in enumerate(card.items):
        actual, target, attainment, score, kind = raw_scores[i]
        contribution = (
            (score or Decimal(0))
            * effective_item[i]
            / HUNDRED
            * effective_group[item.group]
            / HUNDRED
        )
        items.append(ItemScore(
            item_id(item, i), item_label(pack, item, i, locale), item.group, kind,
            actual, target, attainment, score, Decimal(str(item.weight)), effective_item[i],
            contribution, score is None,
        ))  # fmt: skip
    final = sum((g.contribution for g in groups), Decimal(0))
    if card.final is not None:
        names: dict[str, Any] = {g.id: g.score for g in groups}
        names.update({it.id: it.score for it in items})
        final = _decimal(
            _evaluate(pack.expression("scorecard", card.id, "final"), names)
        ) or Decimal(0)
    final = final.quantize(CENT, rounding=ROUND_HALF_UP)
    grade, bonus = grade_of(card, final)
    return ScoreResult(card.id, tuple(items), tuple(groups), final, grade, bonus)


def grade_of(card: ScorecardDef, final: Decimal) -> tuple[str, Decimal]:
    """The grade band the final score falls in, and its bonus coefficient."""
    for band in sorted(card.grades, key=lambda g: g.min, reverse=True):
        if final >= Decimal(str(band.min)):
            return band.grade, Decimal(str(band.bonus))
    lowest = min(card.grades, key=lambda g: g.min)
    return lowest.grade, Decimal(str(lowest.bonus))


def _evaluate(expression: Expression, names: Mapping[str, Any]) -> Any:
    try:
        return expression.evaluate(names)
    except ExpressionError:
        return None


def _item_score(
    pack: CompiledPack,
    card: ScorecardDef,
    index: int,
    item: ScoreItemDef,
    inputs: Mapping[str, Any],
) -> tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None, str]:
    """(actual, target, attainment, score or None when excluded, kind)."""
    policy = item.blank or card.blank
    if item.kpi is not None:
        actual = _decimal(inputs.get(item.kpi))
        target = (
            _decimal(inputs.get(f"target.{item.kpi}"))
            if isinstance(item.target, str) or item.target is None
            else _decimal(item.target)
        )
        attainment = (actual / target) if actual is not None and target else None
        rule = (
            pack.expression("scorecard", card.id, "items", index, "score")
            if item.score
            else _default(DEFAULT_KPI_SCORE, ("actual", "target", "attainment"))
        )
        names: dict[str, Any] = {"actual": actual, "target": target, "attainment": attainment}
        kind = "kpi"
        unmeasured = actual is None or (not target and rule.names & {"target", "attainment"})
        if unmeasured and not rule.functions & BLANK_AWARE:
            # Nothing to measure, or nothing to measure against: the item is blank and follows
            # the card's policy. Left to its rule, MIN(actual / target, 1.2) would skip the
            # blank quotient and give the cap: 120 to a new rep who has no target yet. A rule
            # that says what a blank or zero scores (IF, ISBLANK, COALESCE) is asked instead.
            return actual, target, attainment, _blank_score(policy), kind
    elif item.manual is not None:
        low, high = item.scale or (1, 5)
        actual, target, attainment = _decimal(inputs.get(item_id(item, index))), None, None
        rule = (
            pack.expression("scorecard", card.id, "items", index, "score")
            if item.score
            else _default(DEFAULT_RATING_SCORE, ("rating", "scale_min", "scale_max"))
        )
        names = {"rating": actual, "scale_min": low, "scale_max": high}
        kind = "manual"
    else:
        actual = target = attainment = None
        rule = pack.expression("scorecard", card.id, "items", index, "formula")
        names = dict(inputs)
        kind = "formula"
    score = _decimal(_evaluate(rule, names))
    if score is None:
        return actual, target, attainment, _blank_score(policy), kind
    return actual, target, attainment, score, kind


def _blank_score(policy: str) -> Decimal | None:
    """A blank item's score: 0, or None (left out) under `blank: exclude`."""
    return None if policy == "exclude" else Decimal(0)
