"""Jira tap entry point: python -m tap_jiracloud."""

from __future__ import annotations

from tap_jiracloud.tap import TapJiraCloud

TapJiraCloud.cli()
