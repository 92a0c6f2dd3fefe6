"""Org: users, teams in a hierarchy, dated memberships, roles."""
