"""IFS Cloud target entry point: python -m target_ifscloud."""

from __future__ import annotations

from target_ifscloud.target import TargetIfsCloud

TargetIfsCloud.cli()
