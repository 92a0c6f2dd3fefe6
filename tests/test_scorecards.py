"""Scorecards: every scoring rule and blank policy, explanations that add up, pack tests."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from quotaflow.cli import main
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.validate import load_pack
from quotaflow.resources import stock_pack_dir
from quotaflow.scorecards.engine import score_card
from tests.packfiles import minimal_files, write_pack

KPIS = """\
kind: kpi
id: visits
aggregate: {form: deal, op: count}
---
kind: kpi
id: calls
aggregate: {form: deal, op: count}
"""
CARD = """\
kind: scorecard
id: card
applies_to: {role: rep}
groups: {result: 60, process: 40}
blank: {blank}
items:
  - {kpi: won_revenue, group: result, weight: 50, target: 1000}
  - {kpi: visits, group: result, weight: 50, target: 40,
     score: "IF(actual >= target, 100, IF(actual >= target * 0.8, 60, 0))"}
  - {kpi: calls, group: process, weight: 50, target: 100, score: "MAX(attainment * 100, 50)"}
  - {manual: attitude, group: process, weight: 50, scale: [1, 10]}
grades:
  - {min: 90, grade: A, bonus: 1.2}
  - {min: 60, grade: B, bonus: 1}
  - {min: 0, grade: C, bonus: 0.5}
"""


def card_pack(
    tmp_path: Path, blank: str = "zero", extra: str = "", floor: str = "MAX(attainment * 100, 50)"
) -> CompiledPack:
    card = CARD.replace("{blank}", blank).replace("MAX(attainment * 100, 50)", floor) + extra
    files = minimal_files({"kpis/more.yaml": KPIS, "scorecards/card.yaml": card})
    return load_pack(write_pack(tmp_path, files))


def test_the_worked_example_scores_106_4_grade_a_bonus_1_2() -> None:
    pack = load_pack(stock_pack_dir())
    given = {
        "won_revenue": 300000,
        "target.won_revenue": 250000,
        "payment_collected": 800000,
        "visits": 44,
        "win_rate": 0.18,
        "training": 4,
    }
    result = score_card(pack, "account_manager_monthly", given)
    assert (result.final_score, result.grade, result.bonus) == (
        Decimal("106.40"),
        "A",
        Decimal("1.2"),
    )
    groups = {g.id: g.score for g in result.groups}
    assert groups == {
        "result": Decimal("114"),
        "process": Decimal("100"),
        "capability": Decimal("80"),
    }
    items = {i.id: i for i in result.items}
    assert items["won_revenue"].attainment == Decimal("1.2")
    assert items["won_revenue"].score == Decimal("120")  # capped at 1.2
    assert items["win_rate"].score == Decimal("90")
    # the explanation adds up to the final score
    assert sum(i.contribution for i in result.items) == pytest.approx(result.final_score)
    assert sum(g.contribution for g in result.groups) == pytest.approx(result.final_score)


def test_each_scoring_rule(tmp_path: Path) -> None:
    pack = card_pack(tmp_path)
    result = score_card(
        pack, "card", {"won_revenue": 500, "visits": 34, "calls": 20, "attitude": 7}
    )
    items = {i.id: i.score for i in result.items}
    assert items == {
        "won_revenue": Decimal("50"),  # default: MIN(actual / target, 1.2) * 100
        "visits": Decimal("60"),  # threshold bands: 34 >= 0.8 * 40
        "calls": Decimal("50"),  # floored at 50
        "attitude": Decimal("70"),  # a rating of 7 on [1, 10]
    }
    # result = 0.5 * 50 + 0.5 * 60 = 55; process = 0.5 * 50 + 0.5 * 70 = 60; final = 33 + 24 = 57
    assert (result.final_score, result.grade) == (Decimal("57.00"), "C")


def test_a_blank_kpi_scores_zero_by_default(tmp_path: Path) -> None:
    result = score_card(
        card_pack(tmp_path), "card", {"won_revenue": 1000, "visits": 40, "calls": 100}
    )
    items = {i.id: i for i in result.items}
    assert items["attitude"].score == 0 and not items["attitude"].excluded
    assert result.final_score == Decimal("80.00")  # 60 * 100% + 40 * (100 + 0) / 2


def test_a_blank_kpi_can_be_excluded_and_its_weight_shared(tmp_path: Path) -> None:
    result = score_card(
        card_pack(tmp_path, "exclude"), "card", {"won_revenue": 1000, "visits": 40, "calls": 100}
    )
    items = {i.id: i for i in result.items}
    assert items["attitude"].excluded and items["attitude"].contribution == 0
    assert items["calls"].effective_weight == 100
    assert result.final_score == Decimal("100.00")
    assert sum(i.contribution for i in result.items) == pytest.approx(result.final_score)


def test_a_kpi_with_nothing_to_measure_or_to_measure_against_is_blank_not_capped(
    tmp_path: Path,
) -> None:
    # A new rep: no sales yet, no target yet, no deals to take a win rate of. MIN(actual /
    # target, 1.2) skips the blank quotient and would give the cap, 120, to exactly them.
    pack = load_pack(stock_pack_dir())
    new_rep = {"won_revenue": 0, "payment_collected": 0, "visits": 0, "training": 3}
    items = {i.id: i for i in score_card(pack, "account_manager_monthly", new_rep).items}
    assert items["won_revenue"].target is None and items["won_revenue"].score == 0
    assert items["win_rate"].actual is None and items["win_rate"].score == 0
    assert items["payment_collected"].score == 0  # a target, and nothing collected: 0 of it
    # under `blank: exclude` they are left out instead, their weight shared with the rest
    result = score_card(card_pack(tmp_path, "exclude"), "card", {"visits": 40, "calls": 50})
    scored = {i.id: i for i in result.items}
    assert scored["won_revenue"].excluded and scored["visits"].effective_weight == 100
    # a floor that reads the attainment does not lift a blank actual either (was 50)
    assert scored["calls"].score == 50 and not scored["calls"].excluded
    blank_calls = score_card(card_pack(tmp_path / "b", "exclude"), "card", {"visits": 40})
    assert {i.id: i for i in blank_calls.items}["calls"].excluded
    # a rule that says what no target scores is asked, not overruled
    own = card_pack(tmp_path / "c", floor="IF(ISBLANK(actual), 40, attainment * 100)")
    calls = {i.id: i for i in score_card(own, "card", {"visits": 40}).items}["calls"]
    assert calls.score == 40 and not calls.excluded


def test_a_wholly_blank_group_shares_its_weight_among_the_others(tmp_path: Path) -> None:
    pack = card_pack(tmp_path, "exclude", floor="attainment * 100")
    result = score_card(pack, "card", {"won_revenue": 500, "visits": 40})
    groups = {g.id: g for g in result.groups}
    assert groups["process"].score is None and groups["result"].effective_weight == 100
    assert result.final_score == Decimal("75.00")  # (50 + 100) / 2, the whole weight


def test_a_final_formula_replaces_the_weighted_sum(tmp_path: Path) -> None:
    pack = card_pack(tmp_path, extra='final: "MIN(result, process)"\n')
    result = score_card(
        pack, "card", {"won_revenue": 1000, "visits": 40, "calls": 100, "attitude": 5}
    )
    assert result.final_score == Decimal("75.00")  # process = (100 + 50) / 2


@pytest.mark.parametrize(
    ("revenue", "attitude", "grade"), [(667, 10, "A"), (666, 10, "B"), (0, 1, "C")]
)
def test_grade_bands_include_their_minimum(
    tmp_path: Path, revenue: int, attitude: int, grade: str
) -> None:
    given = {"won_revenue": revenue, "visits": 40, "calls": 100, "attitude": attitude}
    result_part = (Decimal(revenue) / 10 + 100) / 2 * Decimal("0.6")
    final = result_part + (100 + Decimal(attitude) * 10) / 2 * Decimal("0.4")
    result = score_card(card_pack(tmp_path), "card", given)
    assert result.final_score == final.quantize(Decimal("0.01"))
    assert result.grade == grade


def test_pack_test_command_passes_the_stock_pack() -> None:
    result = CliRunner().invoke(main, ["pack", "test", str(stock_pack_dir())])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("4 passed, 0 failed")


def test_pack_test_command_prints_each_failure(tmp_path: Path) -> None:
    golden = """\
    kind: pack_test
    id: golden
    cases:
      - name: right
        scorecard: card
        given: {won_revenue: 1000, visits: 40, calls: 100, attitude: 10}
        expect: {final_score: 100, grade: A, bonus: 1.2}
      - name: wrong on purpose
        scorecard: card
        given: {won_revenue: 500, visits: 40, calls: 100, attitude: 10}
        expect: {final_score: 90, grade: A}
      - formula: "ROUND(a / b, 2)"
        given: {a: 2, b: 3}
        expect: {result: 0.67}
    """
    files = minimal_files(
        {
            "kpis/more.yaml": KPIS,
            "scorecards/card.yaml": CARD.replace("{blank}", "zero"),
            "tests/golden.yaml": golden,
        }
    )
    result = CliRunner().invoke(main, ["pack", "test", str(write_pack(tmp_path, files))])
    assert result.exit_code == 1
    assert "FAILED golden[2] wrong on purpose" in result.output
    assert "final_score: expected 90, got '85.00'" in result.output
    assert "grade: expected 'A', got 'B'" in result.output
    assert result.output.strip().endswith("2 passed, 1 failed")


def test_items_and_groups_are_named_for_people_in_their_language(tmp_path: Path) -> None:
    from quotaflow.scorecards.engine import group_label

    pack = load_pack(stock_pack_dir())
    card = pack.scorecards["account_manager_monthly"]
    for locale, won, training, result in (
        ("en", "Won revenue", "Training and product knowledge", "Results"),
        ("zh", "成交金额", "培训与产品知识", "业绩结果"),
    ):
        names = {i.id: i.label for i in score_card(pack, card.id, {}, locale=locale).items}
        assert names["won_revenue"] == won  # an item with no label of its own: its KPI's
        assert names["training"] == training  # its own label
        assert group_label(card, "result", locale) == result
    bare = card_pack(tmp_path)  # no labels anywhere: the ids, readable
    assert {i.label for i in score_card(bare, "card", {}).items} >= {"visits", "attitude"}
    assert group_label(bare.scorecards["card"], "process", "zh") == "Process"


def test_a_label_for_a_group_the_card_does_not_have_is_refused(tmp_path: Path) -> None:
    extra = "group_labels: {results: {en: Results}}\n"
    with pytest.raises(Exception, match="results") as refused:
        card_pack(tmp_path, extra=extra)
    assert "group" in str(refused.value)
