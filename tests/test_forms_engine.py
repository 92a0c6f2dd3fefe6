"""Form behaviour from the stock pack: typed values, computed fields, visibility, rules."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaflow.forms.engine import evaluate_form, validate_submission
from quotaflow.forms.values import FieldValueError, from_storage, parse_value, to_input, to_storage
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FieldDef
from quotaflow.packs.validate import load_pack
from quotaflow.resources import stock_pack_dir


@pytest.fixture(scope="module")
def pack() -> CompiledPack:
    return load_pack(stock_pack_dir())


def test_grade_and_net_amount_compute_from_what_was_typed(pack: CompiledPack) -> None:
    state = validate_submission(
        pack,
        "deal",
        {"customer": "Haier", "potential": "1,500,000", "amount": "100000", "discount": "10"},
    )
    assert state.ok, state.errors
    assert state.values["grade"] == "A"
    assert state.values["net_amount"] == Decimal("90000.00")
    assert state.values["discount"] == Decimal("0.1")


def test_approval_note_appears_and_becomes_required_over_15_percent(pack: CompiledPack) -> None:
    low = evaluate_form(pack, "deal", {"discount": Decimal("0.10")})
    assert low.visible["approval_note"] is False and low.required["approval_note"] is False
    state = validate_submission(pack, "deal", {"customer": "Haier", "discount": "20"})
    assert state.visible["approval_note"] is True
    assert state.errors == {"approval_note": ["this field is required"]}


def test_amount_is_required_from_quotation_on(pack: CompiledPack) -> None:
    raw = {"customer": "Haier"}
    assert validate_submission(pack, "deal", raw, stage="initial_contact").ok
    state = validate_submission(pack, "deal", raw, stage="quotation")
    assert state.errors == {"amount": ["this field is required"]}


def test_lost_reason_only_shows_on_lost_deals(pack: CompiledPack) -> None:
    assert evaluate_form(pack, "deal", {}, stage="lost").visible["lost_reason"] is True
    assert evaluate_form(pack, "deal", {}, stage="negotiation").visible["lost_reason"] is False


def test_cross_field_rule_message_goes_next_to_its_field_in_the_users_locale(
    pack: CompiledPack,
) -> None:
    raw = {"customer": "X", "amount": "20000", "discount": "35", "approval_note": "why"}
    assert validate_submission(pack, "deal", raw).errors == {
        "discount": ["Small deals get at most 30 % off"]
    }
    assert validate_submission(pack, "deal", raw, locale="zh").errors == {
        "discount": ["小额商机折扣不超过30%"]
    }


def test_bad_values_each_get_a_message_and_blank_computed_fields(pack: CompiledPack) -> None:
    raw = {
        "customer": "",
        "potential": "lots",
        "discount": "80",
        "expected_close": "31/12/2026",
        "industry": "banking",
    }
    state = validate_submission(pack, "deal", raw)
    assert state.errors == {
        "customer": ["this field is required"],
        "industry": ["'banking' is not one of the choices"],
        "potential": ["enter a number, e.g. 1250.50"],
        "discount": ["must be at most 50 %"],
        "expected_close": ["enter a date as YYYY-MM-DD"],
    }
    assert state.values["grade"] is None  # a potential that is not a number: no grade yet


def test_a_computed_field_reading_a_refused_value_is_blank_not_worked_out_without_it(
    pack: CompiledPack,
) -> None:
    raw = {"customer": "Haier", "amount": "100000", "discount": "120"}
    state = validate_submission(pack, "deal", raw)
    assert state.errors["discount"] == ["must be at most 50 %"]
    # COALESCE(discount, 0) would have shown the full amount as the net of a 120 % discount
    assert state.values["net_amount"] is None
    assert validate_submission(pack, "deal", {**raw, "discount": "12"}).values[
        "net_amount"
    ] == Decimal("88000.00")
    # a blank discount is no discount: the net is the amount
    assert validate_submission(pack, "deal", {**raw, "discount": ""}).values[
        "net_amount"
    ] == Decimal("100000.00")


def test_visit_needs_a_date_and_a_type(pack: CompiledPack) -> None:
    state = validate_submission(pack, "visit", {"customer": "Sany", "visit_type": "onsite"})
    assert state.errors == {"visit_date": ["this field is required"]}
    ok = validate_submission(
        pack, "visit", {"customer": "Sany", "visit_type": "onsite", "visit_date": "2026-11-20"}
    )
    assert ok.ok and ok.values["visit_date"] == date(2026, 11, 20)


def test_money_keeps_cents_and_refuses_fractions_of_cents() -> None:
    money = FieldDef(id="amount", type="money")
    assert parse_value(money, "¥ 1,234.50") == Decimal("1234.50")
    with pytest.raises(FieldValueError, match="at most 2 decimals"):
        parse_value(money, "1.005")


@given(st.decimals(min_value=0, max_value=Decimal("1e12"), places=2))
def test_money_survives_storage_and_the_input_box_exactly(amount: Decimal) -> None:
    money = FieldDef(id="amount", type="money")
    stored = to_storage(parse_value(money, str(amount)))
    assert from_storage(money, stored) == amount
    assert parse_value(money, to_input(money, from_storage(money, stored))) == amount


@pytest.mark.parametrize(
    ("stored", "shown"),
    [("0", "0"), ("1", "100"), ("0.1", "10"), ("0.15", "15"), ("0.125", "12.5"), ("2", "200")],
)
def test_a_stored_percent_goes_back_into_its_input_as_typed(stored: str, shown: str) -> None:
    # stored whole numbers (0, 1) once came back as "" and "1": an edit would save 0 % as
    # blank and 100 % as 1 %
    field = FieldDef(id="discount", type="percent")
    assert to_input(field, from_storage(field, stored)) == shown


@given(st.decimals(min_value=0, max_value=100, places=2) | st.integers(0, 100).map(Decimal))
def test_percent_is_typed_as_percent_and_kept_as_a_fraction(percent: Decimal) -> None:
    field = FieldDef(id="discount", type="percent")
    value = parse_value(field, f"{percent}%")
    assert value == percent / 100
    assert parse_value(field, to_input(field, value)) == value


def test_a_new_visit_starts_on_the_day_given_and_a_deal_with_nothing(pack: CompiledPack) -> None:
    from quotaflow.forms.engine import starting_values

    assert starting_values(pack, "visit", date(2026, 3, 2)) == {"visit_date": date(2026, 3, 2)}
    assert starting_values(pack, "deal", date(2026, 3, 2)) == {}
