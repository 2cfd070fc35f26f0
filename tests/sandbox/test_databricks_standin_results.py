"""Results and the statement life cycle on the Databricks stand-in: chunks to follow, limits, asynchronous
execution polled to completion, cancellation and closing."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, InvalidParameterValue
from databricks.sdk.service.sql import ExecuteStatementRequestOnWaitTimeout, StatementState

from databricks_standin_client import all_rows, query, succeeded

TEN_ROWS = "SELECT id, CAST(id * 1.25 AS DECIMAL(10, 2)) AS price FROM range(10) AS r(id) ORDER BY id"
EXPECTED = [[str(i), f"{i * 1.25:.2f}"] for i in range(10)]


@pytest.fixture
def chunked(start_databricks):
    dbx = start_databricks(chunk_rows=3)
    return dbx, WorkspaceClient(host=dbx.base_url, token=dbx.token)


def test_results_come_in_chunks_that_must_be_followed(chunked):
    dbx, workspace = chunked
    response = succeeded(workspace, dbx.warehouse_id, TEN_ROWS)
    manifest = response.manifest
    assert (manifest.total_row_count, manifest.total_chunk_count, manifest.truncated) == (10, 4, False)
    assert [(c.chunk_index, c.row_offset, c.row_count) for c in manifest.chunks] == [
        (0, 0, 3), (1, 3, 3), (2, 6, 3), (3, 9, 1)]
    first = response.result
    assert (first.chunk_index, first.row_offset, first.row_count, first.next_chunk_index) == (0, 0, 3, 1)
    assert first.data_array == EXPECTED[:3]
    assert first.next_chunk_internal_link == (f"/api/2.0/sql/statements/{response.statement_id}"
                                              "/result/chunks/1?row_offset=3")

    last = workspace.statement_execution.get_statement_result_chunk_n(response.statement_id, 3)
    assert (last.row_offset, last.data_array, last.next_chunk_index) == (9, EXPECTED[9:], None)
    assert all_rows(workspace, response) == EXPECTED
    linked = requests.get(dbx.base_url + first.next_chunk_internal_link,
                          headers={"Authorization": f"Bearer {dbx.token}"}).json()
    assert linked["data_array"] == EXPECTED[3:6]
    with pytest.raises(InvalidParameterValue, match="out of range"):
        workspace.statement_execution.get_statement_result_chunk_n(response.statement_id, 4)


def test_polling_a_finished_statement_returns_manifest_and_first_chunk_again(chunked):
    dbx, workspace = chunked
    response = succeeded(workspace, dbx.warehouse_id, TEN_ROWS)
    again = workspace.statement_execution.get_statement(response.statement_id)
    assert again.status.state == StatementState.SUCCEEDED
    assert again.manifest.total_chunk_count == 4 and again.result.data_array == EXPECTED[:3]


def test_row_and_byte_limits_truncate(chunked):
    dbx, workspace = chunked
    limited = succeeded(workspace, dbx.warehouse_id, TEN_ROWS, row_limit=4)
    assert (limited.manifest.total_row_count, limited.manifest.truncated) == (4, True)
    assert all_rows(workspace, limited) == EXPECTED[:4]
    exact = succeeded(workspace, dbx.warehouse_id, TEN_ROWS, row_limit=10)
    assert exact.manifest.truncated is False
    tiny = succeeded(workspace, dbx.warehouse_id, TEN_ROWS, byte_limit=30)
    assert tiny.manifest.truncated is True and 0 < tiny.manifest.total_row_count < 10


def test_empty_results_have_no_chunks(databricks, workspace):
    response = succeeded(workspace, databricks.warehouse_id, "SELECT 1 AS x WHERE false")
    assert response.manifest.total_row_count == 0 and response.manifest.total_chunk_count == 0
    assert [c.name for c in response.manifest.schema.columns] == ["x"]
    assert response.result.data_array is None


def test_asynchronous_statement_is_polled_to_completion(start_databricks):
    dbx = start_databricks(execution_delay=0.6)
    workspace = WorkspaceClient(host=dbx.base_url, token=dbx.token)
    started = time.monotonic()
    response = workspace.statement_execution.execute_statement("SELECT 42 AS answer", dbx.warehouse_id,
                                                               wait_timeout="0s")
    assert response.status.state == StatementState.PENDING
    assert response.manifest is None and response.result is None
    assert time.monotonic() - started < 0.5
    seen = {response.status.state}
    while response.status.state in (StatementState.PENDING, StatementState.RUNNING):
        time.sleep(0.05)
        response = workspace.statement_execution.get_statement(response.statement_id)
        seen.add(response.status.state)
    assert StatementState.RUNNING in seen
    assert response.status.state == StatementState.SUCCEEDED and response.result.data_array == [["42"]]


def test_wait_timeout_returns_the_result_when_execution_fits_in_it(start_databricks):
    dbx = start_databricks(execution_delay=0.3)
    workspace = WorkspaceClient(host=dbx.base_url, token=dbx.token)
    response = workspace.statement_execution.execute_statement("SELECT 1", dbx.warehouse_id, wait_timeout="5s")
    assert response.status.state == StatementState.SUCCEEDED


def test_cancel_a_running_statement_and_close_a_finished_one(start_databricks):
    dbx = start_databricks(execution_delay=30)
    workspace = WorkspaceClient(host=dbx.base_url, token=dbx.token)
    response = workspace.statement_execution.execute_statement(
        "CREATE SCHEMA main.never", dbx.warehouse_id, wait_timeout="0s")
    workspace.statement_execution.cancel_execution(response.statement_id)
    deadline = time.monotonic() + 5
    while workspace.statement_execution.get_statement(response.statement_id).status.state != StatementState.CANCELED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    dbx.change_settings(execution_delay=0)
    assert query(workspace, dbx.warehouse_id, "SHOW SCHEMAS") == [["default"]]

    done = succeeded(workspace, dbx.warehouse_id, "SELECT 1")
    workspace.statement_execution.cancel_execution(done.statement_id)
    closed = workspace.statement_execution.get_statement(done.statement_id)
    assert closed.status.state == StatementState.CLOSED and closed.result is None
    with pytest.raises(BadRequest):
        workspace.statement_execution.get_statement_result_chunk_n(done.statement_id, 0)


def test_wait_timeout_then_continue_or_cancel(start_databricks):
    """Both requests wait the shortest wait_timeout Databricks allows (5 s), side by side."""
    dbx = start_databricks(execution_delay=5.5)
    workspace = WorkspaceClient(host=dbx.base_url, token=dbx.token)
    statements = workspace.statement_execution
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        cancelled = pool.submit(statements.execute_statement, "SELECT 'never'", dbx.warehouse_id, wait_timeout="5s",
                                on_wait_timeout=ExecuteStatementRequestOnWaitTimeout.CANCEL)
        continued = pool.submit(statements.execute_statement, "SELECT 'late'", dbx.warehouse_id, wait_timeout="5s")
        cancelled, continued = cancelled.result(), continued.result()
    assert 5 <= time.monotonic() - started < 5.5
    assert cancelled.status.state == StatementState.CANCELED
    assert continued.status.state == StatementState.RUNNING and continued.result is None
    while continued.status.state == StatementState.RUNNING:
        time.sleep(0.05)
        continued = statements.get_statement(continued.statement_id)
    assert continued.status.state == StatementState.SUCCEEDED and all_rows(workspace, continued) == [["late"]]
    assert sorted(e["state"] for e in dbx.statements()) == ["CANCELED", "SUCCEEDED"]


def test_a_targeted_delay_slows_only_matching_statements(databricks, workspace):
    databricks.slow_down(0.5, count=1, statement_contains="slow one")
    fast = workspace.statement_execution.execute_statement("SELECT 'fast one'", databricks.warehouse_id,
                                                           wait_timeout="0s")
    slow = workspace.statement_execution.execute_statement("SELECT 'slow one'", databricks.warehouse_id,
                                                           wait_timeout="0s")
    time.sleep(0.3)
    assert workspace.statement_execution.get_statement(fast.statement_id).status.state == StatementState.SUCCEEDED
    assert workspace.statement_execution.get_statement(slow.statement_id).status.state == StatementState.RUNNING
    started = time.monotonic()
    again = succeeded(workspace, databricks.warehouse_id, "SELECT 'slow one'", wait_timeout="5s")
    assert again.result.data_array == [["slow one"]] and time.monotonic() - started < 0.4  # the delay was used up
