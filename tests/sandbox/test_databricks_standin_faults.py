"""Injected faults on the Databricks stand-in: 429 with Retry-After, 503, dropped connections."""

from __future__ import annotations

import time

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from databricks.sdk.errors import TooManyRequests

from databricks_standin_client import query

STATEMENTS = "/api/2.0/sql/statements"


def _post(dbx) -> requests.Response:
    return requests.post(dbx.base_url + STATEMENTS, headers={"Authorization": f"Bearer {dbx.token}"},
                         json={"warehouse_id": dbx.warehouse_id, "statement": "SELECT 1"})


def test_rate_limit_answers_429_with_retry_after(databricks):
    databricks.add_fault("rate_limit", count=2, retry_after=3)
    for _ in range(2):
        limited = _post(databricks)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        assert limited.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert _post(databricks).status_code == 200
    assert databricks.admin("GET", "faults")["faults"] == []
    assert [r["fault"] for r in databricks.requests()] == ["rate_limit", "rate_limit", None]


def test_the_sdk_honours_retry_after(databricks, workspace):
    databricks.add_fault("rate_limit", count=1, retry_after=1)
    started = time.monotonic()
    assert query(workspace, databricks.warehouse_id, "SELECT 'after the wait'") == [["after the wait"]]
    assert time.monotonic() - started >= 1
    assert [r["status"] for r in databricks.requests() if r["path"] == STATEMENTS] == [429, 200]


def test_the_sdk_gives_up_on_429_when_its_retry_budget_is_spent(databricks):
    client = WorkspaceClient(config=Config(host=databricks.base_url, token=databricks.token, retry_timeout_seconds=1))
    databricks.add_fault("rate_limit", count=5, retry_after=2)
    with pytest.raises((TooManyRequests, TimeoutError)):
        client.statement_execution.execute_statement("SELECT 1", databricks.warehouse_id)


def test_unavailable_and_dropped_requests(databricks, workspace):
    databricks.add_fault("status", status=503, path_contains="/sql/statements")
    unavailable = _post(databricks)
    assert unavailable.status_code == 503 and unavailable.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    databricks.add_fault("drop")
    with pytest.raises(requests.ConnectionError):
        _post(databricks)
    databricks.add_fault("status", status=503)
    assert query(workspace, databricks.warehouse_id, "SELECT 2") == [["2"]]  # the SDK retries a 503


def test_faults_can_hit_the_token_endpoint(databricks):
    databricks.add_fault("status", status=500, path_contains="/oidc/v1/token")
    response = requests.post(databricks.token_url, auth=(databricks.client_id, databricks.client_secret),
                             data={"grant_type": "client_credentials", "scope": "all-apis"})
    assert response.status_code == 500
    assert _post(databricks).status_code == 200  # API requests were not affected
