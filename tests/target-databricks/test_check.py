"""target-databricks-check as a process, configured through the environment as Meltano configures it, against the
Databricks stand-in, a local disk and an S3 server: a fitting configuration passes, and each broken one gets its own
line naming the setting to change; no secret is printed and nothing is left behind."""

from __future__ import annotations

import json
import logging
import os
import subprocess

import boto3
import pytest
from moto.server import ThreadedMotoServer

from mlc_sandbox.databricks import DatabricksSandboxProcess
from mlc_sandbox.databricks.settings import DatabricksSettings
from support.singer import BIN

WRONG_TOKEN = "dapi-not-a-token-of-this-workspace"
WRONG_SP_SECRET = "not-the-service-principal-secret"
S3_SECRET = "lake-secret-value-for-the-check"


def check(env: dict, cwd=None) -> tuple[int, list[dict], str]:
    """Exit status, the JSON results and everything printed."""
    completed = subprocess.run([str(BIN / "target-databricks-check"), "--config", "ENV", "--format", "json"],
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("TARGET_DATABRICKS_")},
                                    **env}, cwd=cwd, capture_output=True, text=True, timeout=300)
    return completed.returncode, json.loads(completed.stdout), completed.stdout + completed.stderr


def by_check(results: list[dict]) -> dict[str, dict]:
    return {r["check"]: r for r in results}


@pytest.fixture(scope="module")
def databricks(tmp_path_factory):
    stand_in = DatabricksSandboxProcess(data_dir=tmp_path_factory.mktemp("warehouse"))
    stand_in.define_job(4711, name="refresh-gold")
    yield stand_in
    stand_in.stop()


def workspace_env(databricks, **changes) -> dict:
    env = {"TARGET_DATABRICKS_LOAD_METHOD": "warehouse", "TARGET_DATABRICKS_WORKSPACE_HOST": databricks.base_url,
           "TARGET_DATABRICKS_TOKEN": databricks.token, "TARGET_DATABRICKS_WAREHOUSE_ID": databricks.warehouse_id,
           "TARGET_DATABRICKS_JOB_ID": "4711"}
    env.update({f"TARGET_DATABRICKS_{k.upper()}": v for k, v in changes.items()})
    return {k: v for k, v in env.items() if v is not None}


def test_a_fitting_warehouse_configuration_passes(databricks):
    status, results, _ = check(workspace_env(databricks))
    assert status == 0, results
    checks = by_check(results)
    assert checks["credentials"]["status"] == "pass" and "mlc-sandbox@example.com" in checks["credentials"]["detail"]
    assert checks[f"SQL warehouse {databricks.warehouse_id}"]["status"] == "pass"
    assert checks["catalog main"]["status"] == "pass"
    assert checks["job 4711"]["status"] == "pass" and "refresh-gold" in checks["job 4711"]["detail"]
    # the schema does not exist yet: the load would create it, the check does not
    assert checks["schema main.ifscloud"]["status"] == "warn"
    assert "CREATE SCHEMA on catalog main" in checks["schema main.ifscloud"]["fix"]
    assert not [s for s in databricks.statements() if not s["statement"].startswith(("SELECT 1", "SHOW "))]
    assert databricks.runs(4711) == []  # looked up, never run

    databricks.sql("CREATE SCHEMA IF NOT EXISTS main.ifscloud", dialect="databricks")
    status, results, _ = check(workspace_env(databricks))
    assert status == 0 and by_check(results)["schema main.ifscloud"]["status"] == "pass"


def test_oauth_machine_to_machine_credentials_pass(databricks):
    env = workspace_env(databricks, token=None, client_id=databricks.client_id,
                        client_secret=databricks.client_secret)
    status, results, _ = check(env)
    assert status == 0 and "service principal" in by_check(results)["credentials"]["detail"]


@pytest.mark.parametrize("broken, failing, fix", [
    ({"token": WRONG_TOKEN}, "credentials", "TARGET_DATABRICKS_TOKEN"),
    ({"token": None, "client_id": DatabricksSettings.client_id, "client_secret": WRONG_SP_SECRET}, "credentials", "TARGET_DATABRICKS_CLIENT_SECRET"),
    ({"warehouse_id": "0123456789abcdef"}, "SQL warehouse 0123456789abcdef", "TARGET_DATABRICKS_WAREHOUSE_ID"),
    ({"catalog": "finance"}, "catalog finance", "TARGET_DATABRICKS_CATALOG"),
    ({"job_id": "4712"}, "job 4712", "TARGET_DATABRICKS_JOB_ID"),
], ids=["wrong token", "wrong OAuth secret", "wrong warehouse id", "unknown catalog", "unknown job id"])
def test_each_broken_setting_gets_its_own_line(databricks, broken, failing, fix):
    status, results, printed = check(workspace_env(databricks, **broken))
    assert status == 1
    failures = [r for r in results if r["status"] == "fail"]
    assert [r["check"] for r in failures] == [failing], results
    assert fix in failures[0]["fix"]
    assert WRONG_TOKEN not in printed and WRONG_SP_SECRET not in printed and databricks.token not in printed


def test_the_staging_volume_is_probed_with_a_file_written_and_deleted(databricks):
    databricks.create_volume("main.staging.mlc")
    status, results, _ = check(workspace_env(databricks, warehouse_load_method="volume", staging_volume="main.staging.mlc"))
    assert status == 0, results
    assert by_check(results)["staging volume main.staging.mlc"]["status"] == "pass"
    assert databricks.volume_files("main.staging.mlc") == []  # the probe removed, and its folder
    probes = [r for r in databricks.requests() if "/Volumes/main/staging/mlc/_mlc_check" in r["path"]]
    assert [(r["method"], r["path"].split("/")[4]) for r in probes][-3:] == [
        ("PUT", "files"), ("DELETE", "files"), ("DELETE", "directories")]
    assert [r["status"] for r in probes][-3:] == [204, 204, 204]

    status, results, _ = check(workspace_env(databricks, warehouse_load_method="volume", staging_volume="main.staging.no"))
    missing = by_check(results)["staging volume main.staging.no"]
    assert status == 1 and missing["status"] == "fail" and "the volume does not exist" in missing["detail"]
    assert "TARGET_DATABRICKS_STAGING_VOLUME" in missing["fix"]
    databricks.grant_volume("main.staging.mlc", "READ VOLUME")
    status, results, _ = check(workspace_env(databricks, warehouse_load_method="volume", staging_volume="main.staging.mlc"))
    denied = by_check(results)["staging volume main.staging.mlc"]
    assert status == 1 and "may not write files in the volume" in denied["detail"]
    databricks.grant_volume("main.staging.mlc", "READ VOLUME", "WRITE VOLUME")
    status, results, _ = check(workspace_env(databricks, warehouse_load_method="volume"))
    assert status == 1 and by_check(results)["staging volume"]["detail"] == \
        "warehouse_load_method volume needs a staging volume"


def test_a_stopped_warehouse_is_not_started_by_the_check(tmp_path):
    stand_in = DatabricksSandboxProcess(data_dir=tmp_path / "warehouse")
    try:
        stand_in.admin("POST", "settings", {"warehouse_state": "STOPPED"})
        status, results, _ = check(workspace_env(stand_in, job_id=None))
        assert status == 0
        line = by_check(results)[f"SQL warehouse {stand_in.warehouse_id}"]
        assert line["status"] == "warn" and "STOPPED" in line["detail"] and "catalog main" in line["detail"]
        assert [r["check"] for r in results] == ["credentials", f"SQL warehouse {stand_in.warehouse_id}"]
        assert stand_in.statements() == [] and stand_in.admin("GET", "settings")["warehouse_state"] == "STOPPED"
    finally:
        stand_in.stop()


def test_the_wrong_warehouse_line_names_the_warehouses_there_are(databricks):
    _, results, _ = check(workspace_env(databricks, warehouse_id="0123456789abcdef"))
    assert databricks.warehouse_id in by_check(results)["SQL warehouse 0123456789abcdef"]["fix"]


def test_a_writable_local_delta_root_passes_and_keeps_nothing(tmp_path):
    (tmp_path / "lake").mkdir()
    before = sorted(tmp_path.rglob("*"))
    for root in ("lake", "lake/not/yet/there"):
        status, results, _ = check({"TARGET_DATABRICKS_DELTA_ROOT": root}, cwd=tmp_path)
        assert status == 0, results
        assert results[0]["check"] == f"Delta location {root}" and "_mlc_check/" in results[0]["detail"]
        assert sorted(tmp_path.rglob("*")) == before  # the probe table and the folders it needed are gone


def test_a_file_where_the_delta_folder_should_be_fails(tmp_path):
    (tmp_path / "lake").write_text("not a folder")
    for root in ("lake", "lake/delta"):
        status, results, _ = check({"TARGET_DATABRICKS_DELTA_ROOT": str(tmp_path / root)})
        assert status == 1
        assert results[0]["status"] == "fail" and f"{tmp_path / 'lake'} is a file" in results[0]["detail"]
        assert "TARGET_DATABRICKS_DELTA_ROOT" in results[0]["fix"]


def test_a_file_where_the_schema_folder_should_be_fails(tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "finance").write_text("")
    status, results, _ = check({"TARGET_DATABRICKS_DELTA_ROOT": str(tmp_path / "lake"),
                                "TARGET_DATABRICKS_TARGET_SCHEMA": "finance"})
    assert status == 1 and "finance is a file" in results[0]["detail"]


@pytest.fixture
def s3():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="lake-key",
                          aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    client.create_bucket(Bucket="lake")
    yield endpoint, client
    server.stop()


def test_delta_on_object_storage_probe_is_written_and_removed(s3):
    endpoint, client = s3
    options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "lake-key", "AWS_SECRET_ACCESS_KEY": S3_SECRET,
               "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    env = {"TARGET_DATABRICKS_DELTA_ROOT": "s3://lake/warehouse",
           "TARGET_DATABRICKS_STORAGE_OPTIONS": json.dumps(options)}
    status, results, printed = check(env)
    assert status == 0, results
    assert client.list_objects_v2(Bucket="lake").get("KeyCount") == 0  # nothing left in the bucket
    assert S3_SECRET not in printed

    status, results, printed = check({**env, "TARGET_DATABRICKS_DELTA_ROOT": "s3://no-such-lake/warehouse"})
    assert status == 1
    assert "404" in results[0]["detail"] and "TARGET_DATABRICKS_DELTA_ROOT" in results[0]["fix"]
    assert "TARGET_DATABRICKS_STORAGE_OPTIONS" in results[0]["fix"] and S3_SECRET not in printed


def test_a_workspace_that_falters_is_retried_as_a_load_retries_it(databricks):
    # The check's REST calls go through the loads' send loop: a 500 (which databricks-sdk would not retry), a 503
    # with Retry-After and a dropped connection each get another try, and the check still gives its answer.
    databricks.clear_faults()
    databricks.add_fault("status", count=1, status=500, path_contains="/scim/v2/Me")
    databricks.add_fault("status", count=1, status=503, retry_after=1, path_contains="/api/2.0/sql/warehouses/")
    databricks.add_fault("drop", count=1, path_contains="/api/2.1/jobs/get")
    status, results, _ = check(workspace_env(databricks))
    assert status == 0, results
    assert {r["check"]: r["status"] for r in results}["job 4711"] == "pass"
    met = [(r["path"], r["status"]) for r in databricks.requests() if r.get("fault")]
    assert len(met) == 3, met  # every fault was met, and got past


def test_an_unreachable_workspace_is_named_within_a_few_tries(databricks):
    status, results, printed = check(workspace_env(databricks, workspace_host="http://127.0.0.1:9"))
    assert status == 1
    line = by_check(results)["credentials"]
    assert line["status"] == "fail" and "could not be reached" in line["detail"]
    assert "TARGET_DATABRICKS_WORKSPACE_HOST" in line["fix"]
    assert databricks.token not in printed
