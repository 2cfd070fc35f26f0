import sys
from pathlib import Path

# The shared test helpers live in tests/support.
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from support.ifs import IfsStandIn  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_data_dir(tmp_path_factory):
    """Generated data is cached per seed and scale; one cache for the whole session."""
    return tmp_path_factory.mktemp("sandbox-data")


@pytest.fixture
def start_ifs(sandbox_data_dir):
    """Start an IFS stand-in of one's own (a fresh server: tests may change its data and settings freely)."""
    started = []

    def start(**options) -> IfsStandIn:
        stand_in = IfsStandIn(sandbox_data_dir, **options)
        started.append(stand_in)
        return stand_in

    yield start
    for stand_in in started:
        stand_in.stop()


@pytest.fixture
def ifs(start_ifs) -> IfsStandIn:
    return start_ifs()
