"""IFS Cloud tap entry point: python -m tap_ifscloud."""

from __future__ import annotations

from tap_ifscloud.tap import TapIfsCloud

TapIfsCloud.cli()
