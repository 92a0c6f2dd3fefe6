"""Small packs written as inline YAML into a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

PACK = """\
kind: pack
id: acme
name: {en: ACME, zh: 艾克米}
version: 1.0.0
"""
DEAL = """\
kind: form
id: deal
label: Deal
fields:
  - {id: customer, type: text, required: true}
  - {id: amount, type: money}
  - {id: discount, type: percent}
  - {id: note, type: textarea, visible_if: "discount > 0.15"}
"""
PIPELINE = """\
kind: pipeline
id: sales
form: deal
stages:
  - {id: lead}
  - {id: quotation, require: [amount]}
  - {id: won, outcome: won}
  - {id: lost, outcome: lost}
"""
KPI = """\
kind: kpi
id: won_revenue
unit: money
aggregate: {form: deal, op: sum, field: amount, where: "stage == 'won'", date: closed_at}
"""


def minimal_files(changes: dict[str, str | None] | None = None) -> dict[str, str]:
    """A valid small pack; `changes` maps a file name to new text, or to None to drop it."""
    files: dict[str, str | None] = {
        "pack.yaml": PACK,
        "forms/deal.yaml": DEAL,
        "pipelines/sales.yaml": PIPELINE,
        "kpis/won_revenue.yaml": KPI,
    }
    files.update(changes or {})
    return {k: v for k, v in files.items() if v is not None}


def write_pack(folder: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative name -> YAML text) under `folder`; returns the folder."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return folder
