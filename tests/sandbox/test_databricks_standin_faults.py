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


# Statement faults, lost answers, expiring tokens and random faults


def _submit(dbx, statement: str, token: str | None = None, wait: str = "10s") -> requests.Response:
    return requests.post(dbx.base_url + STATEMENTS, headers={"Authorization": f"Bearer {token or dbx.token}"},
                         json={"warehouse_id": dbx.warehouse_id, "statement": statement, "wait_timeout": wait})


def _state(dbx, statement_id: str) -> dict:
    return requests.get(f"{dbx.base_url}{STATEMENTS}/{statement_id}",
                        headers={"Authorization": f"Bearer {dbx.token}"}).json()["status"]


def _table(dbx) -> None:
    dbx.sql("CREATE TABLE uc_main.default.t (k BIGINT, v STRING)")


def test_a_failed_statement_reports_delta_s_conflict_and_writes_nothing(databricks):
    _table(databricks)
    databricks.fail_statements(statement_contains="INSERT")
    failed = _submit(databricks, "INSERT INTO main.default.t VALUES (1, 'a')").json()
    assert failed["status"]["state"] == "FAILED"
    assert failed["status"]["error"]["error_code"] == "ABORTED"
    assert failed["status"]["error"]["message"].startswith("[DELTA_CONCURRENT_APPEND] ")
    assert _state(databricks, failed["statement_id"]) == failed["status"]  # polling tells the same
    assert databricks.sql("SELECT count(*) FROM uc_main.default.t") == [["0"]]
    assert _submit(databricks, "INSERT INTO main.default.t VALUES (1, 'a')").json()["status"]["state"] == "SUCCEEDED"
    assert databricks.sql("SELECT k, v FROM uc_main.default.t") == [["1", "a"]]


def test_a_statement_can_fail_with_any_service_error_code_and_message(databricks):
    databricks.fail_statements(error_code="TEMPORARILY_UNAVAILABLE")
    assert _submit(databricks, "SELECT 1").json()["status"]["error"] == {
        "error_code": "TEMPORARILY_UNAVAILABLE", "message": "The service is temporarily unavailable. Please try again later."}
    denied = "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have MODIFY on Table 't'. SQLSTATE: 42501"
    databricks.fail_statements(error_code="BAD_REQUEST", message=denied)
    assert _submit(databricks, "SELECT 1").json()["status"]["error"] == {"error_code": "BAD_REQUEST", "message": denied}
    with pytest.raises(RuntimeError, match="error_code"):
        databricks.fail_statements(error_code="PERMISSION_DENIED")  # not a code a statement fails with
    with pytest.raises(RuntimeError, match="message"):
        databricks.fail_statements(error_code="BAD_REQUEST")  # what would it say?
    with pytest.raises(RuntimeError, match="unknown fault fields: colour"):
        databricks.add_fault("status", colour="red")


def test_a_slow_statement_outlasts_the_wait_and_is_polled(databricks):
    databricks.slow_down(3, statement_contains="'slow'")
    submitted = _submit(databricks, "SELECT 'slow'", wait="0s").json()
    assert submitted["status"]["state"] == "PENDING"
    assert _state(databricks, submitted["statement_id"])["state"] == "RUNNING"
    assert _submit(databricks, "SELECT 'fast'").json()["status"]["state"] == "SUCCEEDED"  # others are not slowed
    while _state(databricks, submitted["statement_id"])["state"] == "RUNNING":
        time.sleep(0.1)
    assert _state(databricks, submitted["statement_id"])["state"] == "SUCCEEDED"


def test_two_merges_of_the_same_keys_never_both_commit(databricks):
    """Delta's optimistic concurrency: a MERGE whose table changed since it began fails (ABORTED) instead of inserting
    the same key a second time; run again, it finds the row and leaves it alone."""
    _table(databricks)
    merge = ("MERGE INTO main.default.t AS t USING (SELECT 1 AS k, '{v}' AS v) AS s ON t.k = s.k "
             "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    databricks.slow_down(3, statement_contains="'first'")
    first = _submit(databricks, merge.format(v="first"), wait="0s").json()["statement_id"]
    while "MERGE INTO" not in (databricks.admin("GET", f"statements/{first}")["duckdb"] or ""):
        time.sleep(0.05)  # the first MERGE has done its work and holds its snapshot
    assert _submit(databricks, merge.format(v="second")).json()["status"]["state"] == "SUCCEEDED"
    while _state(databricks, first)["state"] == "RUNNING":
        time.sleep(0.1)
    conflict = _state(databricks, first)
    assert conflict["state"] == "FAILED" and conflict["error"]["error_code"] == "ABORTED"
    assert "[DELTA_CONCURRENT_APPEND]" in conflict["error"]["message"]
    assert databricks.sql("SELECT k, v FROM uc_main.default.t") == [["1", "second"]]
    assert _submit(databricks, merge.format(v="first")).json()["status"]["state"] == "SUCCEEDED"
    assert databricks.sql("SELECT k, v FROM uc_main.default.t") == [["1", "first"]]


def test_a_lost_answer_after_the_statement_ran(databricks):
    _table(databricks)
    databricks.add_fault("drop_response", statement_contains="INSERT")
    with pytest.raises(requests.ConnectionError):
        _submit(databricks, "INSERT INTO main.default.t VALUES (7, 'x')")
    assert databricks.sql("SELECT k, v FROM uc_main.default.t") == [["7", "x"]]  # it happened all the same
    assert [r["fault"] for r in databricks.requests() if r["path"] == STATEMENTS] == ["drop_response"]


def test_faults_aimed_at_one_method_spare_the_others(databricks):
    databricks.add_fault("status", status=503, method="GET", path_contains="/sql/statements/")
    submitted = _submit(databricks, "SELECT 1", wait="0s")
    assert submitted.status_code == 200
    poll = requests.get(f"{databricks.base_url}{STATEMENTS}/{submitted.json()['statement_id']}",
                        headers={"Authorization": f"Bearer {databricks.token}"})
    assert poll.status_code == 503 and poll.headers["Retry-After"] == "1"


def _oauth_token(dbx) -> str:
    return requests.post(dbx.token_url, auth=(dbx.client_id, dbx.client_secret),
                         data={"grant_type": "client_credentials", "scope": "all-apis"}).json()["access_token"]


def test_an_oauth_token_that_expires_early_is_refused_until_a_new_one_is_used(databricks):
    token = _oauth_token(databricks)
    databricks.add_fault("token_expired", status=401)
    expired = _submit(databricks, "SELECT 1", token=token)
    assert (expired.status_code, expired.json()) == (401, {"error_code": 401, "message": "Token is expired"})
    assert _submit(databricks, "SELECT 1", token=token).status_code == 401  # expired for good
    assert _submit(databricks, "SELECT 1", token=_oauth_token(databricks)).status_code == 200

    other = _oauth_token(databricks)
    databricks.add_fault("token_expired")  # as the workspace refuses expired tokens by default
    assert _submit(databricks, "SELECT 1", token=other).json() == {"error_code": 403, "message": "JWT has expired"}
    databricks.change_settings(expired_token_status=401)
    assert _submit(databricks, "SELECT 1", token=other).json() == {"error_code": 401, "message": "Token is expired"}


def test_an_expired_personal_access_token_cannot_be_renewed(databricks):
    databricks.add_fault("token_expired")
    assert _submit(databricks, "SELECT 1").json() == {"error_code": 403, "message": "Invalid access token."}
    assert _submit(databricks, "SELECT 1").status_code == 403


def test_random_faults_at_configured_rates(databricks):
    assert databricks.admin("GET", "faults")["rates"]["statement_failed"] == 0.0
    rates = databricks.fault_rates(statement_failed=1.0)
    assert rates["statement_failed"] == 1.0 and databricks.admin("GET", "faults")["rates"] == rates
    for _ in range(3):
        error = _submit(databricks, "SELECT 1").json()["status"]["error"]
        assert error["error_code"] in ("ABORTED", "TEMPORARILY_UNAVAILABLE")
    assert requests.get(databricks.base_url + "/api/2.0/sql/warehouses",  # not a statement: spared
                        headers={"Authorization": f"Bearer {databricks.token}"}).status_code == 200
    databricks.fault_rates(statement_failed=0.0, token_expired=1.0)
    assert _submit(databricks, "SELECT 1").status_code == 200  # a personal access token does not expire in a run
    token = _oauth_token(databricks)  # the token endpoint is spared
    assert [_submit(databricks, "SELECT 1", token=token).status_code for _ in range(6)] == [200] * 5 + [403]
    # a token expires at the end of its life: once it has served a few requests
    databricks.fault_rates(token_expired=0.0, rate_limit=0.5, status_5xx=0.5)
    answers = {_submit(databricks, "SELECT 1").status_code for _ in range(20)}
    assert answers <= {429, 500, 502, 503} and 429 in answers
    with pytest.raises(RuntimeError, match="add up to at most 1"):
        databricks.fault_rates(drop=0.5)
    with pytest.raises(RuntimeError, match="unknown fault rates: typo"):
        databricks.fault_rates(typo=0.1)


def test_random_fault_rates_from_the_command_line(tmp_path):
    from mlc_sandbox.databricks import DatabricksSandboxProcess

    with DatabricksSandboxProcess(data_dir=tmp_path, fault_rate_429=1.0, fault_seed=7) as dbx:
        assert dbx.admin("GET", "faults")["rates"]["rate_limit"] == 1.0
        limited = _submit(dbx, "SELECT 1")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"


def test_a_statement_can_be_slow_and_lose_its_answer_and_refusals_spare_statement_faults(databricks):
    _table(databricks)
    databricks.add_fault("rate_limit")  # refused before the statement exists: the statement fault waits
    databricks.fail_statements(statement_contains="INSERT")
    assert _submit(databricks, "INSERT INTO main.default.t VALUES (1, 'a')").status_code == 429
    assert _submit(databricks, "INSERT INTO main.default.t VALUES (1, 'a')").json()["status"]["state"] == "FAILED"

    databricks.slow_down(1, statement_contains="INSERT")
    databricks.add_fault("drop_response", statement_contains="INSERT")
    with pytest.raises(requests.ConnectionError):
        _submit(databricks, "INSERT INTO main.default.t VALUES (2, 'b')")
    assert databricks.requests()[-1]["fault"] == "slow_statement+drop_response"
    assert databricks.sql("SELECT k FROM uc_main.default.t") == [["2"]]


def test_a_slowed_down_statement_released_goes_on_and_meets_what_committed_meanwhile(databricks):
    """Two MERGEs of the same new key: the first, slowed down, has done its work and waits to commit when the second
    commits; released, it meets that commit and writes nothing, as Delta's optimistic concurrency has it."""
    _table(databricks)
    merge = ("MERGE INTO main.default.t AS t USING (SELECT 1 AS k, '{v}' AS v) AS s ON t.k = s.k "
             "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    databricks.slow_down(600, statement_contains="orphan")  # a statement a killed client left running
    orphan = _submit(databricks, merge.format(v="orphan"), wait="0s").json()["statement_id"]
    while not databricks.admin("GET", f"statements/{orphan}")["duckdb"]:  # its work done, waiting to commit
        time.sleep(0.05)
    assert _submit(databricks, merge.format(v="rerun")).json()["status"]["state"] == "SUCCEEDED"
    assert databricks.release_statement(orphan)["statement_id"] == orphan
    while _state(databricks, orphan)["state"] == "RUNNING":
        time.sleep(0.05)
    assert "[DELTA_CONCURRENT_APPEND]" in _state(databricks, orphan)["error"]["message"]
    assert databricks.sql("SELECT k, v FROM uc_main.default.t") == [["1", "rerun"]]
