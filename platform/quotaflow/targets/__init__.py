"""Targets: target plans decomposed down the org and phased over time, exact to the cent.

Modules: decompose (pure arithmetic: largest-remainder splits, methods, tiers, phasing),
services (a plan applied to the org with history from the KPI engine), cli
(`quotaflow target show`). Domain code: nothing here imports Flask.
"""
