"""Pipelines: the stage machine, approvals, stage history, stale deals and the funnel."""
