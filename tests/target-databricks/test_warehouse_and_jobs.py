"""The SQL warehouse path end to end through Databricks' own SDK against the Databricks stand-in, and job runs after a
load: a failed run keeps the load marked and is run again before anything new is reported done."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from mlc_sandbox.databricks import DatabricksSandboxProcess
from ml_connector_core.audit import AuditTrail
from support.delta import read_delta
from support.singer import record_message, run_target, run_target_watching_states, schema_message, state_message
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


def per_record_states(records: list[dict]) -> list[dict]:
    """The input as a tap sends it: each record followed by the STATE that covers it (its position)."""
    out = [schema_message("posting_proposals", INVOICE, KEYS, bookmark="Rowversion")]
    for n, record in enumerate(records):
        out += [record_message("posting_proposals", record),
                state_message({"bookmarks": {"posting_proposals": {"replication_key_value": str(n)}}})]
    return out


def test_warehouse_loads_are_checkpointed_after_each_batch_the_warehouse_has(databricks, tmp_path):
    config = warehouse_config(databricks, tmp_path, batch_size_rows=3)
    records = [invoice(f"C{n:02}", str(n), f"2026-01-01T00:00:{n:02}Z") for n in range(10)]
    emitted = []

    def merged_before_emitted(state: dict) -> bool:
        n = int(state["bookmarks"]["posting_proposals"]["replication_key_value"])
        assert {r["InvoiceNo"] for r in records[:n + 1]} <= {row[0] for row in stored(databricks)}, n
        emitted.append(n)
        return False

    run = run_target_watching_states(tmp_path, config, per_record_states(records), executable="target-databricks",
                                     on_state=merged_before_emitted)
    assert run.returncode == 0, run.stderr[-3000:]
    assert emitted[-1] == len(records) - 1
    assert max(b - a for a, b in zip([-1, *emitted], emitted)) <= 3, emitted  # one checkpoint a batch at least


def test_with_a_job_only_the_last_checkpoint_waits_for_the_job_run(databricks, tmp_path):
    databricks.define_job(78, duration_seconds=0.2, outcomes=["SUCCESS"])
    config = {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
              "workspace_host": databricks.base_url, "token": databricks.token, "job_id": 78,
              "job_timeout_seconds": 60, "batch_size_rows": 2}
    records = [invoice(f"J{n}", str(n), f"2026-01-01T00:00:0{n}Z") for n in range(5)]
    emitted = []

    def watch(state: dict) -> bool:
        emitted.append(int(state["bookmarks"]["posting_proposals"]["replication_key_value"]))
        if emitted[-1] == len(records) - 1:  # the end of the load: the job has run on it by now
            assert [r["state"]["result_state"] for r in databricks.runs(78)] == ["SUCCESS"]
        return False

    run = run_target_watching_states(tmp_path, config, per_record_states(records), executable="target-databricks",
                                     on_state=watch)
    assert run.returncode == 0, run.stderr[-3000:]
    assert emitted[0] < len(records) - 1 and emitted[-1] == len(records) - 1, emitted  # checkpoints before the job
    [job_run] = databricks.runs(78)
    parameters = {p["name"]: p["value"] for p in job_run["job_parameters"]}
    assert json.loads(parameters["watermarks"]) == {"posting_proposals": str(len(records) - 1)}
