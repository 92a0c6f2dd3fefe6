"""`quotaflow target show`: a target plan per rep or team, with actual, attainment and pace."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from quotaflow.kpis.cli import emit, pack_on_day, table_options
from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.pace import pace
from quotaflow.kpis.periods import Period, parse_period
from quotaflow.targets.decompose import Allocation, TargetError
from quotaflow.targets.services import TargetBreakdown, breakdown


@click.group("target")
def target_group() -> None:
    """Target plans: decomposition, phasing, attainment and pace."""


def _slice(result: TargetBreakdown, node: Allocation, period: Period) -> tuple[Decimal, list[Any]]:
    """The node's target within `period` and the phases/sub-periods inside it."""
    if period == result.period:
        return node.amount, list(node.phases)
    if not result.sub_periods:
        raise TargetError(
            f"plan '{result.plan.id}' is not phased, so it has a target only for "
            f"{result.period.label}"
        )
    inside = [
        i
        for i, p in enumerate(result.sub_periods)
        if period.start <= p.start and p.end <= period.end
    ]
    covered = sum(result.sub_periods[i].days for i in inside)
    if not inside or covered != period.days:
        labels = ", ".join(p.label for p in result.sub_periods[:3])
        raise TargetError(
            f"{period.label} is not made of the plan's {result.plan.phasing.by if result.plan.phasing else ''} "  # noqa: E501
            f"phases ({labels}, ...) within {result.period.label}"
        )
    return sum((node.phases[i] for i in inside), Decimal("0.00")), [node.phases[i] for i in inside]


@target_group.command("show")
@click.argument("plan_id")
@click.option("--by", type=click.Choice(["rep", "team"]), default="rep", show_default=True)
@click.option("--period", "period_text", help="The plan's period (default) or a phase of it.")
@click.option("--tier", default=None, help="Tier to show (default: ideal).")
@table_options
def show_command(
    plan_id: str,
    by: str,
    period_text: str | None,
    tier: str | None,
    pack_id: str | None,
    fmt: str,
    output: Path | None,
    today: datetime | None,
) -> None:
    """Target, actual, attainment, expected to date, projection and gap per rep or team."""
    with pack_on_day(pack_id, today) as (session, pack, day):
        result = breakdown(session, pack, plan_id, today=day)
        tier = tier or result.main_tier
        if tier not in result.tiers:
            raise TargetError(
                f"plan '{plan_id}' has no tier '{tier}' (tiers: {', '.join(result.tiers)})"
            )
        period = (
            parse_period(period_text, pack.pack.fiscal_year_start) if period_text else result.period
        )
        engine = KpiEngine(session, pack, today=day)
        kpi = engine.kpi(result.plan.kpi)
        nodes = [a for a in result.tiers[tier].walk() if (a.node.kind == "rep") == (by == "rep")]
        actual_rep = engine.figures(kpi.id, period, "rep").values if by == "rep" else {}
        actual_team = engine.figures(kpi.id, period, "team").values if by == "team" else {}
        company = engine.figures(kpi.id, period, "company").values[None]
        subs = [p for p in result.sub_periods if period.start <= p.start and p.end <= period.end]
        rows = []
        for node in nodes:
            target, phases = _slice(result, node, period)
            if node.node.kind == "company":
                actual = company
            elif by == "rep":
                actual = actual_rep.get(node.node.id)
            else:
                actual = actual_team.get(node.node.id)
            figures = pace(
                actual if isinstance(actual, Decimal | int | float) else None,
                target,
                period,
                day,
                phases or None,
                subs or None,
            )
            name = node.node.name
            if fmt == "table" and by == "team":
                name = "  " * _depth(result.tiers[tier], node) + name
            rows.append(
                (
                    node.node.key,
                    name,
                    node.method,
                    target,
                    figures.actual,
                    figures.attainment,
                    figures.expected,
                    figures.projected,
                    figures.gap,
                )
            )
        emit(
            f"{result.plan.id} ({kpi.id}, tier {tier}) — {period.label}, by {by}, today {day}",
            [
                "key",
                "name",
                "method",
                "target",
                "actual",
                "attainment",
                "expected",
                "projected",
                "gap",
            ],
            rows,
            fmt,
            units=[
                "text",
                "text",
                "text",
                kpi.unit,
                kpi.unit,
                "percent",
                kpi.unit,
                kpi.unit,
                kpi.unit,
            ],
            right=[False, False, False, True, True, True, True, True, True],
            output=output,
        )


def _depth(root: Allocation, target: Allocation) -> int:
    def find(node: Allocation, depth: int) -> int | None:
        if node is target:
            return depth
        for child in node.children:
            found = find(child, depth + 1)
            if found is not None:
                return found
        return None

    return find(root, 0) or 0
