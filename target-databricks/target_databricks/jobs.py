"""Running a Databricks job after a load, and remembering a failed run so that the next load runs it first."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ml_connector_core.audit import AuditEntry

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

#: The audit trail's stream name for job runs: a failed run is a failed entry there, replayed by the next load.
JOB_STREAM = "_databricks_job_run"
_TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}


class JobRunFailed(RuntimeError):
    """The job run after a load did not succeed; the load stays marked for a rerun of the job."""


def run_job(client: WorkspaceClient, job_id: int, parameters: Mapping[str, str], timeout_seconds: float,
            poll_seconds: float = 2.0) -> tuple[int, str, str]:
    """Start the job and wait for its end: (run id, result state, message)."""
    waiter = client.jobs.run_now(job_id=job_id, job_parameters=dict(parameters))
    run_id = waiter.run_id if hasattr(waiter, "run_id") else waiter.response.run_id
    deadline = time.monotonic() + timeout_seconds
    while True:
        state = client.jobs.get_run(run_id=run_id).state
        life_cycle = getattr(state.life_cycle_state, "value", state.life_cycle_state)
        if life_cycle in _TERMINAL:
            result = getattr(state.result_state, "value", state.result_state) or life_cycle
            return run_id, str(result), state.state_message or ""
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
