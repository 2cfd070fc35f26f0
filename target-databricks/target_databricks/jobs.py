"""Running a Databricks job after a load, and remembering a failed run so that the next load runs it first."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ml_connector_core.audit import AuditEntry

if TYPE_CHECKING:
    from target_databricks.workspace_api import WorkspaceApi

#: The audit trail's stream name for job runs: a failed run is a failed entry there, replayed by the next load.
JOB_STREAM = "_databricks_job_run"
_TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}


class JobRunFailed(RuntimeError):
    """The job run after a load did not succeed; the load stays marked for a rerun of the job."""


def idempotency_token(audit_run_id: str, job_id: int, parameters: Mapping[str, str]) -> str:
    """One token per run of the job this audit run starts (at most 64 characters, as the Jobs API allows): a run-now
    sent again after a lost answer or a 5xx gets the run the first one started, never a second run."""
    seed = json.dumps([audit_run_id, job_id, dict(parameters)], sort_keys=True)
    return "mlc-" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def run_job(api: WorkspaceApi, job_id: int, parameters: Mapping[str, str], timeout_seconds: float, *,
            token: str, poll_seconds: float = 2.0) -> tuple[int, str, str]:
    """Start the job (run-now with an idempotency token, so safe to send again) and wait for its end: (run id,
    result state, message)."""
    started = api.post("/api/2.1/jobs/run-now",
                       {"job_id": job_id, "job_parameters": dict(parameters), "idempotency_token": token},
                       retry_unsafe=True)
    run_id = started.get("run_id")
    if run_id is None:
        raise RuntimeError(f"jobs/run-now of job {job_id}: Databricks answered without 'run_id': {str(started)[:200]}")
    deadline = time.monotonic() + timeout_seconds
    while True:
        state = api.get("/api/2.1/jobs/runs/get", {"run_id": run_id}).get("state") or {}
        life_cycle = state.get("life_cycle_state")
        if life_cycle in _TERMINAL:
            return run_id, str(state.get("result_state") or life_cycle), state.get("state_message") or ""
        if time.monotonic() > deadline:
            return run_id, "TIMEDOUT", f"still {life_cycle} after {timeout_seconds:.0f} s"
        time.sleep(poll_seconds)


def job_entry(job_id: int, parameters: Mapping[str, str], run_id: int | None, result: str, message: str) -> AuditEntry:
    succeeded = result == "SUCCESS"
    return AuditEntry(
        stream=JOB_STREAM,
        key={"job_id": job_id, "load_run": parameters.get("load_run_id", "")},
        version=None,
        operation="insert",
        destination=f"job {job_id}" + (f" run {run_id}" if run_id else ""),
        outcome="succeeded" if succeeded else "failed",
        attempts=1,
        error=None if succeeded else f"job run ended {result}: {message}",
        payload={"job_id": job_id, "job_parameters": dict(parameters)},
    )


def load_parameters(load_run_id: str, loaded: Mapping[str, Mapping], state: Mapping | None) -> dict[str, str]:
    """What the job is told: which tables this load touched and up to which source watermarks."""
    bookmarks = (state or {}).get("bookmarks", {})
    return {
        "load_run_id": load_run_id,
        "tables": ",".join(sorted(str(v["table"]) for v in loaded.values())),
        "watermarks": json.dumps(
            {stream: bookmarks.get(stream, {}).get("replication_key_value") for stream in sorted(loaded)}
        ),
    }
