"""Jobs API 2.1/2.2: jobs defined through the admin interface, runs triggered with run-now and polled with runs/get.

A run's life cycle follows the clock: PENDING for `pending_seconds`, RUNNING for `duration_seconds`, then
TERMINATED with the outcome taken from the job's queue of outcomes (SUCCESS once the queue is empty), or
INTERNAL_ERROR. Unknown jobs and runs fail as Databricks fails them: 400 INVALID_PARAMETER_VALUE "Job 1 does not
exist." (databricks-sdk turns the runs/get and jobs/get variants into ResourceDoesNotExist).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .responses import invalid

OUTCOMES = ("SUCCESS", "FAILED", "TIMEDOUT", "CANCELED", "INTERNAL_ERROR")
TERMINATION = {  # outcome -> (life cycle, result state, status code, status type, message)
    "SUCCESS": ("TERMINATED", "SUCCESS", "SUCCESS", "SUCCESS", ""),
    "FAILED": ("TERMINATED", "FAILED", "RUN_EXECUTION_ERROR", "CLIENT_ERROR",
               "Workload failed, see run output for details"),
    "TIMEDOUT": ("TERMINATED", "TIMEDOUT", "RUN_EXECUTION_ERROR", "CLIENT_ERROR", "Run timed out."),
    "CANCELED": ("TERMINATED", "CANCELED", "USER_CANCELED", "SUCCESS", "Run cancelled."),
    "INTERNAL_ERROR": ("INTERNAL_ERROR", "FAILED", "INTERNAL_ERROR", "INTERNAL_ERROR",
                       "Run failed with an internal error."),
}


def _ms(seconds: float | None) -> int:
    return int(seconds * 1000) if seconds else 0


@dataclass
class JobDefinition:
    job_id: int
    name: str
    duration_seconds: float = 0.5
    pending_seconds: float = 0.1
    outcomes: deque = field(default_factory=deque)
    parameters: dict[str, str] | None = None  # job parameter definitions (name -> default); None: any accepted
    created_time: float = field(default_factory=time.time)

    @classmethod
    def from_json(cls, body: dict) -> "JobDefinition":
        if not isinstance(body.get("job_id"), int) or isinstance(body.get("job_id"), bool):
            raise ValueError("'job_id' must be an integer")
        outcomes = body.get("outcomes") or []
        unknown = [o for o in outcomes if o not in OUTCOMES]
        if unknown:
            raise ValueError(f"unknown outcomes {unknown}; use {', '.join(OUTCOMES)}")
        parameters = body.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise ValueError("'parameters' must map parameter names to defaults")
        return cls(job_id=body["job_id"], name=str(body.get("name") or f"job-{body['job_id']}"),
                   duration_seconds=float(body.get("duration_seconds", 0.5)),
                   pending_seconds=float(body.get("pending_seconds", 0.1)), outcomes=deque(outcomes),
                   parameters={str(k): str(v) for k, v in parameters.items()} if parameters is not None else None)

    def settings_json(self) -> dict:
        settings = {"name": self.name, "format": "MULTI_TASK", "max_concurrent_runs": 1,
                    "tasks": [{"task_key": "main", "notebook_task": {"notebook_path": f"/Jobs/{self.name}"}}]}
        if self.parameters is not None:
            settings["parameters"] = [{"name": n, "default": d} for n, d in self.parameters.items()]
        return settings

    def as_json(self) -> dict:
        return {"job_id": self.job_id, "creator_user_name": "mlc-sandbox", "created_time": _ms(self.created_time),
                "settings": self.settings_json()}


@dataclass
class Run:
    run_id: int
    job: JobDefinition
    outcome: str
    job_parameters: dict[str, str]
    overriding_parameters: dict
    created: float
    pending_seconds: float
    duration_seconds: float
    canceled_at: float | None = None

    def _phase(self, now: float) -> tuple[str, str | None, float | None]:
        """(life cycle state, outcome once ended, end time)."""
        started = self.created + self.pending_seconds
        ends = started + self.duration_seconds
        if self.canceled_at is not None and self.canceled_at < ends:
            return "TERMINATED", "CANCELED", self.canceled_at
        if now < started:
            return "PENDING", None, None
        if now < ends:
            return "RUNNING", None, None
        return TERMINATION[self.outcome][0], self.outcome, ends

    def as_json(self, base_url: str, workspace_id: str, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        life_cycle, outcome, ended = self._phase(now)
        state = {"life_cycle_state": life_cycle, "state_message": "",
                 "user_cancelled_or_timedout": outcome in ("CANCELED", "TIMEDOUT")}
        status = {"state": life_cycle if life_cycle != "INTERNAL_ERROR" else "TERMINATED"}
        if outcome is not None:
            _, result_state, code, kind, message = TERMINATION[outcome]
            if outcome == "FAILED":
                message = f"Task main failed with message: {message}."
            state.update(result_state=result_state, state_message=message)
            status["termination_details"] = {"code": code, "type": kind, "message": message}
        elif life_cycle == "PENDING":
            state["state_message"] = "Waiting for cluster"
        started = self.created + self.pending_seconds
        end_ms = _ms(ended) if ended else 0
        execution_ms = max(0, _ms(min(now, ended or now)) - _ms(started)) if now >= started else 0
        document = {
            "job_id": self.job.job_id, "run_id": self.run_id, "number_in_job": self.run_id,
            "original_attempt_run_id": self.run_id, "run_name": self.job.name, "creator_user_name": "mlc-sandbox",
            "state": state, "status": status, "start_time": _ms(self.created), "end_time": end_ms,
            "setup_duration": _ms(self.pending_seconds), "execution_duration": execution_ms, "cleanup_duration": 0,
            "run_duration": (end_ms - _ms(self.created)) if end_ms else max(0, _ms(now) - _ms(self.created)),
            "trigger": "ONE_TIME", "run_type": "JOB_RUN", "format": "MULTI_TASK",
            "run_page_url": f"{base_url}/?o={workspace_id}#job/{self.job.job_id}/run/{self.run_id}",
            "tasks": [{"task_key": "main", "run_id": self.run_id + 1, "state": dict(state),
                       "start_time": _ms(self.created), "end_time": end_ms, "attempt_number": 0}],
        }
        if self.job_parameters or self.job.parameters is not None:
            defaults = self.job.parameters or {}
            document["job_parameters"] = [
                {"name": name, **({"default": defaults[name]} if name in defaults else {}), "value": value}
                for name, value in self.job_parameters.items()]
        if self.overriding_parameters:
            document["overriding_parameters"] = self.overriding_parameters
        return document


OVERRIDES = ("notebook_params", "python_params", "python_named_params", "jar_params", "spark_submit_params",
             "sql_params", "dbt_commands", "pipeline_params")


class JobService:
    def __init__(self):
        self._jobs: dict[int, JobDefinition] = {}
        self._runs: dict[int, Run] = {}
        self._idempotency: dict[str, int] = {}
        self._next_run_id = 1001
        self._lock = threading.Lock()

    # admin

    def define(self, job: JobDefinition) -> dict:
        with self._lock:
            self._jobs[job.job_id] = job
        return self.describe(job)

    def jobs(self) -> list[dict]:
        with self._lock:
            return [self.describe(j) for j in self._jobs.values()]

    @staticmethod
    def describe(job: JobDefinition) -> dict:
        return {"job_id": job.job_id, "name": job.name, "duration_seconds": job.duration_seconds,
                "pending_seconds": job.pending_seconds, "outcomes": list(job.outcomes), "parameters": job.parameters}

    def runs(self, base_url: str, workspace_id: str, job_id: int | None = None) -> list[dict]:
        with self._lock:
            runs = [r for r in self._runs.values() if job_id is None or r.job.job_id == job_id]
        return [r.as_json(base_url, workspace_id) | {"outcome": r.outcome} for r in runs]

    def clear_runs(self) -> None:
        with self._lock:
            self._runs.clear()
            self._idempotency.clear()

    # the API

    def _job(self, job_id) -> JobDefinition:
        if job_id is None:
            raise invalid("Missing required field: job_id")
        try:
            job_id = int(job_id)
        except (TypeError, ValueError):
            raise invalid(f"Invalid job_id: {job_id}") from None
        job = self._jobs.get(job_id)
        if job is None:
            raise invalid(f"Job {job_id} does not exist.")
        return job

    def run_now(self, body: dict) -> dict:
        with self._lock:
            job = self._job(body.get("job_id"))
            token = body.get("idempotency_token")
            if token and token in self._idempotency:
                run_id = self._idempotency[token]
                return {"run_id": run_id, "number_in_job": run_id}
            given = body.get("job_parameters") or {}
            if not isinstance(given, dict):
                raise invalid("job_parameters must be a map of parameter names to values")
            if job.parameters is not None:
                undefined = sorted(set(given) - set(job.parameters))
                if undefined:
                    raise invalid(f"Job parameters {undefined} are not defined in job {job.job_id}.")
                effective = {**job.parameters, **{k: str(v) for k, v in given.items()}}
            else:
                effective = {k: str(v) for k, v in given.items()}
            overriding = {name: body[name] for name in OVERRIDES if body.get(name) is not None}
            outcome = job.outcomes.popleft() if job.outcomes else "SUCCESS"
            run_id = self._next_run_id
            self._next_run_id += 2  # task runs take the ids in between
            self._runs[run_id] = Run(run_id, job, outcome, effective, overriding, time.time(), job.pending_seconds,
                                     job.duration_seconds)
            if token:
                self._idempotency[token] = run_id
        return {"run_id": run_id, "number_in_job": run_id}

    def run(self, run_id) -> Run:
        if run_id is None:
            raise invalid("Missing required field: run_id")
        try:
            run_id = int(run_id)
        except (TypeError, ValueError):
            raise invalid(f"Invalid run_id: {run_id}") from None
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            raise invalid(f"Run {run_id} does not exist.")
        return run

    def cancel(self, run_id) -> None:
        run = self.run(run_id)
        with self._lock:
            if run.canceled_at is None:
                run.canceled_at = time.time()

    def get_job(self, job_id) -> dict:
        with self._lock:
            return self._job(job_id).as_json()

    def list_jobs(self) -> dict:
        with self._lock:
            return {"jobs": [j.as_json() for j in self._jobs.values()], "has_more": False}

    def list_runs(self, base_url: str, workspace_id: str, job_id) -> dict:
        with self._lock:
            runs = sorted((r for r in self._runs.values() if job_id is None or r.job.job_id == int(job_id)),
                          key=lambda r: -r.run_id)
        return {"runs": [r.as_json(base_url, workspace_id) for r in runs], "has_more": False}

