"""The KPI engine: aggregate KPIs as one GROUP BY query each, formula KPIs on top.

An aggregate KPI (`count`, `sum`, `avg`, `min`, `max`, `count_distinct` of a field of a
form, with a `where` filter and a date field) runs in the database: one query per
(KPI, period, grouping), grouped by

- **rep**: the record's owner;
- **team**: the team of the owner's membership valid on the record's date (a rep who moves
  team mid-quarter counts for the old team before the move and the new one after), rolled
  up through the team tree (a region includes its teams; the company root includes all);
- **company**: everything.

Money is exact: the `amount` column is summed as integer cents, other money fields are
read from the values JSON and rounded to cents per record before summing. Dates are the
company's days: period bounds are midnight in the pack's time zone, converted to UTC
instants for the stored date-times, and memberships (dated in local days) are converted
the same way, in Python, so SQLite and PostgreSQL give the same answer.

Formula KPIs are evaluated per scope with the pack's compiled expressions, dependencies
first (`CompiledPack.kpi_order`), with the language's blank semantics: a win rate with no
won and no lost deals is blank, not zero.

Counts, sums and averages are read from maintained roll-ups (kpis/rollups.py) when their
set is ready: per owner and local month when every period bound and membership change falls
on a 1st, else per owner and local day; anything else (min, max, count_distinct, a filter
using TODAY(), a stale set) queries the records. Results are cached per process (cache.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Integer,
    Select,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    literal_column,
    null,
    select,
    values,
)
from sqlalchemy.orm import Session

from quotaflow.errors import QuotaflowError
from quotaflow.expressions import ValueType
from quotaflow.expressions.sql import LocalDay, record_column_resolver
from quotaflow.kpis import cache
from quotaflow.kpis.models import READY, Rollup, RollupSet
from quotaflow.kpis.periods import Period, custom_period, zone_info
from quotaflow.org.models import Membership, Team, User
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import AggregateDef, KpiDef
from quotaflow.records.models import Record

By = Literal["rep", "team", "company"]
BY_CHOICES: tuple[By, ...] = ("rep", "team", "company")
Value = Decimal | int | float | None
Key = int | None  # a user id (by rep), a team id (by team), None (company)

CENT = Decimal("0.01")
DATE_COLUMNS = {
    "record_date": ValueType.DATE,
    "created_at": ValueType.DATETIME,
    "closed_at": ValueType.DATETIME,
    "updated_at": ValueType.DATETIME,
}
NUMERIC = {ValueType.NUMBER, ValueType.MONEY, ValueType.PERCENT}
OPEN_DAY = date(9999, 12, 31)
ROLLUP_FORMAT = 1  # bump when what a roll-up row holds changes: every set is rebuilt
OPEN_INSTANT = datetime(9000, 1, 1, tzinfo=UTC)


class KpiError(QuotaflowError):
    """A KPI that does not exist or cannot be computed as asked."""


def money(cents: int | None) -> Decimal | None:
    """Integer cents as an exact Decimal amount."""
    return None if cents is None else Decimal(int(cents)).scaleb(-2)


def round_money(value: Any) -> Any:
    """A money result rounded half up to the cent (blank stays blank)."""
    if value is None:
        return None
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def _number(value: Any) -> Value:
    """A float from the database as a tidy number: integral -> int, else Decimal."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return Decimal(repr(round(value, 9)))


def form_field_types(pack: CompiledPack, form_id: str) -> dict[str, ValueType]:
    return pack.field_types(form_id)


# --- attribution to teams ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrgSnapshot:
    """Teams with their ancestors, and memberships: what attribution to teams needs."""

    teams: Mapping[int, tuple[str, str, int | None]]  # id -> (key, name, parent_id)
    ancestors: Mapping[int, tuple[int, ...]]  # id -> itself and every team above it
    memberships: tuple[tuple[int, int, str, date, date | None], ...]  # user, team, role, from, to
    # answers of intervals() per period: a year of months for 3 groupings asks each 3+ times
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, session: Session) -> OrgSnapshot:
        teams = {
            tid: (key, name, parent)
            for tid, key, name, parent in session.execute(
                select(Team.id, Team.key, Team.name, Team.parent_id)
            )
        }
        ancestors: dict[int, tuple[int, ...]] = {}
        for tid in teams:
            chain: list[int] = []
            current: int | None = tid
            while current is not None and current not in chain:  # a cycle still ends
                chain.append(current)
                current = teams[current][2] if current in teams else None
            ancestors[tid] = tuple(chain)
        rows = session.execute(
            select(
                Membership.user_id,
                Membership.team_id,
                Membership.role,
                Membership.valid_from,
                Membership.valid_to,
            ).order_by(Membership.user_id, Membership.valid_from)
        )
        return cls(teams, ancestors, tuple((u, t, r, f, to) for u, t, r, f, to in rows))

    def intervals(self, period: Period) -> dict[tuple[int, int], list[tuple[date, date]]]:
        """(user, team or ancestor) -> disjoint [from, to) day ranges overlapping the period.

        Overlapping memberships under one ancestor are merged, so a region never counts a
        record twice when its rep belongs to two of its teams at once.
        """
        known = self.memo.get(("intervals", period.start, period.end))
        if known is not None:
            return known
        raw: dict[tuple[int, int], list[tuple[date, date]]] = {}
        for user_id, team_id, _role, start, end in self.memberships:
            stop = end or OPEN_DAY
            if start > period.end or stop <= period.start or stop <= start:
                continue
            for team in self.ancestors.get(team_id, (team_id,)):
                raw.setdefault((user_id, team), []).append((start, stop))
        merged: dict[tuple[int, int], list[tuple[date, date]]] = {}
        for key, spans in raw.items():
            spans.sort()
            out = [spans[0]]
            for start, stop in spans[1:]:
                if start <= out[-1][1]:
                    out[-1] = (out[-1][0], max(out[-1][1], stop))
                else:
                    out.append((start, stop))
            merged[key] = out
        self.memo[("intervals", period.start, period.end)] = merged
        return merged

    def members_on(self, period: Period, roles: Collection[str] | None = None) -> set[int]:
        """Users with a membership overlapping the period (of these roles, when given)."""
        return {user_id for user_id, *_rest in self._overlapping(period, roles)}

    def home_teams(self, period: Period, roles: Collection[str] | None = None) -> dict[int, int]:
        """Each such member's own team in the period (not its parents): the team of their
        latest membership overlapping it. Where a person sits, whatever the tree has above or
        below that team (a new, empty sub-team does not take its parent's people)."""
        latest: dict[int, tuple[date, int]] = {}
        for user_id, team_id, _role, start, _end in self._overlapping(period, roles):
            if user_id not in latest or start >= latest[user_id][0]:
                latest[user_id] = (start, team_id)
        return {user_id: team_id for user_id, (_start, team_id) in latest.items()}

    def _overlapping(
        self, period: Period, roles: Collection[str] | None
    ) -> Iterator[tuple[int, int, str, date, date | None]]:
        for membership in self.memberships:
            _user, _team, role, start, end = membership
            if start <= period.end and (end is None or end > period.start):
                if roles is None or role in roles:
                    yield membership


# --- the engine -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiFigures:
    """One KPI for one period and grouping: scope key -> value."""

    kpi: KpiDef
    period: Period
    by: By
    values: Mapping[Key, Value]


class KpiEngine:
    """Computes KPIs of one pack on one session (kept between calls: the org, the ready
    roll-up sets and which teams an owner counts for in a slice — all fixed within a request)."""

    def __init__(
        self,
        session: Session,
        pack: CompiledPack,
        *,
        today: date | None = None,
        rollups: bool = True,
    ):
        self.session = session
        self.pack = pack
        self.today = today
        self.tz = zone_info(pack.pack.timezone)
        self.use_rollups = rollups
        self._org: OrgSnapshot | None = None
        self._sets: dict[str, int] | None = None
        self._slice_teams: dict[Any, dict[tuple[int, int], list[int]]] = {}

    @property
    def org(self) -> OrgSnapshot:
        if self._org is None:
            self._org = OrgSnapshot.load(self.session)
        return self._org

    def kpi(self, kpi_id: str) -> KpiDef:
        try:
            return self.pack.kpis[kpi_id]
        except KeyError:
            known = ", ".join(sorted(self.pack.kpis)) or "none"
            raise KpiError(f"no KPI '{kpi_id}' in pack {self.pack.id} (KPIs: {known})") from None

    # --- public API -------------------------------------------------------------------------

    def figures(self, kpi_id: str, period: Period, by: By) -> KpiFigures:
        """The KPI for every scope of the grouping that has a value or a member."""
        return self.compute([kpi_id], period, by)[kpi_id]

    def compute(self, kpi_ids: Iterable[str], period: Period, by: By) -> dict[str, KpiFigures]:
        """Several KPIs at once (formulas share their inputs' queries)."""
        if by not in BY_CHOICES:
            raise KpiError(f"cannot group by '{by}': use {', '.join(BY_CHOICES)}")
        wanted = [self.kpi(k).id for k in kpi_ids]
        stamp = cache.stamp_for(self.session)
        # the database too: stamps of two databases served by one process (tests, tools)
        # count from 1 alike
        database = str(self.session.get_bind().engine.url)
        key = cache.cache_key(
            database, self.pack.content_hash, sorted(wanted), by, period.start, period.end,
            self.today, stamp,
        )  # fmt: skip
        cached = cache.get(key) if stamp is not None else None
        if cached is not None:
            return {k: KpiFigures(self.pack.kpis[k], period, by, dict(cached[k])) for k in wanted}
        needed = self._closure(wanted)
        results: dict[str, dict[Key, Value]] = {}
        for kpi_id in needed:
            kpi = self.pack.kpis[kpi_id]
            if kpi.aggregate is not None:
                results[kpi_id] = self.aggregate(kpi, period, by)
        figures = self._finish(wanted, needed, results, period, by)
        if stamp is not None:
            cache.put(key, {k: dict(f.values) for k, f in figures.items()})
        return figures

    def compute_series(
        self, kpi_ids: Iterable[str], periods: Sequence[Period], bys: Sequence[By]
    ) -> dict[tuple[By, int], dict[str, KpiFigures]]:
        """Several KPIs for several periods (the 12 months of a year) and groupings at once:
        (by, index of the period) -> what compute() gives for that period and grouping.

        One query per aggregate KPI over all the periods: GROUP BY the owner and the slice
        between consecutive cut points (period bounds and membership changes), then each
        slice's partial figures are combined into its period for its rep, the teams the rep
        belonged to during the slice, and the company. Equal to compute() per period (tested);
        count_distinct, which partial counts cannot combine, is computed per period.
        """
        for by in bys:
            if by not in BY_CHOICES:
                raise KpiError(f"cannot group by '{by}': use {', '.join(BY_CHOICES)}")
        wanted = [self.kpi(k).id for k in kpi_ids]
        needed = self._closure(wanted)
        ordered = list(periods)
        raw: dict[tuple[By, int], dict[str, dict[Key, Value]]] = {
            (by, i): {} for by in bys for i in range(len(ordered))
        }
        for kpi_id in needed:
            kpi = self.pack.kpis[kpi_id]
            if kpi.aggregate is None:
                continue
            if kpi.aggregate.op == "count_distinct":
                for (by, i), results in raw.items():
                    results[kpi_id] = self.aggregate(kpi, ordered[i], by)
                continue
            for (by, i), values_ in self._series(kpi, ordered, bys).items():
                raw[(by, i)][kpi_id] = values_
        return {
            (by, i): self._finish(wanted, needed, results, ordered[i], by)
            for (by, i), results in raw.items()
        }

    def _finish(
        self,
        wanted: list[str],
        needed: list[str],
        results: dict[str, dict[Key, Value]],
        period: Period,
        by: By,
    ) -> dict[str, KpiFigures]:
        """Every scope of the grouping filled in (blank or zero), then the formula KPIs."""
        keys = self._scope_keys(period, by, results.values())
        for kpi_id in results:
            kpi = self.pack.kpis[kpi_id]
            assert kpi.aggregate is not None
            empty = _empty_value(kpi.aggregate, form_field_types(self.pack, kpi.aggregate.form))
            results[kpi_id] = {k: results[kpi_id].get(k, empty) for k in keys}
        for kpi_id in self.pack.kpi_order:
            if kpi_id not in needed:
                continue
            kpi = self.pack.kpis[kpi_id]
            expression = self.pack.expression("kpi", kpi_id, "formula")
            today = self.today if "TODAY" in expression.functions else None  # a context switch less
            out: dict[Key, Value] = {}
            for key in keys:
                inputs = {
                    name: _formula_input(results[name][key])
                    for name in expression.names
                    if name in results
                }
                value = expression.evaluate(inputs, today=today)
                out[key] = round_money(value) if kpi.unit == "money" else value
            results[kpi_id] = out
        return {k: KpiFigures(self.pack.kpis[k], period, by, results[k]) for k in wanted}

    def _series(
        self, kpi: KpiDef, periods: list[Period], bys: Sequence[By]
    ) -> dict[tuple[By, int], dict[Key, Value]]:
        agg = kpi.aggregate
        assert agg is not None
        span = custom_period(min(p.start for p in periods), max(p.end for p in periods))
        spans = self.org.intervals(span)
        cuts = sorted(
            {d for p in periods for d in (p.start, p.stop) if span.start < d <= span.end}
            | {
                d
                for ranges in spans.values()
                for r in ranges
                for d in r
                if span.start < d <= span.end
            }
        )
        set_id = self.rollup_sets().get(kpi.id)
        owner: Any = Record.owner_id
        if set_id is not None:
            # the maintained roll-up: month rows when every cut falls on a 1st, else day rows
            monthly = all(d.day == 1 for d in (span.start, span.stop, *cuts))
            day, is_instant, owner = Rollup.day, False, Rollup.owner_id
            conditions = [
                Rollup.set_id == set_id,
                Rollup.grain == ("m" if monthly else "d"),
                Rollup.day >= span.start,
                Rollup.day <= span.end,
            ]
            measures, finish = self._rollup_measures(agg)
        else:
            day, is_instant, conditions, measures, finish = self._parts(kpi, span)
        if cuts:
            bounds = [self._instant(d) if is_instant else d for d in cuts]
            bucket: ColumnElement[Any] = case(
                *((day < b, i) for i, b in enumerate(bounds)), else_=len(bounds)
            )
        else:
            bucket = literal(0)
        query = (
            select(owner, bucket.label("qf_bucket"), *measures)
            .where(*conditions)
            .group_by(owner, literal_column("qf_bucket"))
        )
        firsts = [span.start, *cuts]
        where = [next((i for i, p in enumerate(periods) if p.contains(f)), None) for f in firsts]
        teams_of: dict[int, list[tuple[int, list[tuple[date, date]]]]] = {}
        for (user_id, team_id), ranges in spans.items():
            teams_of.setdefault(user_id, []).append((team_id, ranges))
        # which teams an owner counts for in a slice: the same for every KPI of one call
        memo = self._slice_teams.setdefault((span.start, span.stop, tuple(cuts)), {})

        def teams_in_slice(owner: int, index: int) -> list[int]:
            found = memo.get((owner, index))
            if found is None:
                first = firsts[index]
                found = memo[(owner, index)] = [
                    team_id
                    for team_id, ranges in teams_of.get(owner, ())
                    if any(a <= first < b for a, b in ranges)
                ]
            return found

        combine = _COMBINE[agg.op]
        single = len(combine) == 1  # count, sum, min, max: one measure (avg keeps two)
        merge = combine[0]
        partial: dict[tuple[By, int], dict[Key, Any]] = {
            (by, i): {} for by in bys for i in range(len(periods))
        }
        none: dict[Key, Any] = {}
        per = len(periods)
        reps = [partial.get(("rep", i), none) for i in range(per)]
        companies = [partial.get(("company", i), none) for i in range(per)]
        teams = [partial.get(("team", i), none) for i in range(per)]
        by_rep, by_company, by_team = "rep" in bys, "company" in bys, "team" in bys

        def add(target: dict[Key, Any], key: Key, value: Any) -> None:
            if key not in target:
                target[key] = value
            elif single:
                target[key] = merge(target[key], value)
            else:
                target[key] = [c(x, y) for c, x, y in zip(combine, target[key], value, strict=True)]

        if merge is _add and single:  # counts and sums, the usual case: no call per addition

            def add(target: dict[Key, Any], key: Key, value: Any) -> None:
                current = target.get(key)
                if current is None:
                    target[key] = value
                elif value is not None:
                    target[key] = current + value

        # the hot loop of a dashboard: a few thousand rows per KPI, each added to ~5 scopes
        self.session.flush()  # what session.execute would do; rows then come without the ORM
        for owner, index, *values_ in self.session.connection().execute(query):
            index = int(index)
            i = where[index]
            if i is None:
                continue
            value: Any = values_[0] if single else values_
            if by_rep:
                add(reps[i], owner, value)
            if by_company:
                add(companies[i], None, value)
            if by_team:
                slice_teams = memo.get((owner, index))
                if slice_teams is None:
                    slice_teams = teams_in_slice(owner, index)
                for team_id in slice_teams:
                    add(teams[i], team_id, value)
        return {
            key: {scope: finish([v] if single else v) for scope, v in found.items()}
            for key, found in partial.items()
        }

    def aggregate(self, kpi: KpiDef, period: Period, by: By) -> dict[Key, Value]:
        """key -> value for the scopes that have records (one GROUP BY query)."""
        if kpi.aggregate is None:
            raise KpiError(f"KPI '{kpi.id}' is a formula, not an aggregate")
        if (by == "team" and kpi.aggregate.op != "count_distinct") or kpi.id in self.rollup_sets():
            return self._series(kpi, [period], [by])[(by, 0)]
        query, finish = self.aggregate_query(kpi, period, by)
        if query is None:
            return {}
        if by == "company":
            return {None: finish(self.session.execute(query).one())}
        return {row[0]: finish(row[1:]) for row in self.session.execute(query)}

    # --- SQL ----------------------------------------------------------------------------------

    def _parts(
        self, kpi: KpiDef, period: Period | None, *, by_ids: bool = False
    ) -> tuple[Any, bool, list[Any], list[Any], Any]:
        """The date column, whether it is an instant, the WHERE (within the period, when one
        is given), the measures, the finisher."""
        agg = kpi.aggregate
        assert agg is not None
        fields = form_field_types(self.pack, agg.form)
        resolve = record_column_resolver(fields)
        day = resolve(agg.date)
        day_type = DATE_COLUMNS.get(agg.date) or fields.get(agg.date, ValueType.DATE)
        is_instant = day_type == ValueType.DATETIME
        measures, finish = self._measures(agg, fields, resolve)
        conditions: list[ColumnElement[bool]] = [
            Record.pack_id == self.pack.id,
            # a few records by id (kpis/rollups.py): `form_id || ''` keeps SQLite, which has
            # no statistics, from scanning the whole form through a (form, ...) index rather
            # than looking the ids up
            (Record.form_id + "" if by_ids else Record.form_id) == agg.form,
            Record.deleted_at.is_(None),
        ]
        if period is not None and is_instant:
            start, stop = period.utc_bounds(self.tz)
            conditions += [day >= start, day < stop]
        elif period is not None:
            conditions += [day >= period.start, day <= period.end]
        if agg.where:
            where = self.pack.expression("kpi", kpi.id, "aggregate", "where")
            conditions.append(where.to_sql(resolve, today=self.today))
        return day, is_instant, conditions, measures, finish

    def aggregate_query(
        self, kpi: KpiDef, period: Period, by: By
    ) -> tuple[Select[Any] | None, Any]:
        """The SELECT ([key,] measures...) and the function turning the measures into the value.

        By team this is the join with the attribution table; `aggregate` prefers the
        series computation (GROUP BY owner and slice between membership changes, then each
        slice added to the owner's teams then) for every op but count_distinct: it reads the
        records once.
        """
        day, is_instant, conditions, measures, finish = self._parts(kpi, period)
        if by == "company":
            return select(*measures).where(*conditions), finish
        if by == "rep":
            query = select(Record.owner_id, *measures).where(*conditions).group_by(Record.owner_id)
            return query, finish
        attribution = self._attribution(period, is_instant)
        if attribution is None:
            return None, None
        query = (
            select(attribution.c.team_id, *measures)
            .select_from(Record)
            .join(
                attribution,
                and_(
                    attribution.c.user_id == Record.owner_id,
                    day >= attribution.c.valid_from,
                    day < attribution.c.valid_to,
                ),
            )
            .where(*conditions)
            .group_by(attribution.c.team_id)
        )
        return query, finish

    # --- roll-ups (kpis/rollups.py keeps them up to date) ---------------------------------

    def rollable(self, kpi: KpiDef) -> bool:
        """Whether the KPI's figures can be kept rolled up per owner and day: counts, sums
        and averages (partial figures that add up and subtract) with a filter that does not
        depend on the day it is computed (no TODAY())."""
        agg = kpi.aggregate
        if agg is None or agg.op not in ("count", "sum", "avg"):
            return False
        if agg.where:
            where = self.pack.expression("kpi", kpi.id, "aggregate", "where")
            if "TODAY" in where.functions:
                return False
        return True

    def rollup_signature(self, kpi: KpiDef) -> str:
        """Everything that decides a rollable KPI's partial figures, hashed."""
        agg = kpi.aggregate
        assert agg is not None
        fields = form_field_types(self.pack, agg.form)
        parts = [ROLLUP_FORMAT, self.pack.pack.timezone, agg.form, agg.op, agg.field]
        parts += [agg.where, agg.date, fields.get(agg.field or ""), fields.get(agg.date)]
        return cache.cache_key(*parts)

    def rollup_sets(self) -> dict[str, int]:
        """KPI id -> the ready roll-up set serving it (none when roll-ups are off)."""
        if self._sets is None:
            self._sets = {}
            if self.use_rollups:
                ready = dict(
                    self.session.execute(
                        select(RollupSet.signature, RollupSet.id).where(
                            RollupSet.pack_id == self.pack.id, RollupSet.state == READY
                        )
                    ).all()
                )
                if ready:
                    for kpi in self.pack.kpis.values():
                        if self.rollable(kpi):
                            set_id = ready.get(self.rollup_signature(kpi))
                            if set_id is not None:
                                self._sets[kpi.id] = set_id
        return self._sets

    def rollup_rows_query(self, kpi: KpiDef, *where: ColumnElement[bool]) -> Select[Any]:
        """(owner_id, day, n, cents, num) per owner and local day of the records that count
        for the KPI (and match `where`): what a roll-up set holds, computed from records."""
        agg = kpi.aggregate
        assert agg is not None
        day, is_instant, conditions, _measures, _finish = self._parts(kpi, None, by_ids=bool(where))
        local: ColumnElement[Any] = (
            LocalDay(day, literal(self.pack.pack.timezone)) if is_instant else day
        )
        fields = form_field_types(self.pack, agg.form)
        null_cents: ColumnElement[Any] = cast(null(), BigInteger)
        null_num: ColumnElement[Any] = cast(null(), Float)
        n: ColumnElement[Any]
        cents: ColumnElement[Any]
        num: ColumnElement[Any]
        target = (
            ("num", null_num)
            if agg.field is None
            else self._rollup_target(agg, fields, record_column_resolver(fields))
        )
        if agg.field is None:
            n, cents, num = func.count(), null_cents, null_num
        elif target[0] == "cents" and agg.op != "count":
            n, cents, num = func.count(target[1]), func.sum(target[1]), null_num
        elif agg.op != "count":
            n, cents, num = func.count(target[1]), null_cents, func.sum(target[1])
        else:
            n, cents, num = func.count(target[1]), null_cents, null_num
        query = (
            select(
                Record.owner_id,
                local.label("day"),
                n.label("n"),
                cents.label("cents"),
                num.label("num"),
            )
            .where(*conditions, local.is_not(None), *where)
            # by the label: the time zone is a bound parameter, and PostgreSQL would not see
            # a second copy of the expression in GROUP BY as the same one
            .group_by(Record.owner_id, literal_column("day"))
        )
        return query

    def _rollup_target(
        self, agg: AggregateDef, fields: Mapping[str, ValueType], resolve: Any
    ) -> tuple[str, Any]:
        """What a rollable KPI counts or sums: ("cents", integer cents) or ("num", a value)."""
        name = agg.field
        assert name is not None
        vt = fields.get(name, ValueType.ANY)
        cents = _cents_of(name, vt)
        if cents is not None:
            return "cents", cents
        if agg.op == "count":
            return "num", _plain(name, vt, resolve)
        return "num", Record.values[name].as_float()

    def _rollup_measures(self, agg: AggregateDef) -> tuple[list[ColumnElement[Any]], Any]:
        """The measures over roll-up rows, in the shape `_measures` finishes."""
        fields = form_field_types(self.pack, agg.form)
        _m, finish = self._measures(agg, fields, record_column_resolver(fields))
        money_ = (
            agg.field is not None
            and _cents_of(agg.field, fields.get(agg.field, ValueType.ANY)) is not None
        )
        # integer sums come back from PostgreSQL as NUMERIC: cast them to stay integers
        count = cast(func.sum(Rollup.n), BigInteger)
        total = cast(func.sum(Rollup.cents), BigInteger) if money_ else func.sum(Rollup.num)
        if agg.op == "count":
            return [count], finish
        if agg.op == "sum":
            return [total], finish
        return [total, count], finish  # avg

    def _measures(
        self, agg: AggregateDef, fields: Mapping[str, ValueType], resolve: Any
    ) -> tuple[list[ColumnElement[Any]], Any]:
        op, name = agg.op, agg.field
        if name is None:
            if op != "count":
                raise KpiError(f"'{op}' needs a field")
            return [func.count()], lambda r: int(r[0] or 0)
        vt = fields.get(name, ValueType.ANY)
        cents = _cents_of(name, vt)
        if op == "count":
            target = cents if cents is not None else _plain(name, vt, resolve)
            return [func.count(target)], lambda r: int(r[0] or 0)
        if op == "count_distinct":
            target = cents if cents is not None else _plain(name, vt, resolve)
            return [func.count(target.distinct())], lambda r: int(r[0] or 0)
        if cents is not None:
            if op == "sum":
                return [func.sum(cents)], lambda r: money(r[0]) or Decimal("0.00")
            if op == "avg":

                def average(r: Any) -> Value:
                    if not r[1]:
                        return None
                    return (Decimal(int(r[0])) / Decimal(int(r[1])) * CENT).quantize(
                        CENT, rounding=ROUND_HALF_UP
                    )

                return [func.sum(cents), func.count(cents)], average
            fn = func.min if op == "min" else func.max
            return [fn(cents)], lambda r: money(r[0])
        value = Record.values[name].as_float()
        if op == "sum":
            return [func.sum(value)], lambda r: _number(r[0]) or 0
        if op == "avg":
            return [
                func.sum(value),
                func.count(value),
            ], lambda r: _number(float(r[0]) / r[1]) if r[1] else None
        fn = func.min if op == "min" else func.max
        return [fn(value)], lambda r: _number(r[0])

    def _attribution(self, period: Period, instants: bool) -> Any:
        """A VALUES CTE (user_id, team_id, valid_from, valid_to): who counts for which team when.

        Built in Python from the memberships (few rows), with days turned into UTC instants
        at local midnight when the KPI's date is a date-time.
        """
        spans = self.org.intervals(period)
        if not spans:
            return None
        rows: list[tuple[int, int, Any, Any]] = []
        for (user_id, team_id), ranges in sorted(spans.items()):
            for start, stop in ranges:
                if instants:
                    rows.append((user_id, team_id, self._instant(start), self._instant(stop)))
                else:
                    rows.append((user_id, team_id, start, stop))
        kind: Any = DateTime(timezone=True) if instants else Date()
        table = values(
            column("user_id", Integer),
            column("team_id", Integer),
            column("valid_from", kind),
            column("valid_to", kind),
            name="qf_attribution",
        ).data(rows)
        return table.cte("qf_attribution")

    def _instant(self, day: date) -> datetime:
        if day >= OPEN_DAY:
            return OPEN_INSTANT
        return datetime.combine(day, time(), tzinfo=self.tz).astimezone(UTC)

    # --- scopes -------------------------------------------------------------------------------

    def _closure(self, kpi_ids: Iterable[str]) -> list[str]:
        """The KPIs and every KPI their formulas use."""
        out: list[str] = []
        todo = list(kpi_ids)
        while todo:
            kpi_id = todo.pop()
            if kpi_id in out:
                continue
            out.append(kpi_id)
            kpi = self.kpi(kpi_id)
            if kpi.formula is not None:
                expression = self.pack.expression("kpi", kpi_id, "formula")
                todo.extend(n for n in expression.names if n in self.pack.kpis)
        return out

    def rep_roles(self) -> set[str]:
        return {role for role, cap in self.pack.role_capabilities.items() if cap == "rep"}

    def _scope_keys(
        self, period: Period, by: By, results: Iterable[Mapping[Key, Value]]
    ) -> list[Key]:
        if by == "company":
            return [None]
        keys: set[int] = set()
        for values_ in results:
            keys.update(k for k in values_ if k is not None)
        if by == "rep":
            keys |= self.org.members_on(period, self.rep_roles())
        else:
            for _user, team in self.org.intervals(period):
                keys.add(team)
        out: list[Key] = [*sorted(keys)]
        return out

    # --- names for people ---------------------------------------------------------------------

    def scope_names(self, by: By, keys: Iterable[Key]) -> dict[Key, tuple[str, str]]:
        """key -> (id text, display name): username / team key, display name / team name."""
        keys = list(keys)
        if by == "company":
            roots = [t for t in self.org.teams.values() if t[2] is None]
            name = roots[0][1] if len(roots) == 1 else "Company"
            return {None: ("company", name)}
        if by == "team":
            teams = self.org.teams
            return {k: teams[k][:2] for k in keys if k is not None and k in teams}
        users = self.session.execute(
            select(User.id, User.username, User.display_name).where(
                User.id.in_([k for k in keys if k is not None])
            )
        )
        return {uid: (username, display) for uid, username, display in users}

    def team_depths(self) -> dict[int, int]:
        """team id -> depth in the tree (the company root is 0)."""
        return {tid: len(chain) - 1 for tid, chain in self.org.ancestors.items()}


def _add(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else a + b


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


# how partial measures of one op combine (avg keeps a sum and a count)
_COMBINE: dict[str, tuple[Any, ...]] = {
    "count": (_add,),
    "sum": (_add,),
    "avg": (_add, _add),
    "min": (_min,),
    "max": (_max,),
}


def _formula_input(value: Value) -> Value:
    """A zero amount passed as the integer 0.

    Works around the expression runtime raising on Decimal 0/0 (decimal's DivisionUndefined
    surfaces as InvalidOperation, which it does not map to blank); 0 and 0.00 are equal.
    """
    if isinstance(value, Decimal) and value == 0:
        return 0
    return value


def _cents_of(name: str, vt: ValueType) -> ColumnElement[Any] | None:
    """A money field as integer cents (the amount column, else the JSON value rounded per
    record); None for other fields."""
    if name == "amount" and vt == ValueType.MONEY:
        return Record.amount_cents  # type: ignore[return-value]
    if vt == ValueType.MONEY:
        return cast(func.round(Record.values[name].as_float() * 100), BigInteger)
    return None


def _plain(name: str, vt: ValueType, resolve: Any) -> ColumnElement[Any]:
    """A field's value for count / count_distinct: numbers as numbers, the rest as text."""
    if vt in NUMERIC:
        return Record.values[name].as_float()
    if vt in (ValueType.DATE, ValueType.DATETIME, ValueType.TEXT, ValueType.BOOL):
        column_: ColumnElement[Any] = resolve(name)
        return column_
    return Record.values[name].as_string()


def _empty_value(agg: AggregateDef, fields: Mapping[str, ValueType]) -> Value:
    """The value of a scope with no records: 0 for counts and sums, blank otherwise."""
    if agg.op in ("count", "count_distinct"):
        return 0
    if agg.op == "sum":
        return Decimal("0.00") if fields.get(agg.field or "") == ValueType.MONEY else 0
    return None
