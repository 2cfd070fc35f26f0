import sys
from pathlib import Path

# The shared test helpers live in tests/support.
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from support.ifs import IfsStandIn  # noqa: E402
from support.tls import SandboxTls, make_tls  # noqa: E402


@pytest.fixture(scope="session")
def sandbox_data_dir(tmp_path_factory, request):
    """Generated data is cached per seed and scale; one cache for the whole session, shared by the xdist workers
    (the stand-in builds each data set once, under a file lock)."""
    if not hasattr(request.config, "workerinput"):  # not an xdist worker
        return tmp_path_factory.mktemp("sandbox-data")
    shared = tmp_path_factory.getbasetemp().parent / "sandbox-data"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def sandbox_tls(tmp_path_factory) -> SandboxTls:
    """A local CA and a certificate for 127.0.0.1/localhost it signed: stand-ins serve HTTPS with
    `**sandbox_tls.server_options`, clients trust `sandbox_tls.ca_file` (see support/tls.py)."""
    return make_tls(tmp_path_factory.mktemp("sandbox-tls"))


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
