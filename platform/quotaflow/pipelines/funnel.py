"""The funnel of a pipeline for a cohort of records: where deals are, where they are lost, how fast.

The cohort is the records created in the period (and visible to the reader: pass a
`visible_records` select as `base`). Conversion comes from the stage history: a deal that
reached a later stage counts as having passed every open stage before it, so skipping a
stage never makes a conversion rate exceed 100 %.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import PipelineDef, label_text
from quotaflow.pipelines.models import StageMove
from quotaflow.records.models import Record
from quotaflow.spreadsheets import Verbatim, csv_bytes


@dataclass(frozen=True, slots=True)
class StageRow:
    """One stage of the funnel."""

    stage: str
    label: str
    count: int  # records of the cohort in this stage now
    amount: Decimal
    reached: int  # records that got at least this far (open stages) / ended here (outcomes)
    conversion: float | None  # share of `reached` that went on to the next stage (or won)
    avg_days: float | None  # average completed stay in the stage


@dataclass(frozen=True, slots=True)
class Funnel:
    """The whole report: stage rows and the pipeline's headline figures."""

    rows: list[StageRow]
    records: int
    win_rate: float | None
    avg_cycle_days: float | None
    weighted_pipeline: Decimal

    def csv_bytes(self) -> bytes:
        """The table as CSV (what the export button downloads), then the headline figures."""

        def fixed(value: float | Decimal | None, places: int) -> Verbatim | None:
            return None if value is None else Verbatim(f"{value:.{places}f}")

        rows: list[list[Any]] = [
            [r.stage, r.label, r.count, fixed(r.amount, 2), r.reached, fixed(r.conversion, 4),
             fixed(r.avg_days, 1)]
            for r in self.rows
        ]  # fmt: skip
        rows += [
            [],
            ["records", self.records],
            ["win_rate", fixed(self.win_rate, 4)],
            ["avg_cycle_days", fixed(self.avg_cycle_days, 1)],
            ["weighted_pipeline", fixed(self.weighted_pipeline, 2)],
        ]
        header = ["stage", "label", "count", "amount", "reached", "conversion", "avg_days"]
        return csv_bytes(header, rows)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def funnel(
    session: Session,
    pack: CompiledPack,
    pipeline_id: str,
    *,
    start: date,
    end: date,
    base: Select[tuple[Record]] | None = None,
    locale: str = "en",
) -> Funnel:
    """The funnel of records created from `start` to `end` (inclusive)."""
    pipeline = pack.pipelines[pipeline_id]
    query = base if base is not None else select(Record)
    query = query.where(
        Record.pack_id == pack.id,
        Record.form_id == pipeline.form,
        Record.deleted_at.is_(None),
        Record.created_at >= _day_start(start),
        Record.created_at < _day_start(end + timedelta(days=1)),
    )
    records = list(session.scalars(query))
    moves: dict[int, list[StageMove]] = defaultdict(list)
    ids = [r.id for r in records]
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        for move in session.scalars(
            select(StageMove)
            .where(StageMove.record_id.in_(part))
            .order_by(StageMove.moved_at, StageMove.id)
        ):
            moves[move.record_id].append(move)
    opened = [s.id for s in pipeline.stages if s.outcome is None]
    outcome_of = {s.id: s.outcome for s in pipeline.stages}
    reached = [0] * len(opened)
    stays: dict[str, list[float]] = defaultdict(list)
    for record in records:
        top = _furthest_open(record, moves[record.id], opened, outcome_of)
        for i in range(top + 1):
            reached[i] += 1
        for stay_stage, days in _stays(record, moves[record.id]):
            stays[stay_stage].append(days)
    won = [r for r in records if r.stage is not None and outcome_of.get(r.stage) == "won"]
    lost = [r for r in records if r.stage is not None and outcome_of.get(r.stage) == "lost"]
    rows = []
    for stage in pipeline.stages:
        here = [r for r in records if r.stage == stage.id]
        if stage.outcome is None:
            i = opened.index(stage.id)
            nxt = reached[i + 1] if i + 1 < len(opened) else len(won)
            got = reached[i]
        else:
            nxt, got = None, len(here)
        rows.append(StageRow(
            stage.id, label_text(stage.label, locale, stage.id), len(here),
            sum((r.amount or Decimal(0) for r in here), Decimal(0)), got,
            (nxt / got) if nxt is not None and got else None,
            (sum(stays[stage.id]) / len(stays[stage.id])) if stays[stage.id] else None,
        ))  # fmt: skip
    closed = len(won) + len(lost)
    cycles = [(r.closed_at - r.created_at).total_seconds() / 86400 for r in won if r.closed_at]
    weighted = sum(
        ((r.amount or Decimal(0)) * Decimal(str(_probability(pipeline, r.stage))) for r in records
         if r.stage in opened),
        Decimal(0),
    )  # fmt: skip
    return Funnel(
        rows, len(records), (len(won) / closed) if closed else None,
        (sum(cycles) / len(cycles)) if cycles else None, weighted.quantize(Decimal("0.01")),
    )  # fmt: skip


def _probability(pipeline: PipelineDef, stage_id: str | None) -> float:
    stage = next(s for s in pipeline.stages if s.id == stage_id)
    return stage.probability or 0.0


def _furthest_open(
    record: Record, moves: list[StageMove], opened: list[str], outcome_of: Mapping[str, str | None]
) -> int:
    if record.stage is not None and outcome_of.get(record.stage) == "won":
        return len(opened) - 1
    seen = [m.to_stage for m in moves] + [m.from_stage for m in moves if m.from_stage]
    seen.append(record.stage or opened[0])
    indices = [opened.index(s) for s in seen if s in opened]
    return max(indices, default=0)


def _stays(record: Record, moves: list[StageMove]) -> list[tuple[str, float]]:
    """(stage, days) for every completed stay, from consecutive moves."""
    out = []
    entered_stage, entered_at = None, None
    if moves and moves[0].from_stage is not None:
        entered_stage, entered_at = moves[0].from_stage, record.created_at
    for move in moves:
        if entered_stage is not None and entered_at is not None:
            out.append((entered_stage, (move.moved_at - entered_at).total_seconds() / 86400))
        entered_stage, entered_at = move.to_stage, move.moved_at
    return out
