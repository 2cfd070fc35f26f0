"""JAGGAER target entry point: python -m target_jaggaer."""

from __future__ import annotations

from target_jaggaer.target import TargetJaggaer

TargetJaggaer.cli()
