"""Typed definitions, one frozen dataclass per pack kind: the single source of the JSON Schemas.

`quotaflow pack schema --write` regenerates definitions/schema/*.schema.json from these
classes; a test proves the committed files match. Expressions stay strings here; the
validator compiles each one with the expression engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dfield
from decimal import Decimal
from typing import Annotated, Any, Literal

from quotaflow.packs.schema import JsonSchema, meta

ID_PATTERN = "^[a-z][a-z0-9_]{0,62}$"
Id = Annotated[str, JsonSchema(pattern=ID_PATTERN)]
Label = Annotated[
    str | dict[str, str],
    JsonSchema(description="Text, or a map of locale to text: {en: Deal, zh: 商机}"),
]
Expr = Annotated[str, JsonSchema(minLength=1, maxLength=2000, description="An expression")]
Capability = Literal["admin", "manager", "rep"]

FieldType = Literal[
    "text",
    "textarea",
    "number",
    "money",
    "percent",
    "date",
    "datetime",
    "choice",
    "multichoice",
    "bool",
    "rating",
    "email",
    "phone",
    "user",
    "reference",
    "computed",
]


# --- pack ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleDef:
    """A role name this company uses, mapped to what it may do."""

    id: Id
    capability: Capability
    label: Label | None = None


@dataclass(frozen=True, slots=True)
class PackDef:
    """The pack itself: identity, version and company-wide settings."""

    kind: Literal["pack"]
    id: Id
    name: Label
    version: str = dfield(
        metadata=meta(
            "Semantic version; a lower version never installs over a higher one",
            pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$",
        )
    )
    description: Label | None = None
    requires: dict[str, str] | None = dfield(
        default=None, metadata=meta("Version constraints, e.g. {quotaflow: '>=0.1'}")
    )
    extends: str | None = dfield(
        default=None,
        metadata=meta(
            "A base pack this one overlays: id or id@constraint",
            pattern=r"^[a-z][a-z0-9_]*(@[\^~><=]*\d+(\.\d+){0,2})?$",
        ),
    )
    locale: str = dfield(
        default="en", metadata=meta("Default locale", pattern="^[a-z]{2}(-[A-Za-z]+)?$")
    )
    currency: str = dfield(default="USD", metadata=meta("ISO 4217 code", pattern="^[A-Z]{3}$"))
    fiscal_year_start: int = dfield(
        default=1, metadata=meta("Month the fiscal year starts (1-12)", minimum=1, maximum=12)
    )
    timezone: str = dfield(default="UTC", metadata=meta("IANA time zone, e.g. Asia/Shanghai"))
    plugins: tuple[str, ...] = ()
    roles: tuple[RoleDef, ...] = ()


# --- forms --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChoiceDef:
    """One allowed value of a choice field, with its label."""

    value: str
    label: Label | None = None


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field of a form."""

    id: Id
    type: FieldType
    label: Label | None = None
    help: Label | None = None
    required: bool = False
    required_if: Expr | None = None
    visible_if: Expr | None = None
    formula: Expr | None = dfield(
        default=None, metadata=meta("Makes the field computed (read-only) from this expression")
    )
    blank_as_zero: bool = dfield(
        default=False, metadata=meta("In the formula, blank numbers count as 0")
    )
    default: Any = dfield(
        default=None, metadata=meta("The value a new form starts with; the person may change it")
    )
    default_formula: Expr | None = dfield(
        default=None,
        metadata=meta(
            "A new form starts with this expression's value, worked out as it opens in the"
            " company's time zone (e.g. TODAY() or TODAY() + 7); it names no fields"
        ),
    )
    min: float | None = None
    max: float | None = None
    max_length: int | None = dfield(default=None, metadata=meta(minimum=1))
    pattern: str | None = None
    choices: tuple[str | ChoiceDef, ...] = ()
    scale: int | None = dfield(default=None, metadata=meta("Highest rating", minimum=2, maximum=10))
    form: Id | None = dfield(
        default=None, metadata=meta("For reference fields: the form referred to")
    )
    where: Expr | None = dfield(
        default=None,
        metadata=meta(
            "For reference fields: only records of that form for which this holds are offered,"
            " e.g. stage != 'lost' (it runs in the database, like a KPI's where)"
        ),
    )
    fill: dict[str, str] | None = dfield(
        default=None,
        metadata=meta(
            "For reference fields: fields of this form filled from the record chosen, while"
            " they are blank: {this form's field: the referred form's field}"
        ),
    )
    renamed_from: Id | None = dfield(
        default=None, metadata=meta("Previous id: installing moves existing values over")
    )


@dataclass(frozen=True, slots=True)
class RuleDef:
    """A cross-field rule: when the condition holds, the record is refused with the message."""

    when: Expr
    error: Label
    fields: tuple[Id, ...] = ()


@dataclass(frozen=True, slots=True)
class FormDef:
    """A form reps fill (a deal, a visit...); each saved record keeps its values."""

    kind: Literal["form"]
    id: Id
    label: Label
    fields: tuple[FieldDef, ...] = dfield(metadata=meta(minItems=1))
    title_field: Id | None = None
    rules: tuple[RuleDef, ...] = ()
    renamed_from: Id | None = None


# --- pipelines ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalDef:
    """Entering the stage needs approval when the condition holds."""

    when: Expr
    by: Id = "manager"
    message: Label | None = None


@dataclass(frozen=True, slots=True)
class StageRuleDef:
    """A rule checked when a deal enters the stage; when false, the move is refused."""

    check: Expr
    error: Label


@dataclass(frozen=True, slots=True)
class StageDef:
    """One stage of a pipeline."""

    id: Id
    label: Label | None = None
    probability: float | None = dfield(default=None, metadata=meta(minimum=0, maximum=1))
    outcome: Literal["won", "lost"] | None = None
    require: tuple[Id, ...] = ()
    rules: tuple[StageRuleDef, ...] = ()
    approval: ApprovalDef | None = None
    renamed_from: Id | None = None


@dataclass(frozen=True, slots=True)
class TransitionDef:
    """An allowed move between two stages, optionally only when a condition holds."""

    from_: Id = dfield(metadata=meta(alias="from"))
    to: Id
    when: Expr | None = None


@dataclass(frozen=True, slots=True)
class PipelineDef:
    """The stages a record of a form moves through."""

    kind: Literal["pipeline"]
    id: Id
    form: Id
    stages: tuple[StageDef, ...] = dfield(metadata=meta(minItems=2))
    label: Label | None = None
    stale_after_days: int | None = dfield(default=None, metadata=meta(minimum=1))
    transitions: tuple[TransitionDef, ...] | None = dfield(
        default=None, metadata=meta("Explicit moves; default: forward, back one, to lost")
    )
    reopen_by: Id = "manager"


# --- KPIs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AggregateDef:
    """A KPI computed in the database over the records of a form."""

    form: Id
    op: Literal["count", "sum", "avg", "min", "max", "count_distinct"]
    field: Id | None = None
    where: Expr | None = None
    date: Id = dfield(
        default="record_date",
        metadata=meta(
            "Date that places a record in a period: record_date, created_at, "
            "closed_at or a date field of the form"
        ),
    )


@dataclass(frozen=True, slots=True)
class KpiDef:
    """A measured figure: an aggregate over records, or a formula over other KPIs."""

    kind: Literal["kpi"]
    id: Id
    label: Label | None = None
    unit: Literal["number", "money", "percent"] = "number"
    category: Literal["result", "process", "capability"] | None = None
    higher_is_better: bool = True
    aggregate: AggregateDef | None = None
    formula: Expr | None = None


# --- targets ------------------------------------------------------------------------------

PERIOD_PATTERN = r"^(FY\d{4}|\d{4}|\d{4}-H[12]|\d{4}-Q[1-4]|\d{4}-(0[1-9]|1[0-2]))$"
Period = Annotated[
    str, JsonSchema(pattern=PERIOD_PATTERN, description="FY2026, 2026, 2026-H1, 2026-Q3, 2026-07")
]


@dataclass(frozen=True, slots=True)
class SplitDef:
    """How one level of the org tree gets its share of the level above."""

    level: Literal["region", "team", "rep"]
    method: Literal["equal", "history", "potential", "formula", "manual"]
    weight: Expr | None = dfield(default=None, metadata=meta("For method formula"))
    basis_kpi: Id | None = dfield(
        default=None, metadata=meta("For history: defaults to the plan's KPI")
    )
    basis_period: Period | None = dfield(
        default=None, metadata=meta("For history: default the prior period")
    )
    potential: dict[str, Decimal] | None = dfield(
        default=None, metadata=meta("For potential: team or user -> figure")
    )
    manual: dict[str, Decimal] | None = dfield(
        default=None, metadata=meta("Fixed amounts; the rest is shared out")
    )


@dataclass(frozen=True, slots=True)
class PhasingDef:
    """How a target is spread over sub-periods."""

    by: Literal["quarter", "month", "week"]
    weights: tuple[float, ...] | Literal["even", "history"] = "even"


@dataclass(frozen=True, slots=True)
class TargetPlanDef:
    """A target for a KPI and period, its tiers, and how it is split and phased."""

    kind: Literal["target_plan"]
    id: Id
    kpi: Id
    period: Period
    total: Decimal = dfield(metadata=meta(minimum=0))
    label: Label | None = None
    tiers: dict[str, float] = dfield(
        default_factory=lambda: {"base": 0.9, "ideal": 1.0, "stretch": 1.2},
        metadata=meta("Tier name -> share of the total"),
    )
    split: tuple[SplitDef, ...] = ()
    phasing: PhasingDef | None = None
    adjustable_by: Id = "manager"
    round_to: Decimal | None = dfield(
        default=None,
        metadata=meta(
            "Targets in round figures: every part of the split, tier and phase is a whole"
            " multiple of this amount (e.g. 1000), but for the one taking what is left below it",
            exclusiveMinimum=0,
        ),
    )


# --- scorecards ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppliesToDef:
    """Whom a scorecard appraises."""

    role: Id


@dataclass(frozen=True, slots=True)
class ScoreItemDef:
    """One item: a KPI against a target, a manual rating, or a formula."""

    group: Id
    weight: float = dfield(metadata=meta(minimum=0, maximum=100))
    kpi: Id | None = None
    manual: Id | None = None
    formula: Expr | None = None
    id: Id | None = dfield(default=None, metadata=meta("Defaults to the kpi or manual id"))
    label: Label | None = None
    target: Id | float | None = dfield(default=None, metadata=meta("A target plan id or a figure"))
    score: Expr | None = dfield(
        default=None, metadata=meta("Default: MIN(actual / target, 1.2) * 100")
    )
    scale: tuple[int, ...] | None = dfield(default=None, metadata=meta(minItems=2, maxItems=2))
    rated_by: Literal["manager", "self", "both"] = "manager"
    blank: Literal["zero", "exclude"] | None = None


@dataclass(frozen=True, slots=True)
class GradeDef:
    """A grade band: a final score of at least `min` gets this grade and bonus coefficient."""

    min: float
    grade: str
    bonus: float = 0.0


@dataclass(frozen=True, slots=True)
class ScorecardDef:
    """An appraisal scheme: weighted items in weighted groups, grades and bonus."""

    kind: Literal["scorecard"]
    id: Id
    applies_to: AppliesToDef
    groups: dict[str, float] = dfield(metadata=meta("Group -> weight; weights sum to 100"))
    items: tuple[ScoreItemDef, ...] = dfield(metadata=meta(minItems=1))
    grades: tuple[GradeDef, ...] = dfield(metadata=meta(minItems=1))
    label: Label | None = None
    group_labels: dict[str, Label] | None = dfield(
        default=None, metadata=meta("Group -> its name in each language: {result: {en: Results}}")
    )
    period: Literal["month", "quarter", "half_year", "year"] = "month"
    final: Expr | None = dfield(default=None, metadata=meta("Default: weighted sum of the groups"))
    blank: Literal["zero", "exclude"] = dfield(
        default="zero", metadata=meta("A blank KPI scores 0, or is left out and its weight shared")
    )
    forced_distribution: dict[str, float] | None = dfield(
        default=None, metadata=meta("Grade -> largest share allowed, e.g. {S: 0.1}")
    )


# --- alerts and dashboards ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertDef:
    """A rule evaluated on a schedule that notifies people when it holds."""

    kind: Literal["alert"]
    id: Id
    scope: Literal["rep", "team", "record"]
    when: Expr
    message: Label
    label: Label | None = None
    every: Literal["hour", "day", "week"] = "day"
    kpi: Id | None = dfield(default=None, metadata=meta("For rep/team scope: the KPI paced"))
    target: Id | None = dfield(default=None, metadata=meta("For rep/team scope: the target plan"))
    form: Id | None = dfield(default=None, metadata=meta("For record scope: the form"))
    notify: tuple[Id, ...] = ("rep", "manager")


@dataclass(frozen=True, slots=True)
class WidgetDef:
    """One tile of a dashboard."""

    type: Literal["kpi", "progress", "funnel", "leaderboard", "trend", "breakdown", "table"]
    title: Label | None = None
    kpi: Id | None = None
    target: Id | None = None
    pipeline: Id | None = None
    scorecard: Id | None = None
    by: Literal["rep", "team", "region", "company", "month", "quarter", "stage"] | None = None
    period: str | None = None
    limit: int | None = dfield(default=None, metadata=meta(minimum=1, maximum=100))


@dataclass(frozen=True, slots=True)
class DashboardDef:
    """A page of widgets for some roles."""

    kind: Literal["dashboard"]
    id: Id
    widgets: tuple[WidgetDef, ...] = dfield(metadata=meta(minItems=1))
    label: Label | None = None
    roles: tuple[Id, ...] = ()


@dataclass(frozen=True, slots=True)
class AwardDef:
    """A title shown on a leaderboard: the top N of the board, or of another KPI."""

    label: Label
    top: int = dfield(
        default=1,
        metadata=meta("How many win it (ties at the line all win)", minimum=1, maximum=100),
    )
    kpi: Id | None = dfield(default=None, metadata=meta("Rank by this KPI instead of the board's"))
    min: Decimal | None = dfield(default=None, metadata=meta("Only values at least this high win"))


@dataclass(frozen=True, slots=True)
class LeaderboardDef:
    """A ranking of reps or teams by a KPI or a scorecard's final score, per period."""

    kind: Literal["leaderboard"]
    id: Id
    label: Label | None = None
    kpi: Id | None = dfield(default=None, metadata=meta("Rank by this KPI (or give scorecard)"))
    scorecard: Id | None = dfield(
        default=None, metadata=meta("Rank by this scorecard's final score")
    )
    by: Literal["rep", "team"] = "rep"
    period: Literal["month", "quarter", "year", "fiscal_year"] = "month"
    limit: int | None = dfield(
        default=None,
        metadata=meta("Show the first N (everyone sees their own rank)", minimum=1, maximum=1000),
    )
    awards: tuple[AwardDef, ...] = ()
    roles: tuple[Id, ...] = dfield(default=(), metadata=meta("Who sees it (default: everyone)"))


# --- pack tests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TestCaseDef:
    """Given these inputs, the named definition must produce these outputs."""

    __test__ = False  # not a pytest class

    given: dict[str, Any]
    expect: dict[str, Any]
    name: str | None = None
    scorecard: Id | None = None
    kpi: Id | None = None
    target: Id | None = None
    form: Id | None = None
    formula: Expr | None = None


@dataclass(frozen=True, slots=True)
class PackTestDef:
    """Golden cases a pack ships to prove its formulas and scorecards compute as intended."""

    __test__ = False

    kind: Literal["pack_test"]
    id: Id
    cases: tuple[TestCaseDef, ...] = dfield(metadata=meta(minItems=1))


KINDS: dict[str, type] = {
    "pack": PackDef,
    "form": FormDef,
    "pipeline": PipelineDef,
    "kpi": KpiDef,
    "target_plan": TargetPlanDef,
    "scorecard": ScorecardDef,
    "alert": AlertDef,
    "dashboard": DashboardDef,
    "leaderboard": LeaderboardDef,
    "pack_test": PackTestDef,
}
Definition = (
    PackDef
    | FormDef
    | PipelineDef
    | KpiDef
    | TargetPlanDef
    | ScorecardDef
    | AlertDef
    | DashboardDef
    | LeaderboardDef
    | PackTestDef
)


def readable_id(name: str) -> str:
    """An id as people write it when nothing labels it ('head_of_sales' -> 'Head of sales')."""
    return name.replace("_", " ").capitalize()


def label_text(label: Label | None, locale: str = "en", fallback: str = "") -> str:
    """The label in `locale`, else English, else the first one, else `fallback`."""
    if label is None:
        return fallback
    if isinstance(label, str):
        return label
    return label.get(locale) or label.get("en") or next(iter(label.values()), fallback)
