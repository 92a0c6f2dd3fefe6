"""Leaderboards: reps or teams ranked by a KPI or a scorecard for a period, with awards."""
