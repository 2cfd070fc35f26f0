"""The SQL warehouse path end to end through Databricks' own SDK against the Databricks stand-in, and job runs after a
load: a failed run keeps the load marked and is run again before anything new is reported done."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mlc_sandbox.databricks import DatabricksSandboxProcess
from ml_connector_core.audit import AuditTrail
from support.delta import read_delta
from support.singer import record_message, run_target, schema_message, state_message
from test_delta_load import INVOICE, KEYS, invoice


@pytest.fixture
def databricks(tmp_path):
    stand_in = DatabricksSandboxProcess(data_dir=tmp_path / "warehouse")
    yield stand_in
    stand_in.stop()


def warehouse_config(databricks, tmp_path, **extra) -> dict:
    return {"load_method": "warehouse", "workspace_host": databricks.base_url, "token": databricks.token,
            "warehouse_id": databricks.warehouse_id, "catalog": "main",
            "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **extra}


def messages(records, properties=INVOICE, state=None):
    out = [schema_message("posting_proposals", properties, KEYS, bookmark="Rowversion")]
    out += [record_message("posting_proposals", r) for r in records]
    if state:
        out.append(state_message(state))
    return out


def stored(databricks) -> list[list]:
    return databricks.sql(
        "SELECT InvoiceNo, GrossAmount, Objstate FROM main.ifscloud.posting_proposals ORDER BY InvoiceNo",
        dialect="databricks")


def test_warehouse_merge_is_idempotent_exact_and_bounded(databricks, tmp_path):
    config = warehouse_config(databricks, tmp_path, max_statement_bytes=4000)
    batch = [invoice(f"W{n:03}", f"{n}.123456789012345678901234", "2026-01-01T00:00:00Z") for n in range(40)]
    run_target(tmp_path, config, messages(batch))
    run_target(tmp_path, config, messages(batch))
    rows = stored(databricks)
    assert len(rows) == 40
    assert Decimal(rows[7][1]) == Decimal("7.123456789012345678901234")
    merges = [s for s in databricks.statements() if s["statement"].startswith("MERGE")]
    assert len(merges) > 1 and all(len(s["statement"]) <= 4000 for s in merges)  # bounded statements
    assert all(s["state"] == "SUCCEEDED" for s in databricks.statements())


def test_warehouse_updates_newer_versions_and_grows_the_schema(databricks, tmp_path):
    config = warehouse_config(databricks, tmp_path)
    run_target(tmp_path, config, messages([invoice("U1", "1", "2026-01-01T00:00:00Z")]))
    grown = {**INVOICE, "Cf_Project": {"type": ["string", "null"]}}
    newer = {**invoice("U1", "2", "2026-01-02T00:00:00Z", "Authorized"), "Cf_Project": "PRJ-1"}
    run_target(tmp_path, config, messages([newer], properties=grown))
    run_target(tmp_path, config, messages([invoice("U1", "0.5", "2025-12-31T00:00:00Z")]))  # stale: ignored
    assert databricks.sql("SELECT GrossAmount, Objstate, Cf_Project FROM main.ifscloud.posting_proposals",
                          dialect="databricks") == [
        ["2.000000000000000000000000", "Authorized", "PRJ-1"]]


def test_oauth_machine_to_machine_credentials(databricks, tmp_path):
    config = warehouse_config(databricks, tmp_path, token=None, client_id=databricks.client_id,
                              client_secret=databricks.client_secret)
    config = {k: v for k, v in config.items() if v is not None}
    run_target(tmp_path, config, messages([invoice("M1", "1", "2026-01-01T00:00:00Z")]))
    assert [r[0] for r in stored(databricks)] == ["M1"]


def test_a_failed_job_run_holds_the_state_and_runs_again_first_next_time(databricks, tmp_path):
    databricks.define_job(77, duration_seconds=0.2, outcomes=["FAILED"])
    config = {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
              "workspace_host": databricks.base_url, "token": databricks.token, "job_id": 77,
              "job_timeout_seconds": 60}
    state = {"bookmarks": {"posting_proposals": {"replication_key_value": "2026-01-01T00:00:00Z"}}}
    failed = run_target(tmp_path, config, messages([invoice("J1", "1", "2026-01-01T00:00:00Z")], state=state),
                        check=False)
    assert failed.returncode != 0 and "job 77" in failed.stderr
    assert failed.states == []  # nothing reported done
    assert [r["InvoiceNo"] for r in read_delta(tmp_path / "delta" / "ifscloud" / "posting_proposals")] == ["J1"]
    trail = AuditTrail(config["audit_url"])
    pending = list(trail.failures(stream="_databricks_job_run"))
    assert len(pending) == 1 and "posting_proposals" in pending[0].payload["job_parameters"]["tables"]

    later = {"bookmarks": {"posting_proposals": {"replication_key_value": "2026-01-02T00:00:00Z"}}}
    rerun = run_target(tmp_path, config, messages([invoice("J2", "2", "2026-01-02T00:00:00Z")], state=later))
    assert rerun.states == [later]
    runs = databricks.runs(77)
    assert [r["state"]["result_state"] for r in runs] == ["FAILED", "SUCCESS", "SUCCESS"]  # failed, its replay, the new load
    assert {p["name"]: p["value"] for p in runs[1]["job_parameters"]} == pending[0].payload["job_parameters"]
    assert list(trail.failures(stream="_databricks_job_run")) == []


def test_a_job_started_whose_answer_was_lost_runs_once(databricks, tmp_path):
    """run-now carries an idempotency token: sent again after a lost answer or a 503, it gets the run already started."""
    databricks.define_job(78, duration_seconds=0.2)
    databricks.add_fault("drop_response", path_contains="/jobs/run-now")  # the run started, its answer lost
    databricks.add_fault("status", status=503, path_contains="/jobs/runs/get")
    config = {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
              "workspace_host": databricks.base_url, "token": databricks.token, "job_id": 78,
              "job_timeout_seconds": 60}
    state = {"bookmarks": {"posting_proposals": {"replication_key_value": "2026-01-01T00:00:00Z"}}}
    run = run_target(tmp_path, config, messages([invoice("J1", "1", "2026-01-01T00:00:00Z")], state=state))
    assert run.states == [state]
    assert [r["state"]["result_state"] for r in databricks.runs(78)] == ["SUCCESS"]
    run_nows = [r for r in databricks.requests() if r["path"].endswith("/jobs/run-now")]
    assert [r["fault"] for r in run_nows] == ["drop_response", None]
