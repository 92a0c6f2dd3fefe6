"""The stage machine of a pipeline definition: which moves exist and what a move needs.

Pure functions over the compiled pack: no database, no Flask. The services decide what to
store; these decide what is allowed and why not, in words a rep can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from quotaflow.expressions import ExpressionError
from quotaflow.forms.engine import evaluate_form
from quotaflow.messages import N_, translate
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import PipelineDef, StageDef, label_text


def stage_of(pipeline: PipelineDef, stage_id: str) -> StageDef:
    """The stage definition with this id."""
    for stage in pipeline.stages:
        if stage.id == stage_id:
            return stage
    raise KeyError(stage_id)


def open_stages(pipeline: PipelineDef) -> list[StageDef]:
    """Stages without an outcome, in order."""
    return [s for s in pipeline.stages if s.outcome is None]


def is_closed(pipeline: PipelineDef, stage_id: str | None) -> bool:
    """Whether a record in this stage is won or lost."""
    return stage_id is not None and stage_of(pipeline, stage_id).outcome is not None


def default_moves(pipeline: PipelineDef, from_stage: str) -> list[str]:
    """Default moves: forward to any later stage, back one open stage, to lost from any open one."""
    ids = [s.id for s in pipeline.stages]
    here = ids.index(from_stage)
    if is_closed(pipeline, from_stage):
        return []  # leaving won/lost is a reopen, decided by permission
    moves = ids[here + 1 :]
    opened = [s.id for s in open_stages(pipeline)]
    position = opened.index(from_stage)
    if position > 0:
        moves.insert(0, opened[position - 1])
    moves += [s.id for s in pipeline.stages if s.outcome == "lost" and s.id not in moves]
    return moves


@dataclass
class MoveCheck:
    """Whether a move may happen now, and if not, exactly what is missing or wrong."""

    allowed: bool = True
    reason: str = ""
    missing: list[str] = field(default_factory=list)  # fields to ask for inline
    rule_errors: list[str] = field(default_factory=list)
    needs_approval: bool = False
    approver_role: str | None = None
    approval_message: str = ""

    @property
    def ready(self) -> bool:
        """True when the move can be done (or sent for approval) as it is."""
        return self.allowed and not self.missing and not self.rule_errors


def check_move(
    pack: CompiledPack,
    pipeline_id: str,
    values: Mapping[str, Any],
    from_stage: str,
    to_stage: str,
    *,
    may_reopen: bool = False,
    locale: str = "en",
    today: date | None = None,
) -> MoveCheck:
    """Everything that decides a move from `from_stage` to `to_stage` with these values."""
    pipeline = pack.pipelines[pipeline_id]
    ids = [s.id for s in pipeline.stages]
    if to_stage not in ids:
        refusal = N_("'{stage}' is not a stage of this pipeline")
        return MoveCheck(False, translate(locale, refusal, stage=to_stage))
    if to_stage == from_stage:
        return MoveCheck(False, translate(locale, N_("the record is already in this stage")))
    if is_closed(pipeline, from_stage):
        if not may_reopen:
            closed = N_("this record is closed; reopening it needs a manager")
            return MoveCheck(False, translate(locale, closed))
    elif not _transition_allowed(pack, pipeline, values, from_stage, to_stage, today):
        refusal = N_("cannot move from {from_stage} to {to_stage}")
        return MoveCheck(
            False,
            translate(
                locale,
                refusal,
                from_stage=_name(pipeline, from_stage, locale),
                to_stage=_name(pipeline, to_stage, locale),
            ),
        )
    stage_index = ids.index(to_stage)
    target = pipeline.stages[stage_index]
    check = MoveCheck()
    state = evaluate_form(pack, pipeline.form, values, stage=to_stage, today=today)
    required = [f for f in target.require] + [f for f, need in state.required.items() if need]
    check.missing = [f for f in dict.fromkeys(required) if _blank(state.values.get(f))]
    names = {**state.values, "stage": to_stage}
    for j, rule in enumerate(target.rules):
        expr = pack.expression("pipeline", pipeline_id, "stages", stage_index, "rules", j, "check")
        if not _holds(expr, names, today):
            check.rule_errors.append(label_text(rule.error, locale))
    for index in approval_stages(pipeline, from_stage, to_stage):
        approval = pipeline.stages[index].approval
        assert approval is not None
        expr = pack.expression("pipeline", pipeline_id, "stages", index, "approval", "when")
        if _holds(expr, names, today):
            check.needs_approval = True
            check.approver_role = approval.by
            check.approval_message = label_text(approval.message, locale)
            break
    return check


def approval_stages(pipeline: PipelineDef, from_stage: str | None, to_stage: str) -> list[int]:
    """The stages (indexes) whose approval rule a move must pass: the target's own and, when
    it goes forward to anything but a lost outcome, every stage it passes over. A rep cannot
    skip the stage that asks (Needs confirmed straight to Won with a 22 % discount), nor go
    round a rejection by picking a later stage; losing a deal asks nothing of them."""
    ids = [s.id for s in pipeline.stages]
    to_index = ids.index(to_stage)
    from_index = ids.index(from_stage) if from_stage in ids else -1
    if pipeline.stages[to_index].outcome == "lost" or to_index <= from_index:
        passed = [to_index]
    else:
        passed = [
            i for i in range(from_index + 1, to_index + 1) if pipeline.stages[i].outcome != "lost"
        ]
    return [i for i in passed if pipeline.stages[i].approval is not None]


def guarding_approval_stages(pipeline: PipelineDef, stage: str) -> list[int]:
    """The stages whose approval rule guards a record in `stage`: its own and every earlier
    one it had to pass (lost outcomes aside, unless it is one): what an edit there may not
    undo without asking."""
    ids = [s.id for s in pipeline.stages]
    here = ids.index(stage)
    if pipeline.stages[here].outcome == "lost":
        passed = [here]
    else:
        passed = [i for i in range(here + 1) if pipeline.stages[i].outcome != "lost"]
    return [i for i in passed if pipeline.stages[i].approval is not None]


def change_needs_approval(
    pack: CompiledPack,
    pipeline_id: str,
    stage: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    locale: str = "en",
    today: date | None = None,
) -> tuple[str, str] | None:
    """(approver role, message) when an edit leaves the approval condition of the record's
    stage, or of one it passed to get there, holding and either it did not hold before (a
    discount raised to 20 % in Quotation or later) or a value it reads changed (20 % raised to
    90 %, once 20 % was approved): such a change waits for approval, as the move past the
    stage that asks would have."""
    pipeline = pack.pipelines[pipeline_id]
    if stage not in [s.id for s in pipeline.stages]:
        return None
    guards = guarding_approval_stages(pipeline, stage)
    if not guards:
        return None

    def evaluated(values: Mapping[str, Any]) -> dict[str, Any]:
        state = evaluate_form(pack, pipeline.form, values, stage=stage, today=today)
        return {**state.values, "stage": stage}

    old, new = evaluated(before), evaluated(after)
    for index in guards:
        approval = pipeline.stages[index].approval
        assert approval is not None
        expr = pack.expression("pipeline", pipeline_id, "stages", index, "approval", "when")
        if not _holds(expr, new, today):
            continue
        read_changed = any(old.get(name) != new.get(name) for name in expr.names)
        if _holds(expr, old, today) and not read_changed:
            continue  # approved as it stands (or it held when entering): other fields are free
        return approval.by, label_text(approval.message, locale)
    return None


def fields_a_move_reads(
    pack: CompiledPack, pipeline_id: str, from_stage: str, to_stage: str
) -> set[str]:
    """The fields whose values decide this move: the target stage's required fields and what
    its rules, its approval and the transition's condition read. A move may set these (to fill
    in what is missing, or bring a value within a rule); any other value is not its business."""
    pipeline = pack.pipelines[pipeline_id]
    ids = [s.id for s in pipeline.stages]
    if to_stage not in ids:
        return set()
    index = ids.index(to_stage)
    target = pipeline.stages[index]
    base = ("pipeline", pipeline_id, "stages", index)
    exprs = [pack.expression(*base, "rules", j, "check") for j in range(len(target.rules))]
    for asking in approval_stages(pipeline, from_stage, to_stage):
        exprs.append(pack.expression("pipeline", pipeline_id, "stages", asking, "approval", "when"))
    for i, move in enumerate(pipeline.transitions or ()):
        if move.from_ == from_stage and move.to == to_stage and move.when is not None:
            exprs.append(pack.expression("pipeline", pipeline_id, "transitions", i, "when"))
    return set(target.require).union(*(e.names for e in exprs)) - {"stage"}


def _transition_allowed(
    pack: CompiledPack,
    pipeline: PipelineDef,
    values: Mapping[str, Any],
    from_stage: str,
    to_stage: str,
    today: date | None,
) -> bool:
    if pipeline.transitions is None:
        return to_stage in default_moves(pipeline, from_stage)
    for i, move in enumerate(pipeline.transitions):
        if move.from_ == from_stage and move.to == to_stage:
            if move.when is None:
                return True
            expr = pack.expression("pipeline", pipeline.id, "transitions", i, "when")
            return _holds(expr, {**values, "stage": from_stage}, today)
    return False


def allowed_targets(pack: CompiledPack, pipeline_id: str, from_stage: str) -> list[str]:
    """Stages a record could move to from here (conditions aside), for buttons and the board."""
    pipeline = pack.pipelines[pipeline_id]
    if pipeline.transitions is None:
        return default_moves(pipeline, from_stage)
    return [m.to for m in pipeline.transitions if m.from_ == from_stage]


def _holds(expr: Any, names: Mapping[str, Any], today: date | None) -> bool:
    try:
        return expr.evaluate(names, today=today) is True
    except ExpressionError:
        return False


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _name(pipeline: PipelineDef, stage_id: str, locale: str) -> str:
    return label_text(stage_of(pipeline, stage_id).label, locale, stage_id)
