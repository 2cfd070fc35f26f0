"""Helpers for the Databricks stand-in's tests: run statements through databricks-sdk and collect every row."""

from __future__ import annotations

import time

from databricks.sdk import WorkspaceClient
from databricks.sdk.service.sql import StatementParameterListItem, StatementResponse, StatementState

RUNNING = (StatementState.PENDING, StatementState.RUNNING)


def parameters(**typed: tuple[str | None, str]) -> list[StatementParameterListItem]:
    """parameters(k=("1", "BIGINT")) -> the SDK's parameter list."""
    return [StatementParameterListItem(name=name, value=value, type=kind) for name, (value, kind) in typed.items()]


def execute(workspace: WorkspaceClient, warehouse_id: str, statement: str, **options) -> StatementResponse:
    """Execute and poll until the statement is no longer PENDING or RUNNING."""
    response = workspace.statement_execution.execute_statement(statement, warehouse_id, **options)
    deadline = time.monotonic() + 60
    while response.status.state in RUNNING:
        assert time.monotonic() < deadline, f"statement {response.statement_id} still {response.status.state}"
        time.sleep(0.05)
        response = workspace.statement_execution.get_statement(response.statement_id)
    return response


def succeeded(workspace: WorkspaceClient, warehouse_id: str, statement: str, **options) -> StatementResponse:
    response = execute(workspace, warehouse_id, statement, **options)
    assert response.status.state == StatementState.SUCCEEDED, response.status
    return response


def all_rows(workspace: WorkspaceClient, response: StatementResponse) -> list[list[str | None]]:
    """Chunk 0 from the response, then every further chunk by next_chunk_index."""
    result = response.result
    rows = list(result.data_array or []) if result else []
    next_chunk = result.next_chunk_index if result else None
    while next_chunk is not None:
        chunk = workspace.statement_execution.get_statement_result_chunk_n(response.statement_id, next_chunk)
        rows += chunk.data_array or []
        next_chunk = chunk.next_chunk_index
    return rows


def query(workspace: WorkspaceClient, warehouse_id: str, statement: str, **options) -> list[list[str | None]]:
    return all_rows(workspace, succeeded(workspace, warehouse_id, statement, **options))
