"""KPIs: periods, the aggregate engine (SQL GROUP BY) with formulas on top, attainment and pace.

Modules: periods (parsing and splitting periods in the pack's time zone), engine (figures
per rep, team or company), pace (attainment, expected-to-date, projection, gap), cli
(`quotaflow kpi show`). Domain code: nothing here imports Flask.
"""
