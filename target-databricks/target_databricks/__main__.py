"""Databricks target entry point: python -m target_databricks."""

from __future__ import annotations

from target_databricks.target import TargetDatabricks

TargetDatabricks.cli()
