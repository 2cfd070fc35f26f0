"""Salesforce tap entry point: python -m tap_sfdc."""

from __future__ import annotations

from tap_sfdc.tap import TapSfdc

TapSfdc.cli()
