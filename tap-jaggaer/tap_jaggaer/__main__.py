"""JAGGAER tap entry point: python -m tap_jaggaer."""

from __future__ import annotations

from tap_jaggaer.tap import TapJaggaer

TapJaggaer.cli()
