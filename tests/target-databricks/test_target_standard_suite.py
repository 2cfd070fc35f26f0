"""singer-sdk's standard target tests against target-databricks on the Delta path."""

from __future__ import annotations

import tempfile
from pathlib import Path

from singer_sdk.testing import get_target_test_class

from target_databricks.target import TargetDatabricks

_workdir = Path(tempfile.mkdtemp(prefix="mlc-target-standard-"))

TestTargetDatabricks = get_target_test_class(
    TargetDatabricks,
    config={"delta_root": str(_workdir / "delta"), "audit_url": f"sqlite:///{_workdir / 'audit.sqlite'}"},
)
