"""A SQL warehouse after its auto-stop: the warehouse API shows it STOPPED, and a statement starts it, as on Databricks."""

from __future__ import annotations

import pytest
from databricks.sdk import WorkspaceClient

from mlc_sandbox.databricks import DatabricksSandbox


def test_a_stopped_warehouse_is_shown_stopped_and_a_statement_starts_it(tmp_path):
    with DatabricksSandbox(port=0, data_dir=tmp_path) as dbx:
        client = WorkspaceClient(host=dbx.base_url, token=dbx.token, auth_type="pat")
        assert client.warehouses.get(dbx.warehouse_id).state.value == "RUNNING"
        dbx.admin("POST", "settings", {"warehouse_state": "STOPPED"})
        assert client.warehouses.get(dbx.warehouse_id).state.value == "STOPPED"
        assert [w.state.value for w in client.warehouses.list()] == ["STOPPED"]
        answer = client.statement_execution.execute_statement(statement="SELECT 1", warehouse_id=dbx.warehouse_id,
                                                              wait_timeout="30s")
        assert answer.result.data_array == [["1"]]
        assert client.warehouses.get(dbx.warehouse_id).state.value == "RUNNING"


def test_only_known_warehouse_states_are_taken(tmp_path):
    with DatabricksSandbox(port=0, data_dir=tmp_path) as dbx:
        with pytest.raises(RuntimeError, match="400.*RUNNING or STOPPED"):
            dbx.admin("POST", "settings", {"warehouse_state": "PAUSED"})
