"""The Databricks stand-in as a child process (`mlc-sandbox serve databricks`), with a warehouse that persists."""

from __future__ import annotations

import requests
from databricks.sdk import WorkspaceClient

from databricks_standin_client import query, succeeded
from mlc_sandbox.cli import build_parser
from mlc_sandbox.databricks import DatabricksSandboxProcess


def test_subprocess_serves_the_sdk_and_keeps_tables_in_its_data_dir(tmp_path):
    options = dict(port=0, data_dir=tmp_path, token="dapi-process", client_id="sp", client_secret="s3cret",
                   warehouse_id="wh-1", chunk_rows=2)
    with DatabricksSandboxProcess(**options) as dbx:
        assert requests.get(dbx.base_url + "/_admin/health").json() == {"status": "ok"}
        client = WorkspaceClient(host=dbx.base_url, token="dapi-process")
        succeeded(client, "wh-1", "CREATE SCHEMA main.kept")
        succeeded(client, "wh-1", "CREATE TABLE main.kept.t (id BIGINT, v DECIMAL(38, 10)) USING DELTA")
        succeeded(client, "wh-1", "INSERT INTO main.kept.t VALUES (1, 0.1), (2, 0.2), (3, 0.3)")
        response = succeeded(client, "wh-1", "SELECT * FROM main.kept.t ORDER BY id")
        assert response.manifest.total_chunk_count == 2  # --chunk-rows reached the child
    assert (tmp_path / "catalogs" / "main.duckdb").exists()

    with DatabricksSandboxProcess(**options) as dbx:
        m2m = WorkspaceClient(host=dbx.base_url, client_id="sp", client_secret="s3cret")
        assert query(m2m, "wh-1", "SELECT id, v FROM main.kept.t ORDER BY id") == [
            ["1", "0.1000000000"], ["2", "0.2000000000"], ["3", "0.3000000000"]]
        assert dbx.sql('SELECT count(*) FROM "uc_main"."kept"."t"') == [["3"]]
        assert dbx.sql("SELECT count(*) FROM main.kept.t", dialect="databricks") == [["3"]]


def test_cli_defaults():
    args = build_parser().parse_args(["serve", "databricks"])
    assert (args.port, args.token, args.client_id, args.chunk_rows) == (8700, "dapi-mlc-sandbox-token",
                                                                        "mlc-sandbox-sp", 10_000)
    assert args.warehouse_id is None and args.catalog is None  # the settings' defaults apply
