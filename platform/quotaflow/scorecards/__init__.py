"""Scorecards: scoring items against targets, groups, final score, grades and bonus."""
