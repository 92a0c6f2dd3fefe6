"""Target decomposition and phasing: pure arithmetic, exact to the cent.

Every split uses largest-remainder rounding on integer cents: each part first gets the
cents its exact (rational) share rounds down to, then the cents left over go one each to
the parts with the largest dropped fractions (ties: the earlier part). So the parts ALWAYS
sum to the whole, every part is within a cent of its exact share, and no part is negative
when the whole is not.

Methods, per level of the org tree (`SplitDef.method`):
- equal: the same share each;
- history: shares of a prior period's actual (blank and negative count as 0); when the
  whole level had nothing, equal;
- potential: shares of a figure per team or rep (missing: 0); all zero: equal;
- formula: a weight expression over last_year_share, potential_share, equal_share and
  headcount (shares are of the siblings; a level with no history or no potentials at all
  uses the equal share in their place); a blank weight counts as 0; all zero: equal;
- manual: fixed amounts for some nodes; the rest is shared among the others by the level's
  base method (formula when `weight` is given, else potential when `potential` is, else
  history when `basis_kpi`/`basis_period` is, else equal).

Phasing spreads each leaf's amount over sub-periods (explicit weights, `even` — a partial
week weighs its days / 7 — or last year's shape); a team's phases are the sums of its
members', so every row and every column adds up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Literal

from quotaflow.errors import QuotaflowError
from quotaflow.expressions import Expression, ExpressionError
from quotaflow.kpis.periods import Period
from quotaflow.messages import N_, translate

CENT = Decimal("0.01")
Number = Decimal | int | float | Fraction
NodeKind = Literal["company", "region", "team", "rep"]
Method = Literal["equal", "history", "potential", "formula", "manual"]


class TargetError(QuotaflowError):
    """A target that cannot be split as its plan says (the message says why)."""


# --- rounding -----------------------------------------------------------------------------------


def to_cents(amount: Number) -> int:
    """An amount as integer cents, rounded half up."""
    value = Decimal(str(amount)) if isinstance(amount, float) else amount
    if isinstance(value, Fraction):
        value = Decimal(value.numerator) / Decimal(value.denominator)
    return int((Decimal(value) / CENT).to_integral_value(rounding=ROUND_HALF_UP))


def from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _fraction(weight: Number | None) -> Fraction:
    if weight is None:
        return Fraction(0)
    if isinstance(weight, float):
        if weight != weight or weight in (float("inf"), float("-inf")):
            raise TargetError(f"a weight must be a finite number, not {weight}")
        return Fraction(Decimal(repr(weight)))
    return Fraction(weight)


def allocate_cents(total: int, weights: Sequence[Number | None], unit: int = 1) -> list[int]:
    """`total` cents split in proportion to `weights`, largest remainder; sums to `total`.

    Weights must be zero or more; all zero (or blank) splits equally. With a `unit` (in
    cents: 100_000 for round thousands) the parts are whole units, split the same way, and
    what is left below one unit goes to the part with the largest exact share (the earlier
    of equals): every part but that one is a round figure, and they still sum to `total`.
    """
    if total < 0:
        return [-part for part in allocate_cents(-total, weights, unit)]
    if unit > 1 and weights:
        units = allocate_cents(total // unit, weights)
        parts = [u * unit for u in units]
        odd = total - sum(parts)
        if odd:
            exact = [_fraction(w) for w in weights]
            biggest = max(range(len(parts)), key=lambda i: (exact[i], -i))
            parts[biggest] += odd
        return parts
    if not weights:
        if total:
            raise TargetError(f"{from_cents(total)} cannot be split among no one")
        return []
    exact = [_fraction(w) for w in weights]
    if any(w < 0 for w in exact):
        raise TargetError("weights must be zero or more")
    whole = sum(exact, Fraction(0))
    if whole == 0:
        exact, whole = [Fraction(1)] * len(exact), Fraction(len(exact))
    quotas = [total * w / whole for w in exact]
    parts = [q.numerator // q.denominator for q in quotas]
    left = total - sum(parts)
    order = sorted(range(len(parts)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    return parts


def allocate(total: Number, weights: Sequence[Number | None], unit: int = 1) -> list[Decimal]:
    """An amount split to the cent (or in whole `unit`s of cents, see allocate_cents) in
    proportion to `weights`; the parts sum to it exactly."""
    return [from_cents(c) for c in allocate_cents(to_cents(total), weights, unit)]


# --- the org tree -------------------------------------------------------------------------------


@dataclass
class OrgNode:
    """A node the target goes to: the company, a region, a team or a rep."""

    key: str  # 'company', a team key or a username
    kind: NodeKind
    name: str
    id: int | None = None  # team id or user id
    children: list[OrgNode] = field(default_factory=list)

    def headcount(self) -> int:
        """Reps under this node (a rep counts once per place they appear)."""
        if self.kind == "rep":
            return 1
        return sum(child.headcount() for child in self.children)

    def walk(self) -> list[OrgNode]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass(frozen=True)
class LevelRule:
    """How one level of the tree shares its parent's amount (a SplitDef, resolved)."""

    method: Method
    history: Mapping[str, Number | None] = field(default_factory=dict)  # node key -> actual
    potential: Mapping[str, Number] = field(default_factory=dict)
    manual: Mapping[str, Number] = field(default_factory=dict)
    weight: Expression | None = None
    base: Method = "equal"  # for manual: how the rest is shared

    @property
    def label(self) -> str:
        return f"manual + {self.base}" if self.method == "manual" else self.method


@dataclass
class Allocation:
    """The amount a node gets, how, its children's allocations and its phases."""

    node: OrgNode
    amount: Decimal
    method: str = ""
    manual: bool = False
    children: list[Allocation] = field(default_factory=list)
    phases: list[Decimal] = field(default_factory=list)

    def walk(self) -> list[Allocation]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def find(self, key: str) -> Allocation | None:
        return next((a for a in self.walk() if a.node.key == key), None)

    def leaves(self) -> list[Allocation]:
        return [a for a in self.walk() if not a.children]


def _positive(value: Number | None) -> Fraction:
    number = _fraction(value)
    return number if number > 0 else Fraction(0)


def _shares(values: Sequence[Fraction]) -> list[Fraction]:
    whole = sum(values, Fraction(0))
    if whole == 0:
        return [Fraction(1, len(values))] * len(values)
    return [v / whole for v in values]


def level_weights(nodes: Sequence[OrgNode], rule: LevelRule, method: Method) -> list[Fraction]:
    """The weights of sibling nodes under one method (before rounding)."""
    if method == "equal" or not nodes:
        return [Fraction(1)] * len(nodes)
    if method == "history":
        return [_positive(rule.history.get(n.key)) for n in nodes]
    if method == "potential":
        return [_positive(rule.potential.get(n.key)) for n in nodes]
    if method == "formula":
        if rule.weight is None:
            raise TargetError("method formula needs a weight expression")
        last_year = _shares([_positive(rule.history.get(n.key)) for n in nodes])
        potential = _shares([_positive(rule.potential.get(n.key)) for n in nodes])
        out = []
        for node, ly, pot in zip(nodes, last_year, potential, strict=True):
            names = {
                "last_year_share": Decimal(ly.numerator) / Decimal(ly.denominator),
                "potential_share": Decimal(pot.numerator) / Decimal(pot.denominator),
                "equal_share": Decimal(1) / Decimal(len(nodes)),
                "headcount": node.headcount(),
            }
            try:
                value = rule.weight.evaluate(names)
            except ExpressionError as exc:
                raise TargetError(
                    f"the weight of '{node.key}' could not be calculated: {exc}"
                ) from None
            weight = _fraction(value)
            if weight < 0:
                raise TargetError(
                    f"the weight of '{node.key}' is negative ({value}): "
                    "weights must be zero or more"
                )
            out.append(weight)
        return out
    raise TargetError(f"'{method}' is not a base method")


def split_amount(
    total: Decimal, nodes: Sequence[OrgNode], rule: LevelRule, unit: int = 1
) -> list[Decimal]:
    """The parent's amount shared among `nodes` by the rule (in whole `unit`s of cents but
    for the odd remainder); sums exactly to `total`."""
    cents = to_cents(total)
    if rule.method != "manual":
        weights = level_weights(nodes, rule, rule.method)
        return [from_cents(c) for c in allocate_cents(cents, weights, unit)]
    keys = {n.key for n in nodes}
    unknown = sorted(set(rule.manual) - keys)
    if unknown:
        raise TargetError(
            f"manual amounts for {', '.join(repr(k) for k in unknown)}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not among {', '.join(sorted(keys))}"
        )
    fixed = {k: to_cents(v) for k, v in rule.manual.items()}
    if any(v < 0 for v in fixed.values()):
        raise TargetError("manual amounts must be zero or more")
    rest = cents - sum(fixed.values())
    if rest < 0:
        raise TargetError(
            f"manual amounts add up to {from_cents(sum(fixed.values()))}, "
            f"more than the {from_cents(cents)} to share"
        )
    others = [n for n in nodes if n.key not in fixed]
    if not others and rest:
        raise TargetError(
            f"every part is manual and they add up to {from_cents(sum(fixed.values()))}, "
            f"not the {from_cents(cents)} to share"
        )
    shared = dict(
        zip(
            (n.key for n in others),
            allocate_cents(rest, level_weights(others, rule, rule.base), unit),
            strict=True,
        )
    )
    return [from_cents(fixed[n.key] if n.key in fixed else shared[n.key]) for n in nodes]


def decompose(
    total: Number, root: OrgNode, rules: Sequence[LevelRule], unit: int = 1
) -> Allocation:
    """The total split down the tree: level i of `rules` shares among depth i + 1 (in whole
    `unit`s of cents, see allocate_cents)."""
    amount = from_cents(to_cents(total))

    def down(node: OrgNode, value: Decimal, depth: int) -> Allocation:
        here = Allocation(node, value)
        if depth >= len(rules) or not node.children:
            return here
        rule = rules[depth]
        parts = split_amount(value, node.children, rule, unit)
        for child, part in zip(node.children, parts, strict=True):
            sub = down(child, part, depth + 1)
            sub.method = rule.label
            sub.manual = rule.method == "manual" and child.key in rule.manual
            here.children.append(sub)
        return here

    top = down(root, amount, 0)
    top.method = "total"
    return top


def scale(allocation: Allocation, total: Number, unit: int = 1) -> Allocation:
    """The same tree for another total (a tier): each level split in proportion to the
    amounts (in whole `unit`s of cents, see allocate_cents)."""
    amount = from_cents(to_cents(total))

    def down(node: Allocation, value: Decimal) -> Allocation:
        out = Allocation(node.node, value, node.method, node.manual)
        if node.children:
            parts = allocate(value, [c.amount for c in node.children], unit)
            out.children = [down(c, p) for c, p in zip(node.children, parts, strict=True)]
        return out

    return down(allocation, amount)


def copied(allocation: Allocation) -> Allocation:
    """The same tree, node for node (phases too), sharing nothing that is changed later."""
    out = Allocation(allocation.node, allocation.amount, allocation.method, allocation.manual)
    out.phases = list(allocation.phases)
    out.children = [copied(c) for c in allocation.children]
    return out


def tier_totals(total: Number, tiers: Mapping[str, float]) -> dict[str, Decimal]:
    """Tier name -> the total times its share, to the cent (base 0.9, ideal 1.0, stretch 1.2)."""
    return {
        name: from_cents(to_cents(Decimal(str(total)) * Decimal(str(share))))
        for name, share in tiers.items()
    }


# --- phasing ------------------------------------------------------------------------------------


def even_weights(parts: Sequence[Period]) -> list[Fraction]:
    """1 per sub-period; a week cut by the period's edge weighs its days / 7."""
    return [Fraction(p.days, 7) if p.kind == "week" else Fraction(1) for p in parts]


def phase_weights(
    parts: Sequence[Period],
    weights: Sequence[Number] | Literal["even", "history"],
    history: Sequence[Number | None] | None = None,
) -> list[Fraction]:
    """The weights of the sub-periods: given, even, or last year's shape (`history`)."""
    if weights == "even":
        return even_weights(parts)
    if weights == "history":
        if history is None or len(history) != len(parts):
            raise TargetError("phasing by history needs last year's figure for every sub-period")
        shape = [_positive(h) for h in history]
        return shape if sum(shape) > 0 else even_weights(parts)
    given = [_fraction(w) for w in weights]
    if len(given) != len(parts):
        raise TargetError(
            f"{len(parts)} sub-periods ({parts[0].label} to {parts[-1].label}) "
            f"but {len(given)} phasing weights"
        )
    if any(w < 0 for w in given):
        raise TargetError("phasing weights must be zero or more")
    return given


def phase(allocation: Allocation, weights: Sequence[Number], unit: int = 1) -> Allocation:
    """Spread every leaf over the sub-periods (in whole `unit`s of cents, see
    allocate_cents); parents' phases are their children's sums."""

    def visit(node: Allocation) -> list[Decimal]:
        if node.children:
            sums = [Decimal("0.00")] * len(weights)
            for child in node.children:
                sums = [a + b for a, b in zip(sums, visit(child), strict=True)]
            node.phases = sums
        else:
            node.phases = allocate(node.amount, weights, unit)
        return node.phases

    visit(allocation)
    return allocation


def describe(allocation: Allocation) -> list[dict[str, Any]]:
    """Rows (depth, key, name, kind, amount, method, phases) for tables and exports."""
    rows: list[dict[str, Any]] = []

    def visit(node: Allocation, depth: int) -> None:
        rows.append(
            {
                "depth": depth,
                "key": node.node.key,
                "name": node.node.name,
                "kind": node.node.kind,
                "amount": node.amount,
                "method": node.method,
                "manual": node.manual,
                "phases": list(node.phases),
            }
        )
        for child in node.children:
            visit(child, depth + 1)

    visit(allocation, 0)
    return rows


def adjust(
    allocation: Allocation, key: str, amount: Number, locale: str = "en", unit: int = 1
) -> Allocation:
    """A new tree where node `key` gets `amount` and its siblings share the rest of their
    parent's amount in proportion to what they had (to the cent, summing exactly); every
    changed node's own children are rescaled the same way. The parent's amount never moves.
    Siblings adjusted before keep what they were given while others can take the change (a
    second adjustment does not quietly undo the first); only when every sibling was adjusted
    do they all share it. Siblings share in whole `unit`s of cents (allocate_cents); the
    amount given is kept as typed. A refusal is a TargetError in `locale`."""
    value = from_cents(to_cents(amount))

    def refused(message: str, **params: Any) -> TargetError:
        return TargetError(translate(locale, message, **params))

    def visit(node: Allocation) -> Allocation:
        index = next((i for i, c in enumerate(node.children) if c.node.key == key), None)
        if index is None:
            out = Allocation(node.node, node.amount, node.method, node.manual)
            out.children = [visit(c) for c in node.children]
            return out
        part, whole = node.children[index].node.name, node.node.name
        others = [c for i, c in enumerate(node.children) if i != index]
        free = [c for c in others if not c.manual]
        sharing = free or others
        shares_it = {id(c) for c in sharing}
        held = sum((c.amount for c in others if id(c) not in shares_it), Decimal(0))
        room = node.amount - held
        if value < 0 or value > room:
            if held:
                raise refused(
                    N_("{part} can get between 0 and {most}, not {value}: of what {whole} has, "
                       "{held} is held by parts adjusted before; adjust them to free more"),
                    part=part, most=room, whole=whole, value=value, held=held,
                )  # fmt: skip
            raise refused(
                N_("{part} can get between 0 and {most} (what {whole} has), not {value}"),
                part=part, most=node.amount, whole=whole, value=value,
            )  # fmt: skip
        if not others and value != node.amount:
            raise refused(
                N_("{part} is the only part of {whole}: its target is {amount}"),
                part=part, whole=whole, amount=node.amount,
            )  # fmt: skip
        shares = allocate(room - value, [c.amount for c in sharing], unit) if sharing else []
        out = Allocation(node.node, node.amount, node.method, node.manual)
        rest = iter(shares)
        for i, child in enumerate(node.children):
            if i == index:
                new = value
            elif id(child) in shares_it:
                new = next(rest)
            else:
                new = child.amount
            # a part whose amount stays is kept as it is: scaling it to the same amount would
            # round its parts again (with a unit, not the same as before)
            moved = scale(child, new, unit) if new != child.amount else copied(child)
            moved.manual = child.manual or i == index
            out.children.append(moved)
        return out

    if allocation.find(key) is None:
        raise refused(N_("There is no '{key}' in this target split."), key=key)
    if allocation.node.key == key:
        raise refused(N_("The plan's total is set in the pack: adjust its parts instead."))
    return visit(allocation)
