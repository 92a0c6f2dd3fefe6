"""Linking a pack: references between definitions, weights, and every expression compiled.

Runs only on documents that passed their schema, so definitions here are typed objects.
Each check adds a Problem located at the offending value; nothing stops at the first one.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from quotaflow.expressions import (
    CycleError,
    Expression,
    ExpressionError,
    ValueType,
    compile_expression,
    order_by_dependencies,
)
from quotaflow.packs.compiled import FIELD_VALUE_TYPES, expression_key
from quotaflow.packs.definitions import (
    AlertDef,
    DashboardDef,
    FieldDef,
    FormDef,
    KpiDef,
    LeaderboardDef,
    PackDef,
    PackTestDef,
    PipelineDef,
    ScorecardDef,
    TargetPlanDef,
)
from quotaflow.packs.loader import SourceDoc
from quotaflow.packs.problems import Path_, Problem, path_text, unknown

T = ValueType
UNIT_TYPES = {"number": T.NUMBER, "money": T.MONEY, "percent": T.PERCENT}
NUMERIC = {T.NUMBER, T.MONEY, T.PERCENT}
# Columns every record has, usable in KPI filters and as an aggregate's date
RECORD_COLUMNS: dict[str, ValueType] = {
    "stage": T.TEXT,
    "record_date": T.DATE,
    "created_at": T.DATETIME,
    "updated_at": T.DATETIME,
    "closed_at": T.DATETIME,
}
BUILTIN_ROLES = ("admin", "manager", "rep", "owner")
SCORE_NAMES = {"actual": T.NUMBER, "target": T.NUMBER, "attainment": T.PERCENT}
RATING_NAMES = {"rating": T.NUMBER, "scale_min": T.NUMBER, "scale_max": T.NUMBER}
SPLIT_NAMES = {
    n: T.NUMBER for n in ("last_year_share", "potential_share", "equal_share", "headcount")
}
PACE_NAMES = {
    n: T.NUMBER
    for n in (
        "actual",
        "target",
        "attainment",
        "expected",
        "expected_attainment",
        "gap",
        "projected",
        "projected_attainment",
        "days_left",
    )
}
RECORD_ALERT_NAMES = {n: T.NUMBER for n in ("days_since_update", "days_in_stage", "age_days")}
MESSAGE_EXTRA_NAMES = ("rep", "team", "owner", "title", "kpi", "record")


class Linker:
    """Checks one pack's typed definitions against each other and compiles its expressions."""

    def __init__(
        self,
        located: Mapping[str, Mapping[str, tuple[Any, SourceDoc]]],
        broken: Iterable[str] = (),
        *,
        references_complete: bool = True,
    ) -> None:
        self.located = located
        self.broken = set(broken)  # refs to documents already reported broken are not re-reported
        self.defs = {kind: {i: d for i, (d, _) in items.items()} for kind, items in located.items()}
        self.references_complete = references_complete
        self.problems: list[Problem] = []
        self.expressions: dict[str, Expression] = {}
        self.computed_order: dict[str, tuple[str, ...]] = {}
        self.kpi_order: tuple[str, ...] = ()
        self._where: tuple[str, str] = ("", "")

    # --- reporting ---------------------------------------------------------------------

    def at(self, kind: str, def_id: str) -> Linker:
        self._where = (kind, def_id)
        return self

    def problem(self, path: Path_, message: str, detail: str = "") -> None:
        kind, def_id = self._where
        file, line = self.located[kind][def_id][1].locate(path)
        self.problems.append(Problem(file, line or None, path_text(path), message, detail))

    def expect_ref(self, path: Path_, what: str, name: str | None, known: Iterable[str]) -> bool:
        known = list(known)
        if name in self.broken or not self.references_complete:
            return name in known
        if what == "role" and not self.defs.get("pack"):
            return False  # the pack document (which declares roles) is broken itself
        if name is not None and name not in known:
            self.problem(path, unknown(what, name, known))
            return False
        return name is not None

    def compile(
        self,
        path: Path_,
        text: str | None,
        names: Mapping[str, ValueType],
        expect: ValueType | None = None,
        *,
        blank_as_zero: bool = False,
    ) -> Expression | None:
        if text is None:
            return None
        try:
            compiled = compile_expression(text, names, expect=expect, blank_as_zero=blank_as_zero)
        except ExpressionError as exc:
            self.problem(path, exc.message, exc.caret())
            return None
        self.expressions[expression_key(*self._where, path)] = compiled
        return compiled

    # --- the pack ----------------------------------------------------------------------

    def link(self) -> None:
        for kind, check in (
            ("pack", self.link_pack),
            ("form", self.link_form),
            ("pipeline", self.link_pipeline),
            ("kpi", self.link_kpi),
            ("target_plan", self.link_target_plan),
            ("scorecard", self.link_scorecard),
            ("alert", self.link_alert),
            ("dashboard", self.link_dashboard),
            ("leaderboard", self.link_leaderboard),
            ("pack_test", self.link_pack_test),
        ):
            for def_id, definition in self.defs.get(kind, {}).items():
                self.at(kind, def_id)
                check(definition)
        self.order_kpis()

    @property
    def roles(self) -> list[str]:
        packs = list(self.defs.get("pack", {}).values())
        return [*BUILTIN_ROLES, *(r.id for p in packs for r in p.roles)]

    def link_pack(self, pack: PackDef) -> None:
        from quotaflow.packs.versions import valid_constraint

        for name, constraint in (pack.requires or {}).items():
            if not valid_constraint(constraint):
                self.problem(
                    ("requires", name), f"'{constraint}' is not a version constraint like >=0.1"
                )
        seen: set[str] = set()
        for i, role in enumerate(pack.roles):
            if role.id in seen or role.id in BUILTIN_ROLES[:3]:
                self.problem(
                    ("roles", i, "id"), f"role '{role.id}' is declared twice or is built in"
                )
            seen.add(role.id)
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(pack.timezone)
        except (ValueError, KeyError, OSError):
            self.problem(
                ("timezone",), f"unknown time zone '{pack.timezone}' (e.g. Asia/Shanghai, UTC)"
            )

    # --- forms -------------------------------------------------------------------------

    def form_names(self, form: FormDef) -> dict[str, ValueType]:
        names = {f.id: FIELD_VALUE_TYPES[f.type] for f in form.fields}
        if any(p.form == form.id for p in self.defs.get("pipeline", {}).values()):
            names.setdefault("stage", T.TEXT)
        return names

    def link_form(self, form: FormDef) -> None:
        names = self.form_names(form)
        field_ids = [f.id for f in form.fields]
        self.unique_ids([f.id for f in form.fields], ("fields",))
        if form.title_field:
            self.expect_ref(("title_field",), "field", form.title_field, field_ids)
        for i, fdef in enumerate(form.fields):
            self.link_field(form, i, fdef, names, field_ids)
        for i, rule in enumerate(form.rules):
            self.compile(("rules", i, "when"), rule.when, names, T.BOOL)
            for j, name in enumerate(rule.fields):
                self.expect_ref(("rules", i, "fields", j), "field", name, field_ids)
        self.order_computed(form)

    def link_field(
        self,
        form: FormDef,
        i: int,
        fdef: FieldDef,
        names: Mapping[str, ValueType],
        field_ids: list[str],
    ) -> None:
        path: Path_ = ("fields", i)
        others = {k: v for k, v in names.items() if k != fdef.id}
        self.compile(
            (*path, "formula"),
            fdef.formula,
            others,
            FIELD_VALUE_TYPES[fdef.type],
            blank_as_zero=fdef.blank_as_zero,
        )
        self.compile((*path, "visible_if"), fdef.visible_if, names, T.BOOL)
        self.compile((*path, "required_if"), fdef.required_if, names, T.BOOL)
        if fdef.type == "computed" and not fdef.formula:
            self.problem((*path, "type"), "a computed field needs a formula")
        if fdef.type in ("choice", "multichoice") and not fdef.choices:
            self.problem((*path, "choices"), f"a {fdef.type} field needs choices")
        values = [c if isinstance(c, str) else c.value for c in fdef.choices]
        if len(set(values)) != len(values):
            self.problem((*path, "choices"), "the same choice is listed twice")
        self.link_default(path, fdef)
        if fdef.type == "reference":
            self.link_reference(path, fdef, form)
        else:
            if fdef.where is not None:
                self.problem((*path, "where"), "only a reference field offers records to filter")
            if fdef.fill:
                self.problem((*path, "fill"), "only a reference field fills fields from a record")
        if fdef.min is not None and fdef.max is not None and fdef.min > fdef.max:
            self.problem((*path, "min"), f"min ({fdef.min}) is greater than max ({fdef.max})")
        if fdef.renamed_from and fdef.renamed_from in field_ids:
            self.problem(
                (*path, "renamed_from"), f"'{fdef.renamed_from}' is still a field of this form"
            )
        if fdef.pattern:
            self.check_pattern((*path, "pattern"), fdef.pattern)

    def link_default(self, path: Path_, fdef: FieldDef) -> None:
        """A literal default must be a value the field accepts; a default formula names no
        fields (a new form has none filled in yet) and gives the field's type."""
        from quotaflow.forms.values import FieldValueError, parse_value

        if fdef.formula is not None and (fdef.default, fdef.default_formula) != (None, None):
            self.problem((*path, "default"), "a computed field has no default: its formula sets it")
            return
        if fdef.default is not None and fdef.default_formula is not None:
            self.problem((*path, "default"), "give either 'default' or 'default_formula', not both")
            return
        self.compile(
            (*path, "default_formula"), fdef.default_formula, {}, FIELD_VALUE_TYPES[fdef.type]
        )
        if fdef.default is None or fdef.type in ("user", "reference"):
            if fdef.default is not None:
                self.problem((*path, "default"), f"a {fdef.type} field has no fixed default")
            return
        raw = fdef.default if isinstance(fdef.default, list) else _as_input(fdef, fdef.default)
        try:
            parse_value(fdef, raw)
        except FieldValueError as exc:
            self.problem(
                (*path, "default"),
                f"the default {fdef.default!r} is refused: {exc.in_locale('en')}",
            )

    def link_reference(self, path: Path_, fdef: FieldDef, form: FormDef) -> None:
        forms = self.defs.get("form", {})
        if fdef.form is None:
            self.problem(path, "a reference field needs 'form': the form it refers to")
            return
        if not self.expect_ref((*path, "form"), "form", fdef.form, forms):
            return
        fields = {f.id: FIELD_VALUE_TYPES[f.type] for f in forms[fdef.form].fields}
        where = self.compile((*path, "where"), fdef.where, {**RECORD_COLUMNS, **fields}, T.BOOL)
        reason = where.sql_unsupported_reason() if where else None
        if reason:
            self.problem((*path, "where"), f"this filter cannot run in the database: {reason}")
        self.link_fill(path, fdef, form, forms[fdef.form])

    def link_fill(self, path: Path_, fdef: FieldDef, form: FormDef, referred: FormDef) -> None:
        """Each filled field is an editable field of this form taking the same kind of value
        as the referred form's field it copies (text and textarea count as one kind)."""
        own = {f.id: f for f in form.fields}
        theirs = {f.id: f for f in referred.fields}
        kind = {"textarea": "text"}
        for target, source in (fdef.fill or {}).items():
            where = (*path, "fill", target)
            if not self.expect_ref(where, "field", target, own):
                continue
            if not self.expect_ref(where, f"{referred.id} field", source, theirs):
                continue
            mine, other = own[target], theirs[source]
            if mine.formula is not None or mine.type in (
                "computed",
                "multichoice",
                "bool",
                "user",
                "reference",
            ):  # fmt: skip  (whom or what a person may pick depends on the person)
                self.problem(where, f"'{target}' cannot be filled: only typed-in fields can")
            elif kind.get(mine.type, mine.type) != kind.get(other.type, other.type):
                self.problem(
                    where, f"'{target}' is a {mine.type} field; '{source}' is a {other.type} field"
                )

    def check_pattern(self, path: Path_, pattern: str) -> None:
        import re

        try:
            re.compile(pattern)
        except re.error as exc:
            self.problem(path, f"not a valid pattern: {exc}")

    def order_computed(self, form: FormDef) -> None:
        computed = {f.id for f in form.fields if f.formula}
        deps = {}
        for i, fdef in enumerate(form.fields):
            compiled = self.expressions.get(
                expression_key("form", form.id, ("fields", i, "formula"))
            )
            if fdef.formula and compiled is not None:
                deps[fdef.id] = sorted(compiled.names & computed)
        try:
            self.computed_order[form.id] = tuple(order_by_dependencies(deps))
        except CycleError as exc:
            self.problem(
                ("fields",),
                f"computed fields depend on each other in a loop: {' -> '.join(exc.cycle)}",
            )

    def unique_ids(self, ids: list[str], path: Path_) -> None:
        seen: dict[str, int] = {}
        for i, item_id in enumerate(ids):
            if item_id in seen:
                self.problem(
                    (*path, i, "id"), f"duplicate id '{item_id}' (also item {seen[item_id] + 1})"
                )
            seen.setdefault(item_id, i)

    # --- pipelines ---------------------------------------------------------------------

    def link_pipeline(self, pipeline: PipelineDef) -> None:
        forms = self.defs.get("form", {})
        if not self.expect_ref(("form",), "form", pipeline.form, forms):
            return
        form = forms[pipeline.form]
        names = self.form_names(form)
        field_ids = [f.id for f in form.fields]
        stage_ids = [s.id for s in pipeline.stages]
        self.unique_ids(stage_ids, ("stages",))
        for i, stage in enumerate(pipeline.stages):
            path: Path_ = ("stages", i)
            for j, name in enumerate(stage.require):
                self.expect_ref((*path, "require", j), "field", name, field_ids)
            for j, rule in enumerate(stage.rules):
                self.compile((*path, "rules", j, "check"), rule.check, names, T.BOOL)
            if stage.approval:
                self.compile((*path, "approval", "when"), stage.approval.when, names, T.BOOL)
                self.expect_ref((*path, "approval", "by"), "role", stage.approval.by, self.roles)
            if stage.renamed_from and stage.renamed_from in stage_ids:
                self.problem((*path, "renamed_from"), f"'{stage.renamed_from}' is still a stage")
        if not any(s.outcome is None for s in pipeline.stages):
            self.problem(("stages",), "a pipeline needs at least one open stage (without outcome)")
        for i, move in enumerate(pipeline.transitions or ()):
            self.expect_ref(("transitions", i, "from"), "stage", move.from_, stage_ids)
            self.expect_ref(("transitions", i, "to"), "stage", move.to, stage_ids)
            self.compile(("transitions", i, "when"), move.when, names, T.BOOL)
        self.expect_ref(("reopen_by",), "role", pipeline.reopen_by, self.roles)

    # --- KPIs --------------------------------------------------------------------------

    def link_kpi(self, kpi: KpiDef) -> None:
        if (kpi.aggregate is None) == (kpi.formula is None):
            self.problem((), "a KPI has either 'aggregate' or 'formula' (exactly one)")
            return
        if kpi.formula is not None:
            names = {k.id: UNIT_TYPES[k.unit] for k in self.defs["kpi"].values() if k.id != kpi.id}
            self.compile(("formula",), kpi.formula, names, UNIT_TYPES[kpi.unit])
            return
        agg = kpi.aggregate
        assert agg is not None
        forms = self.defs.get("form", {})
        if not self.expect_ref(("aggregate", "form"), "form", agg.form, forms):
            return
        form = forms[agg.form]
        fields = {f.id: FIELD_VALUE_TYPES[f.type] for f in form.fields}
        if agg.op == "count":
            if agg.field is not None:
                self.expect_ref(("aggregate", "field"), "field", agg.field, fields)
        elif agg.field is None:
            self.problem(("aggregate",), f"'{agg.op}' needs a 'field' to aggregate")
        elif self.expect_ref(("aggregate", "field"), "field", agg.field, fields):
            if agg.op != "count_distinct" and fields[agg.field] not in NUMERIC:
                self.problem(
                    ("aggregate", "field"), f"cannot {agg.op} '{agg.field}': it is not a number"
                )
        dates = [
            *(n for n, t in RECORD_COLUMNS.items() if t in (T.DATE, T.DATETIME)),
            *(n for n, t in fields.items() if t in (T.DATE, T.DATETIME)),
        ]
        self.expect_ref(("aggregate", "date"), "date field", agg.date, dates)
        where = self.compile(
            ("aggregate", "where"), agg.where, {**RECORD_COLUMNS, **fields}, T.BOOL
        )
        reason = where.sql_unsupported_reason() if where else None
        if reason:
            self.problem(
                ("aggregate", "where"), f"this filter cannot run in the database: {reason}"
            )

    def order_kpis(self) -> None:
        kpis = self.defs.get("kpi", {})
        deps = {}
        for kpi_id, kpi in kpis.items():
            compiled = self.expressions.get(expression_key("kpi", kpi_id, ("formula",)))
            if kpi.formula and compiled is not None:
                deps[kpi_id] = sorted(compiled.names)
        try:
            self.kpi_order = tuple(order_by_dependencies(deps))
        except CycleError as exc:
            self.at("kpi", exc.cycle[0]).problem(
                ("formula",),
                f"KPI formulas depend on each other in a loop: {' -> '.join(exc.cycle)}",
            )

    # --- targets -----------------------------------------------------------------------

    def link_target_plan(self, plan: TargetPlanDef) -> None:
        self.expect_ref(("kpi",), "KPI", plan.kpi, self.defs.get("kpi", {}))
        self.expect_ref(("adjustable_by",), "role", plan.adjustable_by, self.roles)
        for name, share in plan.tiers.items():
            if share <= 0:
                self.problem(("tiers", name), "a tier is a positive share of the total, e.g. 0.9")
        if plan.round_to is not None:
            exponent = plan.round_to.as_tuple().exponent
            if not isinstance(exponent, int) or (
                exponent < -2 and plan.round_to != plan.round_to.quantize(Decimal("0.01"))
            ):
                self.problem(("round_to",), "round to a whole number of cents, e.g. 1000 or 0.5")
            elif plan.round_to > plan.total:
                self.problem(
                    ("round_to",), f"round_to ({plan.round_to}) is more than the total to split"
                )
        levels = [s.level for s in plan.split]
        order = ["region", "team", "rep"]
        if levels != sorted(levels, key=order.index) or len(set(levels)) != len(levels):
            self.problem(("split",), "split levels go down the org once each: region, team, rep")
        for i, split in enumerate(plan.split):
            path: Path_ = ("split", i)
            needs = {"formula": split.weight, "potential": split.potential, "manual": split.manual}
            if split.method in needs and needs[split.method] is None:
                key = {"formula": "weight"}.get(split.method, split.method)
                self.problem(path, f"method '{split.method}' needs '{key}'")
            self.compile((*path, "weight"), split.weight, SPLIT_NAMES, T.NUMBER)
            if split.basis_kpi:
                self.expect_ref(
                    (*path, "basis_kpi"), "KPI", split.basis_kpi, self.defs.get("kpi", {})
                )
        if plan.phasing and not isinstance(plan.phasing.weights, str):
            self.check_phasing(plan)

    def check_phasing(self, plan: TargetPlanDef) -> None:
        from quotaflow.kpis.periods import PeriodError, parse_period

        assert plan.phasing is not None and not isinstance(plan.phasing.weights, str)
        weights = plan.phasing.weights
        packs = list(self.defs.get("pack", {}).values())
        start_month = packs[0].fiscal_year_start if packs else 1
        try:
            parts = parse_period(plan.period, start_month).sub_periods(plan.phasing.by)
        except PeriodError as exc:
            self.problem(
                ("phasing", "by"),
                f"a {plan.period} target cannot be phased by {plan.phasing.by}: {exc}",
            )
            return
        if len(weights) != len(parts):
            self.problem(
                ("phasing", "weights"),
                f"{plan.period} has {len(parts)} {plan.phasing.by}s; got {len(weights)} weights",
            )
        if any(w < 0 for w in weights) or not sum(weights) > 0:
            self.problem(("phasing", "weights"), "weights must be zero or more, and not all zero")

    # --- scorecards --------------------------------------------------------------------

    def link_scorecard(self, card: ScorecardDef) -> None:
        self.expect_ref(("applies_to", "role"), "role", card.applies_to.role, self.roles)
        self.check_weights(("groups",), "group weights", card.groups.values())
        kpis, plans = self.defs.get("kpi", {}), self.defs.get("target_plan", {})
        item_ids: list[str] = []
        by_group: dict[str, list[float]] = {g: [] for g in card.groups}
        for i, item in enumerate(card.items):
            path: Path_ = ("items", i)
            chosen = [k for k in ("kpi", "manual", "formula") if getattr(item, k) is not None]
            if len(chosen) != 1:
                self.problem(path, "an item has exactly one of 'kpi', 'manual' or 'formula'")
                continue
            item_id = item.id or item.kpi or item.manual or f"item_{i + 1}"
            item_ids.append(item_id)
            if self.expect_ref((*path, "group"), "group", item.group, card.groups):
                by_group[item.group].append(item.weight)
            if item.kpi is not None:
                self.link_kpi_item(path, item.kpi, item.target, item.score, kpis, plans)
            elif item.manual is not None:
                low, high = item.scale or (1, 5)
                if low >= high:
                    self.problem((*path, "scale"), "a scale goes from low to high, e.g. [1, 5]")
                self.compile((*path, "score"), item.score, RATING_NAMES, T.NUMBER)
        self.unique_ids(item_ids, ("items",))
        formula_names = {
            **{k: UNIT_TYPES[v.unit] for k, v in kpis.items()},
            **{i: T.NUMBER for i in item_ids},
        }
        for i, item in enumerate(card.items):
            self.compile(("items", i, "formula"), item.formula, formula_names, T.NUMBER)
        for group in card.group_labels or {}:
            self.expect_ref(("group_labels", group), "group", group, card.groups)
        for group, weights in by_group.items():
            if not weights:
                self.problem(("groups", group), f"group '{group}' has no items")
            else:
                self.check_weights(("groups", group), f"item weights in group '{group}'", weights)
        final_names = {name: T.NUMBER for name in [*card.groups, *item_ids]}
        self.compile(("final",), card.final, final_names, T.NUMBER)
        grades = [g.grade for g in card.grades]
        if len(set(grades)) != len(grades):
            self.problem(("grades",), "the same grade is listed twice")
        if not any(g.min <= 0 for g in card.grades):
            self.problem(("grades",), "no grade for the lowest scores: add one with min: 0")
        for grade in card.forced_distribution or {}:
            self.expect_ref(("forced_distribution", grade), "grade", grade, grades)

    def link_kpi_item(
        self,
        path: Path_,
        kpi_id: str,
        target: str | float | None,
        score: str | None,
        kpis: Mapping[str, KpiDef],
        plans: Mapping[str, TargetPlanDef],
    ) -> None:
        self.expect_ref((*path, "kpi"), "KPI", kpi_id, kpis)
        if target is None:
            self.problem(path, f"KPI item '{kpi_id}' needs a target: a target plan id or a figure")
        elif isinstance(target, str) and self.expect_ref(
            (*path, "target"), "target plan", target, plans
        ):
            if plans[target].kpi != kpi_id:
                self.problem(
                    (*path, "target"),
                    f"target plan '{target}' is for KPI '{plans[target].kpi}', not '{kpi_id}'",
                )
        self.compile((*path, "score"), score, SCORE_NAMES, T.NUMBER)

    def check_weights(self, path: Path_, what: str, weights: Iterable[float]) -> None:
        total = sum(weights)
        if abs(total - 100) > 1e-9:
            self.problem(path, f"{what} must sum to 100, they sum to {total:g}")

    # --- alerts, dashboards, pack tests ------------------------------------------------

    def link_alert(self, alert: AlertDef) -> None:
        kpis = self.defs.get("kpi", {})
        if alert.scope == "record":
            forms = self.defs.get("form", {})
            if alert.form is None:
                self.problem(("scope",), "an alert on records needs 'form'")
                return
            if not self.expect_ref(("form",), "form", alert.form, forms):
                return
            names = {**RECORD_COLUMNS, **self.form_names(forms[alert.form]), **RECORD_ALERT_NAMES}
        else:
            self.expect_ref(("kpi",), "KPI", alert.kpi, kpis)
            if alert.target:
                self.expect_ref(
                    ("target",), "target plan", alert.target, self.defs.get("target_plan", {})
                )
            names = {**PACE_NAMES, **{k: UNIT_TYPES[v.unit] for k, v in kpis.items()}}
        self.compile(("when",), alert.when, names, T.BOOL)
        for j, role in enumerate(alert.notify):
            self.expect_ref(("notify", j), "role", role, self.roles)
        texts = [alert.message] if isinstance(alert.message, str) else alert.message.values()
        for text in texts:
            self.check_message(text, [*names, *MESSAGE_EXTRA_NAMES])

    def check_message(self, text: str, names: list[str]) -> None:
        try:
            parts = list(string.Formatter().parse(text))
        except ValueError as exc:
            self.problem(("message",), f"cannot read the message placeholders: {exc}")
            return
        for _literal, name, spec, _conv in parts:
            if name is None:
                continue
            if not name.isidentifier():
                self.problem(("message",), f"placeholder '{{{name}}}' must be a plain name")
            else:
                self.expect_ref(("message",), "placeholder", name, names)
            if spec and ("{" in spec or len(spec) > 12):
                self.problem(("message",), f"placeholder format '{spec}' is not allowed")

    def link_dashboard(self, board: DashboardDef) -> None:
        refs = (
            ("kpi", "KPI", "kpi"),
            ("target", "target plan", "target_plan"),
            ("pipeline", "pipeline", "pipeline"),
            ("scorecard", "scorecard", "scorecard"),
        )
        for i, widget in enumerate(board.widgets):
            for attr, what, kind in refs:
                value = getattr(widget, attr)
                if value is not None:
                    self.expect_ref(("widgets", i, attr), what, value, self.defs.get(kind, {}))
            needed = {"kpi": "kpi", "progress": "target", "funnel": "pipeline", "trend": "kpi"}
            if widget.type in needed and getattr(widget, needed[widget.type]) is None:
                self.problem(
                    ("widgets", i), f"a {widget.type} widget needs '{needed[widget.type]}'"
                )
        for j, role in enumerate(board.roles):
            self.expect_ref(("roles", j), "role", role, self.roles)

    def link_leaderboard(self, board: LeaderboardDef) -> None:
        kpis = self.defs.get("kpi", {})
        if (board.kpi is None) == (board.scorecard is None):
            self.problem((), "a leaderboard ranks by exactly one of: kpi, scorecard")
        if board.kpi is not None:
            self.expect_ref(("kpi",), "KPI", board.kpi, kpis)
        if board.scorecard is not None:
            self.expect_ref(
                ("scorecard",), "scorecard", board.scorecard, self.defs.get("scorecard", {})
            )
            if board.by != "rep":
                self.problem(("by",), "a scorecard leaderboard ranks reps: use by: rep")
        for i, award in enumerate(board.awards):
            if award.kpi is not None:
                self.expect_ref(("awards", i, "kpi"), "KPI", award.kpi, kpis)
        for j, role in enumerate(board.roles):
            self.expect_ref(("roles", j), "role", role, self.roles)

    def link_pack_test(self, test: PackTestDef) -> None:
        for i, case in enumerate(test.cases):
            path: Path_ = ("cases", i)
            targets = [
                k for k in ("scorecard", "kpi", "target", "form", "formula") if getattr(case, k)
            ]
            if len(targets) != 1:
                self.problem(
                    path, "a case tests exactly one of: scorecard, kpi, target, form, formula"
                )
                continue
            kind = {"target": "target_plan"}.get(targets[0], targets[0])
            if kind != "formula":
                self.expect_ref(
                    (*path, targets[0]),
                    kind.replace("_", " "),
                    getattr(case, targets[0]),
                    self.defs.get(kind, {}),
                )
            else:
                names = {name: T.ANY for name in case.given}
                self.compile((*path, "formula"), case.formula, names)


def _as_input(fdef: FieldDef, value: Any) -> str:
    """A default from a pack file as a person would type it (YAML gives numbers, yes/no; a
    percent default is a fraction, as `min` and `max` are: 0.2 is typed as 20)."""
    from decimal import InvalidOperation

    from quotaflow.forms.values import to_input

    if isinstance(value, bool):
        return "yes" if value else ""
    try:
        return to_input(fdef, value)
    except (InvalidOperation, ValueError, TypeError):  # not a number: said as such by parsing
        return str(value)
