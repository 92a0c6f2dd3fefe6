"""Decomposition and phasing: exact sums and non-negative parts for every method."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotaflow.expressions import ValueType, compile_expression
from quotaflow.kpis.periods import parse_period
from quotaflow.targets.decompose import (
    LevelRule,
    OrgNode,
    TargetError,
    allocate,
    decompose,
    phase,
    phase_weights,
    scale,
    split_amount,
    tier_totals,
)

SPLIT_NAMES = {
    n: ValueType.NUMBER for n in ("last_year_share", "potential_share", "equal_share", "headcount")
}
WEIGHT = compile_expression("0.6 * last_year_share + 0.4 * potential_share", SPLIT_NAMES)


def test_largest_remainder_by_hand() -> None:
    assert allocate(Decimal("100"), [1, 1, 1]) == [
        Decimal("33.34"),
        Decimal("33.33"),
        Decimal("33.33"),
    ]
    assert allocate(Decimal("0.05"), [1, 1, 1, 1, 1, 1]) == [Decimal("0.01")] * 5 + [
        Decimal("0.00")
    ]
    assert allocate(Decimal("10"), [0, 0]) == [Decimal("5.00"), Decimal("5.00")]
    assert allocate(Decimal("10"), [2, 1, 1]) == [Decimal("5.00"), Decimal("2.50"), Decimal("2.50")]
    # the largest dropped fraction gets the cent, not the first part
    assert allocate(Decimal("1.00"), [1, 2]) == [Decimal("0.33"), Decimal("0.67")]
    with pytest.raises(TargetError, match="weights must be zero or more"):
        allocate(Decimal("1"), [1, -1])


def _tree() -> OrgNode:
    reps = lambda prefix, n: [OrgNode(f"{prefix}{i}", "rep", f"{prefix}{i}") for i in range(n)]  # noqa: E731
    east = OrgNode(
        "east",
        "region",
        "East",
        children=[
            OrgNode("east_a", "team", "East A", children=reps("a", 3)),
            OrgNode("east_b", "team", "East B", children=reps("b", 2)),
        ],
    )
    south = OrgNode(
        "south",
        "region",
        "South",
        children=[OrgNode("south_a", "team", "South A", children=reps("s", 4))],
    )
    return OrgNode("company", "company", "Company", children=[east, south])


def test_the_stock_plan_shape_by_hand() -> None:
    rules = [
        LevelRule("history", history={"east": 300, "south": 100}),
        LevelRule(
            "formula",
            weight=WEIGHT,
            history={"east_a": 1, "east_b": 1},
            potential={"east_a": 3, "east_b": 1},
        ),
        LevelRule("equal"),
    ]
    top = decompose(Decimal("1000000"), _tree(), rules)
    assert top.find("east").amount == Decimal("750000.00")  # type: ignore[union-attr]
    assert top.find("south").amount == Decimal("250000.00")  # type: ignore[union-attr]
    # east_a: 0.6 * 0.5 + 0.4 * 0.75 = 0.6 of east
    assert top.find("east_a").amount == Decimal("450000.00")  # type: ignore[union-attr]
    assert top.find("a0").amount == Decimal("150000.00")  # type: ignore[union-attr]
    assert top.find("s0").amount == Decimal("62500.00")  # type: ignore[union-attr]


def test_history_falls_back_to_equal_when_all_zero() -> None:
    nodes = _tree().children
    assert (
        split_amount(Decimal("10"), nodes, LevelRule("history", history={}))
        == [Decimal("5.00")] * 2
    )
    assert (
        split_amount(
            Decimal("10"), nodes, LevelRule("history", history={"east": -5, "south": None})
        )
        == [Decimal("5.00")] * 2
    )


def test_manual_overrides_and_the_rest_is_redistributed_by_the_base_method() -> None:
    reps = _tree().children[0].children[0].children  # a0 a1 a2
    rule = LevelRule(
        "manual", manual={"a0": Decimal("50")}, base="potential", potential={"a1": 1, "a2": 3}
    )
    assert split_amount(Decimal("250"), reps, rule) == [
        Decimal("50.00"),
        Decimal("50.00"),
        Decimal("150.00"),
    ]
    with pytest.raises(
        TargetError, match=r"manual amounts add up to 300.00, more than the 250.00 to share"
    ):
        split_amount(Decimal("250"), reps, LevelRule("manual", manual={"a0": 300}))
    with pytest.raises(TargetError, match="manual amounts for 'zz', which is not among a0, a1, a2"):
        split_amount(Decimal("250"), reps, LevelRule("manual", manual={"zz": 1}))
    with pytest.raises(TargetError, match="every part is manual"):
        split_amount(Decimal("3"), reps, LevelRule("manual", manual={"a0": 1, "a1": 1, "a2": 0}))


def test_tiers_multiply_the_total_and_scale_the_tree_exactly() -> None:
    tiers = tier_totals(Decimal("135000000"), {"base": 0.9, "ideal": 1.0, "stretch": 1.2})
    assert tiers == {
        "base": Decimal("121500000.00"),
        "ideal": Decimal("135000000.00"),
        "stretch": Decimal("162000000.00"),
    }
    top = decompose(Decimal("100.00"), _tree(), [LevelRule("equal")] * 3)
    stretch = scale(top, Decimal("120.01"))
    for node in stretch.walk():
        if node.children:
            assert sum(c.amount for c in node.children) == node.amount


def test_phasing_by_weights_and_even_weeks() -> None:
    year = parse_period("2026")
    months = year.sub_periods("month")
    weights = phase_weights(months, [6, 7, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9])
    top = phase(decompose(Decimal("100000"), _tree(), [LevelRule("equal")] * 3), weights)
    assert top.phases[0] == Decimal("6000.00") and sum(top.phases) == Decimal("100000.00")
    weeks = year.sub_periods("week")  # 2026 starts on a Thursday: a 4-day first week
    even = phase_weights(weeks, "even")
    assert even[0] * 7 == 4 and len(even) == 53
    assert phase_weights(months, "history", [0] * 12) == phase_weights(months, "even")
    with pytest.raises(
        TargetError, match=r"12 sub-periods \(2026-01 to 2026-12\) but 4 phasing weights"
    ):
        phase_weights(months, [1, 2, 3, 4])


# --- properties ---------------------------------------------------------------------------------

names = st.text("abcdefgh", min_size=1, max_size=3)


@st.composite
def trees(draw: Any) -> OrgNode:
    counter = iter(range(10_000))

    def node(kind: str, depth: int) -> OrgNode:
        key = f"{kind}{next(counter)}"
        if depth == 0:
            return OrgNode(key, "rep", key)
        kids = draw(st.integers(0 if depth < 3 else 1, 4))
        child_kind = {3: "region", 2: "team", 1: "rep"}[depth]
        return OrgNode(key, kind, key, children=[node(child_kind, depth - 1) for _ in range(kids)])  # type: ignore[arg-type]

    return node("company", 3)


weights = st.one_of(
    st.none(),
    st.integers(-5, 10**6),
    st.floats(0, 1e6, allow_nan=False),
    st.decimals(0, 10**6, places=3, allow_nan=False, allow_infinity=False),
)
totals = st.one_of(
    st.integers(0, 10**12).map(lambda c: Decimal(c).scaleb(-2)),
    st.sampled_from(
        [Decimal("0"), Decimal("0.01"), Decimal("135000000"), Decimal("99999999999.99")]
    ),
)


@st.composite
def rules(draw: Any, root: OrgNode) -> list[LevelRule]:
    out = []
    for depth in range(3):
        level = [n for n in root.walk() if _depth(root, n) == depth + 1]
        method = draw(st.sampled_from(["equal", "history", "potential", "formula", "manual"]))
        figures = {n.key: draw(weights) for n in level}
        history = {k: v for k, v in figures.items() if draw(st.booleans())}
        potential = {k: abs(v) for k, v in figures.items() if v is not None and draw(st.booleans())}
        manual = {}
        if method == "manual":
            manual = {
                n.key: Decimal(draw(st.integers(0, 3))).scaleb(-2)
                for n in level
                if draw(st.booleans())
            }
        out.append(
            LevelRule(
                method,  # type: ignore[arg-type]
                history=history,
                potential=potential,
                manual=manual,
                weight=WEIGHT,
                base=draw(st.sampled_from(["equal", "history", "potential", "formula"])),
            )
        )
    return out


def _depth(root: OrgNode, target: OrgNode) -> int:
    def find(node: OrgNode, depth: int) -> int | None:
        if node is target:
            return depth
        for child in node.children:
            found = find(child, depth + 1)
            if found is not None:
                return found
        return None

    return find(root, 0) or 0


@settings(max_examples=300, deadline=None)
@given(st.data(), trees(), totals)
def test_every_method_sums_exactly_and_never_goes_negative(
    data: Any, tree: OrgNode, total: Decimal
) -> None:
    level_rules = data.draw(rules(tree))
    try:
        top = decompose(total, tree, level_rules)
    except TargetError as exc:  # only when manual amounts cannot fit or negative history weights
        assert "manual" in str(exc) or "zero or more" in str(exc)
        return
    assert top.amount == total
    for node in top.walk():
        assert node.amount >= 0 and node.amount == node.amount.quantize(Decimal("0.01"))
        if node.children:
            assert sum(c.amount for c in node.children) == node.amount
    months = parse_period("2026").sub_periods(
        data.draw(st.sampled_from(["month", "quarter", "week"]))
    )
    shape = data.draw(st.lists(st.integers(0, 50), min_size=len(months), max_size=len(months)))
    phased = phase(top, phase_weights(months, shape))
    for node in phased.walk():
        assert sum(node.phases) == node.amount and all(p >= 0 for p in node.phases)
        if node.children:  # every column adds up too
            for i, value in enumerate(node.phases):
                assert sum(c.phases[i] for c in node.children) == value
    tier = scale(top, total * Decimal("1.2"))
    assert tier.amount == (total * Decimal("1.2")).quantize(Decimal("0.01"))
    for node in tier.walk():
        if node.children:
            assert sum(c.amount for c in node.children) == node.amount


@settings(max_examples=300, deadline=None)
@given(totals, st.lists(weights, min_size=1, max_size=30))
def test_allocate_is_exact_and_close_to_the_share(total: Decimal, ws: list[Any]) -> None:
    try:
        parts = allocate(total, ws)
    except TargetError:
        assert any(w is not None and w < 0 for w in ws)
        return
    assert sum(parts) == total and all(p >= 0 for p in parts)
    clean = [max(Decimal(str(w)), Decimal(0)) if w is not None else Decimal(0) for w in ws]
    whole = sum(clean)
    for part, w in zip(parts, clean, strict=True):
        share = total * w / whole if whole else total / len(ws)
        assert abs(part - share) < Decimal("0.01")


units = st.sampled_from([1, 100, 50, 100_000, 1_000_000])  # cents: a cent, 1, 0.5, 1000, 10000


@settings(max_examples=300, deadline=None)
@given(totals, st.lists(weights, min_size=1, max_size=30), units)
def test_round_parts_are_whole_units_but_one_and_still_sum_exactly(
    total: Decimal, ws: list[Any], unit: int
) -> None:
    try:
        parts = allocate(total, ws, unit)
    except TargetError:
        assert any(w is not None and w < 0 for w in ws)
        return
    assert sum(parts) == total and all(p >= 0 for p in parts)
    step = Decimal(unit).scaleb(-2)
    odd = [p for p in parts if p % step]
    assert len(odd) <= 1  # only the part taking what is left below a unit
    clean = [max(Decimal(str(w)), Decimal(0)) if w is not None else Decimal(0) for w in ws]
    whole = sum(clean)
    for part, w in zip(parts, clean, strict=True):
        share = total * w / whole if whole else total / len(ws)
        assert abs(part - share) < 2 * step  # a unit from rounding, under one more of remainder


def test_a_plan_in_round_thousands_by_hand() -> None:
    # 1,000,000.50 in thousands by 1:2: 333 and 667 thousand; the odd 0.50 to the larger part
    assert allocate(Decimal("1000000.50"), [1, 2], 100_000) == [
        Decimal("333000.00"),
        Decimal("667000.50"),
    ]
    # equal weights: the earlier part takes the odd amount
    assert allocate(Decimal("10500"), [1, 1, 1], 100_000) == [
        Decimal("4500.00"),
        Decimal("3000.00"),
        Decimal("3000.00"),
    ]


@settings(max_examples=150, deadline=None)
@given(st.data(), trees(), totals, units)
def test_a_rounded_split_phases_and_tiers_add_up_in_round_figures(
    data: Any, tree: OrgNode, total: Decimal, unit: int
) -> None:
    level_rules = data.draw(rules(tree))
    try:
        top = decompose(total, tree, level_rules, unit)
    except TargetError as exc:
        assert "manual" in str(exc) or "zero or more" in str(exc)
        return
    step = Decimal(unit).scaleb(-2)
    assert top.amount == total
    for node in top.walk():
        if node.children:
            assert sum(c.amount for c in node.children) == node.amount
            manual = {c.node.key for c in node.children if c.manual}
            odd = [c for c in node.children if c.amount % step and c.node.key not in manual]
            assert len(odd) <= 1  # a manual amount is as typed; of the rest, one takes the odd
    months = parse_period("2026").sub_periods("month")
    phased = phase(top, phase_weights(months, [1] * 12), unit)
    for node in phased.walk():
        assert sum(node.phases) == node.amount
        if not node.children:
            assert len([p for p in node.phases if p % step]) <= 1
    tier = scale(top, total * Decimal("0.9"), unit)
    for node in tier.walk():
        if node.children:
            assert sum(c.amount for c in node.children) == node.amount


def test_adjusting_one_team_leaves_the_round_parts_of_another_as_they_were() -> None:
    from quotaflow.targets.decompose import adjust

    def team(key: str) -> OrgNode:
        return OrgNode(key, "team", key, children=[OrgNode(f"{key}{i}", "rep", "r") for i in "abc"])

    root = OrgNode("company", "company", "Co", children=[team("t1"), team("t2"), team("t3")])
    unit = 100_000  # thousands, in cents
    top = decompose(Decimal("9000000"), root, [LevelRule("equal"), LevelRule("equal")], unit)
    top = adjust(top, "t1", Decimal("3000000"), unit=unit)
    top = adjust(top, "t1a", Decimal("1250500"), unit=unit)  # typed amounts are kept as typed
    t1 = {a.node.key: a.amount for a in top.find("t1").walk()}  # type: ignore[union-attr]
    top = adjust(top, "t2", Decimal("2500000"), unit=unit)
    # t1 kept its amount, so nothing under it is rounded again
    assert {a.node.key: a.amount for a in top.find("t1").walk()} == t1  # type: ignore[union-attr]
    assert sum(c.amount for c in top.children) == Decimal("9000000")


def test_a_region_with_reps_of_its_own_counts_once_as_a_team() -> None:
    from datetime import date

    from quotaflow.targets.services import TargetBreakdown, allocations_of

    # as org_tree builds it: region West (team id 2) has reps directly, so it is also a team
    # node of its own at the team level
    own_team = OrgNode("west", "team", "West", 2, children=[OrgNode("w1", "rep", "W1", 10)])
    west = OrgNode("west", "region", "West", 2, children=[own_team])
    east_team = OrgNode("east_a", "team", "East A", 4, children=[OrgNode("e1", "rep", "E1", 11)])
    east = OrgNode("east", "region", "East", 3, children=[east_team])
    root = OrgNode("company", "company", "Co", 1, children=[west, east])
    top = decompose(Decimal("1000"), root, [LevelRule("equal")] * 3)
    plan = TargetBreakdown(None, parse_period("2026"), date(2026, 1, 1), {"ideal": top}, [])  # type: ignore[arg-type]
    teams = allocations_of(plan, "team")
    assert [a.amount for a in teams[2]] == [Decimal("500.00")]  # West, once: not 500 + 500
    assert [a.amount for a in teams[4]] == [Decimal("500.00")]
    assert [a.amount for a in teams[1]] == [Decimal("1000.00")]  # the company
