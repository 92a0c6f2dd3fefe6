"""Evaluations per second of the expression engine and its peers, in one run.

    .venv/bin/python bench/expressions.py [--seconds 0.5]

For two formulas (a 6-name scoring rule and a ~20-node computed field) it times:
simpleeval.simple_eval per call (parses every time), SimpleEval with a reused parse
(previously_parsed), GoRules' zen-engine compiled expression (Rust), Quotaflow's compiled
Expression.evaluate, and a hand-written Python function (the floor). Each engine's result
is checked against the hand-written one before timing.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import simpleeval
import zen

from quotaflow.expressions import ValueType, compile_expression

SCORING = {
    "title": "scoring rule (6 names)",
    "ours": "MIN(actual / target, 1.2) * 60 + visits / visit_target * 30 + training * 0.1",
    "simpleeval": "min(actual / target, 1.2) * 60 + visits / visit_target * 30 + training * 0.1",
    "zen": "min([actual / target, 1.2]) * 60 + visits / visit_target * 30 + training * 0.1",
    "values": {
        "actual": 84_000.0,
        "target": 100_000.0,
        "visits": 41,
        "visit_target": 50,
        "training": 12,
        "unused": 1,
    },
    "types": dict.fromkeys(
        ["actual", "target", "visits", "visit_target", "training", "unused"], ValueType.NUMBER
    ),
}


def scoring_by_hand(v: dict[str, Any]) -> Any:
    return (
        min(v["actual"] / v["target"], 1.2) * 60
        + v["visits"] / v["visit_target"] * 30
        + (v["training"] * 0.1)
    )


COMPUTED = {
    "title": "computed field (~20 nodes)",
    "ours": "IF(stage == 'won', amount * (1 - discount) * rate, 0)"
    " + MAX(bonus - penalty, 0) / 2 + qty * 0.5",
    "simpleeval": "(amount * (1 - discount) * rate if stage == 'won' else 0)"
    " + max(bonus - penalty, 0) / 2 + qty * 0.5",
    "zen": "(stage == 'won' ? amount * (1 - discount) * rate : 0)"
    " + max([bonus - penalty, 0]) / 2 + qty * 0.5",
    "values": {
        "stage": "won",
        "amount": 12_500.0,
        "discount": 0.1,
        "rate": 0.05,
        "bonus": 300.0,
        "penalty": 120.0,
        "qty": 7,
    },
    "types": {
        "stage": ValueType.TEXT,
        "amount": ValueType.NUMBER,
        "discount": ValueType.PERCENT,
        "rate": ValueType.PERCENT,
        "bonus": ValueType.NUMBER,
        "penalty": ValueType.NUMBER,
        "qty": ValueType.NUMBER,
    },
}


def computed_by_hand(v: dict[str, Any]) -> Any:
    base = v["amount"] * (1 - v["discount"]) * v["rate"] if v["stage"] == "won" else 0
    return base + max(v["bonus"] - v["penalty"], 0) / 2 + v["qty"] * 0.5


def rate(fn: Callable[[], Any], seconds: float) -> float:
    """Evaluations per second: best of 5 runs of a batch sized to take `seconds` / 5."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        n *= 4
    batch = max(1, int(n * (seconds / 5) / elapsed))
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, (time.perf_counter() - start) / batch)
    return 1 / best


def candidates(case: dict[str, Any], by_hand: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    values = case["values"]
    functions = {"min": min, "max": max}
    evaluator = simpleeval.SimpleEval(functions=functions, names=values)
    parsed = evaluator.parse(case["simpleeval"])
    zen_expr = zen.compile_expression(case["zen"])
    ours = compile_expression(case["ours"], case["types"])
    return {
        "simpleeval.simple_eval (parse per call)": lambda: simpleeval.simple_eval(
            case["simpleeval"], functions=functions, names=values
        ),
        "SimpleEval, previously_parsed": lambda: evaluator.eval(
            case["simpleeval"], previously_parsed=parsed
        ),
        "zen-engine compiled expression": lambda: zen_expr.evaluate(values),
        "quotaflow Expression.evaluate": lambda: ours.evaluate(values),
        "hand-written Python function": lambda: by_hand(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"simpleeval {version('simpleeval')}, zen-engine {version('zen-engine')}"
    )
    for case, by_hand in ((SCORING, scoring_by_hand), (COMPUTED, computed_by_hand)):
        expected = by_hand(case["values"])
        engines = candidates(case, by_hand)
        print(f"\n{case['title']}: {case['ours']}")
        print(f"  {'engine':<42}{'evals/s':>12}{'µs/eval':>10}{'× hand':>9}")
        results = {}
        for name, fn in engines.items():
            got = fn()
            assert math.isclose(float(got), expected, rel_tol=1e-9), (name, got, expected)
            results[name] = rate(fn, args.seconds)
        floor = results["hand-written Python function"]
        for name, per_second in results.items():
            print(
                f"  {name:<42}{per_second:>12,.0f}{1e6 / per_second:>10.2f}"
                f"{floor / per_second:>9.1f}"
            )
        ours, zen_rate = (
            results["quotaflow Expression.evaluate"],
            results["zen-engine compiled expression"],
        )
        print(
            f"  compiled vs zen-engine: {ours / zen_rate:.1f}x faster; "
            f"vs hand-written: {floor / ours:.1f}x slower (goal: < 3x)"
        )


if __name__ == "__main__":
    main()
