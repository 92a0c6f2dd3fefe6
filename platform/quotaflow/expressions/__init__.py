"""The one expression language of Quotaflow (formulas, conditions, filters, scoring rules).

PUBLIC API (packs, forms, kpis, scorecards... import only these names):
    ValueType, ExpressionError, CycleError, Expression, compile_expression, order_by_dependencies
and, for documentation and plugins: FunctionSpec, FUNCTIONS, function_docs, TODAY (the
contextvar fixing TODAY()), record_column_resolver (quotaflow.expressions.sql).

Modules: errors, types, runtime (operator semantics), functions (the registry), checker
(sandbox and checks), compiler (the fast path), reference (simpleeval, for tests),
sql (KPI filters), cli (`quotaflow expr ...`). The language is described in
the README (section Expressions).
"""

from quotaflow.expressions.engine import Expression, compile_expression, order_by_dependencies
from quotaflow.expressions.errors import CycleError, ExpressionError
from quotaflow.expressions.functions import FUNCTIONS, FunctionSpec, function_docs
from quotaflow.expressions.runtime import TODAY
from quotaflow.expressions.types import ValueType, compatible

__all__ = [
    "FUNCTIONS",
    "TODAY",
    "CycleError",
    "Expression",
    "ExpressionError",
    "FunctionSpec",
    "ValueType",
    "compatible",
    "compile_expression",
    "function_docs",
    "order_by_dependencies",
]
