"""The compiled pack: typed definitions, compiled expressions, orders; what the runtime uses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quotaflow.expressions import Expression, ValueType
from quotaflow.packs.definitions import (
    KINDS,
    AlertDef,
    DashboardDef,
    FormDef,
    KpiDef,
    LeaderboardDef,
    PackDef,
    PackTestDef,
    PipelineDef,
    ScorecardDef,
    TargetPlanDef,
)
from quotaflow.packs.problems import Path_, path_text

KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}
# what a field's value is in expressions
FIELD_VALUE_TYPES: dict[str, ValueType] = {
    "text": ValueType.TEXT,
    "textarea": ValueType.TEXT,
    "email": ValueType.TEXT,
    "phone": ValueType.TEXT,
    "choice": ValueType.TEXT,
    "user": ValueType.TEXT,
    "reference": ValueType.NUMBER,
    "number": ValueType.NUMBER,
    "rating": ValueType.NUMBER,
    "computed": ValueType.NUMBER,
    "money": ValueType.MONEY,
    "percent": ValueType.PERCENT,
    "date": ValueType.DATE,
    "datetime": ValueType.DATETIME,
    "bool": ValueType.BOOL,
    "multichoice": ValueType.LIST,
}


def expression_key(kind: str, def_id: str, path: Path_) -> str:
    """How a compiled expression is filed: 'form/deal/fields/3/visible_if'."""
    return f"{kind}/{def_id}/{path_text(path)}"


def canonical_documents(documents: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Documents in a stable order without load-time keys ($schema, extends)."""
    out = []
    for doc in documents:
        clean = {k: v for k, v in doc.items() if k != "$schema"}
        if clean.get("kind") == "pack":
            clean.pop("extends", None)  # the base is already overlaid
        out.append(clean)
    return sorted(out, key=lambda d: (KIND_ORDER.get(d["kind"], 99), d["id"]))


def content_hash(documents: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON: equal content, equal hash, whatever the file layout."""
    text = json.dumps(documents, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CompiledPack:
    """A validated pack: every reference resolved and every expression compiled once."""

    pack: PackDef
    definitions: Mapping[str, Mapping[str, Any]]  # kind -> id -> definition
    documents: tuple[dict[str, Any], ...]
    expressions: Mapping[str, Expression]
    computed_order: Mapping[str, tuple[str, ...]]  # form -> computed fields, dependencies first
    kpi_order: tuple[str, ...]  # formula KPIs, dependencies first
    content_hash: str

    @property
    def id(self) -> str:
        return self.pack.id

    @property
    def version(self) -> str:
        return self.pack.version

    def _of(self, kind: str) -> Mapping[str, Any]:
        return self.definitions.get(kind, {})

    @property
    def forms(self) -> Mapping[str, FormDef]:
        return self._of("form")

    @property
    def pipelines(self) -> Mapping[str, PipelineDef]:
        return self._of("pipeline")

    @property
    def kpis(self) -> Mapping[str, KpiDef]:
        return self._of("kpi")

    @property
    def target_plans(self) -> Mapping[str, TargetPlanDef]:
        return self._of("target_plan")

    @property
    def scorecards(self) -> Mapping[str, ScorecardDef]:
        return self._of("scorecard")

    @property
    def alerts(self) -> Mapping[str, AlertDef]:
        return self._of("alert")

    @property
    def dashboards(self) -> Mapping[str, DashboardDef]:
        return self._of("dashboard")

    @property
    def leaderboards(self) -> Mapping[str, LeaderboardDef]:
        return self._of("leaderboard")

    @property
    def pack_tests(self) -> Mapping[str, PackTestDef]:
        return self._of("pack_test")

    @property
    def role_capabilities(self) -> Mapping[str, str]:
        """Role name -> capability: the defaults plus the pack's own team roles."""
        from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES

        own = {r.id: r.capability for r in self.pack.roles if r.capability != "admin"}
        return {**DEFAULT_ROLE_CAPABILITIES, **own}

    def field_types(self, form_id: str) -> dict[str, ValueType]:
        """A form's fields and what their values are in expressions."""
        return {f.id: FIELD_VALUE_TYPES[f.type] for f in self.forms[form_id].fields}

    def expression(self, kind: str, def_id: str, *path: str | int) -> Expression:
        """The compiled expression at this place of a definition."""
        return self.expressions[expression_key(kind, def_id, path)]

    def canonical(self) -> dict[str, Any]:
        """What is stored as a published version's content."""
        return {"documents": list(self.documents)}

    def counts(self) -> dict[str, int]:
        """How many definitions of each kind (the pack document excluded)."""
        return {kind: len(defs) for kind, defs in self.definitions.items() if kind != "pack"}

    def summary(self) -> str:
        """'b2b_manufacturer 1.0.0: 2 forms, 1 pipeline, ...'."""
        parts = [
            f"{n} {kind.replace('_', ' ')}{'s' if n != 1 else ''}"
            for kind, n in self.counts().items()
            if n
        ]
        return f"{self.id} {self.version}: " + ", ".join(parts)
