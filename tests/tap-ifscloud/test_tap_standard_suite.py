"""singer-sdk's standard tap tests, run against a live IFS stand-in."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from support.ifs import IfsStandIn
from tap_ifscloud.tap import TapIfsCloud

# The SDK builds its test class from a config at import time, so the stand-in starts with the module.
_stand_in = IfsStandIn(Path(tempfile.mkdtemp(prefix="mlc-standard-")), scale=60, seed=11)
atexit.register(_stand_in.stop)

TestTapIfsCloud = get_tap_test_class(
    TapIfsCloud,
    config=_stand_in.tap_config(start_date="2000-01-01T00:00:00Z"),
    suite_config=SuiteConfig(max_records_limit=100),
)
