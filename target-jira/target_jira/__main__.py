"""Jira target entry point: python -m target_jira."""

from __future__ import annotations

from target_jira.target import TargetJira

TargetJira.cli()
