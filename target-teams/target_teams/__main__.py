"""Teams target entry point: python -m target_teams."""

from __future__ import annotations

from target_teams.target import TargetTeams

TargetTeams.cli()
