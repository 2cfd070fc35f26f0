"""Jobs on the Databricks stand-in: defined through /_admin/jobs, triggered and polled through databricks-sdk."""

from __future__ import annotations

import pytest
import requests
from databricks.sdk.errors import InvalidParameterValue, OperationFailed, ResourceDoesNotExist
from databricks.sdk.service.jobs import RunLifeCycleState, RunResultState


def test_run_succeeds_with_job_parameters_echoed(databricks, workspace):
    databricks.define_job(123, name="refresh-gold", duration_seconds=0, pending_seconds=0)
    waiter = workspace.jobs.run_now(job_id=123, job_parameters={"stream": "purchase_orders", "rows": "42"})
    assert waiter.response.run_id == waiter.response.number_in_job
    run = waiter.result()
    assert (run.state.life_cycle_state, run.state.result_state) == (RunLifeCycleState.TERMINATED,
                                                                    RunResultState.SUCCESS)
    assert {p.name: p.value for p in run.job_parameters} == {"stream": "purchase_orders", "rows": "42"}
    assert run.job_id == 123 and run.run_name == "refresh-gold" and run.end_time >= run.start_time > 0

    runs = databricks.runs()
    assert [(r["run_id"], r["job_id"], r["outcome"]) for r in runs] == [(run.run_id, 123, "SUCCESS")]
    assert runs[0]["job_parameters"] == [{"name": "stream", "value": "purchase_orders"},
                                         {"name": "rows", "value": "42"}]


def test_runs_fail_on_demand_then_succeed(databricks, workspace):
    databricks.define_job(7, duration_seconds=0, pending_seconds=0, outcomes=["FAILED", "TIMEDOUT"])
    failed = workspace.jobs.run_now(job_id=7, notebook_params={"mode": "full"}).result()
    assert (failed.state.life_cycle_state, failed.state.result_state) == (RunLifeCycleState.TERMINATED,
                                                                          RunResultState.FAILED)
    assert "failed" in failed.state.state_message
    assert failed.overriding_parameters.notebook_params == {"mode": "full"}
    assert workspace.jobs.run_now(job_id=7).result().state.result_state == RunResultState.TIMEDOUT
    assert workspace.jobs.run_now(job_id=7).result().state.result_state == RunResultState.SUCCESS
    assert [r["outcome"] for r in databricks.runs(job_id=7)] == ["FAILED", "TIMEDOUT", "SUCCESS"]


def test_internal_error_fails_the_sdk_waiter(databricks, workspace):
    databricks.define_job(8, duration_seconds=0, pending_seconds=0, outcomes=["INTERNAL_ERROR"])
    with pytest.raises(OperationFailed, match="INTERNAL_ERROR"):
        workspace.jobs.run_now(job_id=8).result()


def test_a_run_goes_through_pending_and_running(databricks, workspace):
    databricks.define_job(9, duration_seconds=0.4, pending_seconds=0.2)
    run_id = workspace.jobs.run_now(job_id=9).response.run_id
    assert workspace.jobs.get_run(run_id).state.life_cycle_state == RunLifeCycleState.PENDING
    seen = []
    run = workspace.jobs.wait_get_run_job_terminated_or_skipped(
        run_id, callback=lambda r: seen.append(r.state.life_cycle_state))
    assert run.state.result_state == RunResultState.SUCCESS and run.execution_duration >= 400
    assert seen and set(seen) <= {RunLifeCycleState.PENDING, RunLifeCycleState.RUNNING}


def test_defined_parameters_take_defaults_and_refuse_unknown_names(databricks, workspace):
    databricks.define_job(10, duration_seconds=0, pending_seconds=0,
                          parameters={"stream": "all", "full_refresh": "false"})
    run = workspace.jobs.run_now(job_id=10, job_parameters={"full_refresh": "true"}).result()
    assert [(p.name, p.default, p.value) for p in run.job_parameters] == [
        ("stream", "all", "all"), ("full_refresh", "false", "true")]
    with pytest.raises(InvalidParameterValue, match="not defined"):
        workspace.jobs.run_now(job_id=10, job_parameters={"nope": "1"})
    assert [p.name for p in workspace.jobs.get(10).settings.parameters] == ["stream", "full_refresh"]


def test_unknown_jobs_and_runs(databricks, workspace):
    with pytest.raises(InvalidParameterValue, match="Job 404 does not exist."):
        workspace.jobs.run_now(job_id=404)
    with pytest.raises(ResourceDoesNotExist, match="Run 999 does not exist."):
        workspace.jobs.get_run(999)
    with pytest.raises(ResourceDoesNotExist, match="Job 404 does not exist."):
        workspace.jobs.get(404)
    assert databricks.runs() == []


def test_cancel_a_run(databricks, workspace):
    databricks.define_job(11, duration_seconds=30, pending_seconds=0)
    run_id = workspace.jobs.run_now(job_id=11).response.run_id
    run = workspace.jobs.cancel_run(run_id).result()
    assert (run.state.life_cycle_state, run.state.result_state) == (RunLifeCycleState.TERMINATED,
                                                                    RunResultState.CANCELED)


def test_jobs_api_2_1_paths_over_plain_http(databricks):
    databricks.define_job(5, duration_seconds=0, pending_seconds=0)
    headers = {"Authorization": f"Bearer {databricks.token}"}
    started = requests.post(databricks.base_url + "/api/2.1/jobs/run-now", headers=headers,
                            json={"job_id": 5, "job_parameters": {"a": "1"}, "notebook_params": {"b": "2"}}).json()
    assert set(started) == {"run_id", "number_in_job"}
    run = requests.get(databricks.base_url + "/api/2.1/jobs/runs/get", headers=headers,
                       params={"run_id": started["run_id"]}).json()
    assert run["state"] == {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": "",
                            "user_cancelled_or_timedout": False}
    assert run["job_parameters"] == [{"name": "a", "value": "1"}]
    assert run["overriding_parameters"] == {"notebook_params": {"b": "2"}}
    unknown = requests.post(databricks.base_url + "/api/2.1/jobs/run-now", headers=headers, json={"job_id": 6})
    assert (unknown.status_code, unknown.json()) == (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                                          "message": "Job 6 does not exist."})
