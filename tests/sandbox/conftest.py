"""Fixtures for the IFS stand-in's own tests: real HTTP over loopback against in-process servers."""

from __future__ import annotations

import pytest

from ifs_standin_client import SCALE, SEED, Client
from mlc_sandbox.ifs import IfsSandbox
from mlc_sandbox.teams import TeamsSandbox


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ifs-sandbox-data")


@pytest.fixture(scope="session")
def sandbox(data_dir):
    """A shared stand-in for tests that only read (no rate limit in the way)."""
    with IfsSandbox(scale=SCALE, seed=SEED, port=0, data_dir=data_dir, rate_limit=0) as ifs:
        yield ifs


@pytest.fixture
def fresh(data_dir):
    """A stand-in of one's own, for tests that change data, settings or faults."""
    started = []

    def start(**options) -> IfsSandbox:
        options.setdefault("rate_limit", 0)
        ifs = IfsSandbox(scale=SCALE, seed=SEED, port=0, data_dir=data_dir, **options).start()
        started.append(ifs)
        return ifs

    yield start
    for ifs in started:
        ifs.stop()


@pytest.fixture(scope="session")
def client(sandbox) -> Client:
    return Client(sandbox)


@pytest.fixture
def start_databricks():
    """Start Databricks stand-ins of one's own (each with a fresh warehouse in a temporary directory)."""
    from mlc_sandbox.databricks import DatabricksSandbox

    started = []

    def start(**options) -> DatabricksSandbox:
        dbx = DatabricksSandbox(port=0, **options).start()
        started.append(dbx)
        return dbx

    yield start
    for dbx in started:
        dbx.stop()


@pytest.fixture
def databricks(start_databricks):
    return start_databricks()


@pytest.fixture
def workspace(databricks):
    """databricks-sdk's WorkspaceClient on the stand-in, with its personal access token."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=databricks.base_url, token=databricks.token)


@pytest.fixture(scope="module")
def teams_server():
    """A Teams stand-in for a test module (each module's tests share it)."""
    with TeamsSandbox(port=0) as server:
        yield server


@pytest.fixture
def teams(teams_server):
    """The module's Teams stand-in, reset to its initial settings and contents."""
    teams_server.reset()
    return teams_server
