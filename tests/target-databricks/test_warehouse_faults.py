"""The warehouse load path under each fault the Databricks stand-in injects, through real HTTP: the table ends exact
(nothing lost, nothing twice), STATE comes only for what was written, and the audit trail says what happened.

Each test loads 40 invoices in MERGE statements of at most 4000 bytes (several statements per batch), with faults
aimed at the statements, polls and tokens.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from mlc_sandbox.databricks import DatabricksSandbox
from ml_connector_core.audit import AuditTrail
from support.singer import record_message, run_target, schema_message, state_message
from test_delta_load import INVOICE, KEYS, invoice

STREAM = "posting_proposals"
TABLE = "main.ifscloud.posting_proposals"
STATE = {"bookmarks": {STREAM: {"replication_key_value": "2026-01-01T00:00:00Z"}}}
STATEMENTS = "/api/2.0/sql/statements"
MERGE = "MERGE INTO"
DENIED = ("[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have MODIFY on Table "
          "'main.ifscloud.posting_proposals'. SQLSTATE: 42501")


@pytest.fixture
def databricks():
    with DatabricksSandbox() as stand_in:
        yield stand_in


def config(databricks, tmp_path, *, oauth: bool = False, **extra) -> dict:
    credentials = ({"client_id": databricks.client_id, "client_secret": databricks.client_secret} if oauth
                   else {"token": databricks.token})
    return {"load_method": "warehouse", "workspace_host": databricks.base_url, "warehouse_id": databricks.warehouse_id,
            "catalog": "main", "max_statement_bytes": 4000, "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
            **credentials, **extra}


def invoices(count: int = 40, properties: dict | None = None, **values) -> list[dict]:
    records = [{**invoice(f"F{n:03}", f"{n}.5", "2026-01-01T00:00:00Z"), **values} for n in range(count)]
    messages = [schema_message(STREAM, properties or INVOICE, KEYS, bookmark="Rowversion")]
    return messages + [record_message(STREAM, r) for r in records] + [state_message(STATE)]


def assert_exact(databricks, count: int = 40) -> None:
    """Every invoice once, with its amount: nothing lost, nothing duplicated."""
    rows = databricks.sql(f"SELECT InvoiceNo, GrossAmount FROM {TABLE} ORDER BY InvoiceNo", dialect="databricks")
    assert [r[0] for r in rows] == [f"F{n:03}" for n in range(count)]
    assert [Decimal(r[1]) for r in rows] == [Decimal(f"{n}.5") for n in range(count)]


def audited(cfg) -> dict[str, int]:
    """Outcomes of the latest run's entries: {"insert": 40} when every record was written once."""
    trail = AuditTrail(cfg["audit_url"])
    run = trail.runs()[0]
    counts: dict[str, int] = {}
    for entry in trail.entries(run_id=run.run_id):
        label = entry.operation if entry.outcome == "succeeded" else "failed"
        counts[label] = counts.get(label, 0) + 1
    return counts


def statements(databricks, containing: str = MERGE) -> list[dict]:
    return [s for s in databricks.statements() if containing in s["statement"]]


def sent(statement: dict) -> tuple:
    """What a statement request carried: its text and its parameters (the values)."""
    return statement["statement"], [tuple(sorted(p.items())) for p in statement["parameters"]]


def test_throttled_and_unavailable_requests_are_retried_after_retry_after(databricks, tmp_path):
    cfg = config(databricks, tmp_path)
    databricks.add_fault("rate_limit", count=1, retry_after=6, statement_contains="CREATE SCHEMA")
    databricks.add_fault("status", count=2, status=503, retry_after=1, statement_contains="CREATE TABLE")
    databricks.add_fault("status", count=1, status=500, statement_contains="DESCRIBE")
    databricks.add_fault("status", count=1, status=502, statement_contains="SELECT")
    databricks.add_fault("status", count=1, status=504, statement_contains=MERGE)
    databricks.add_fault("drop", count=1, statement_contains=MERGE)  # closed before the request is carried out
    run = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    assert re.search(r"Waiting [67]\.\d s before retrying POST http://127\.0\.0\.1:\d+/api/2\.0/sql/statements "
                     r"\(HTTP 429, Retry-After 6\)", run.stderr)  # the workspace's own wait, not a shorter one
    answered = [r["status"] for r in databricks.requests() if r["fault"]]
    assert answered == [429, 503, 503, 500, 502, 504, None]  # every fault was met, and every one got past


def test_statements_that_fail_for_a_transient_reason_run_again_without_duplicates(databricks, tmp_path):
    cfg = config(databricks, tmp_path)
    databricks.fail_statements(count=2, statement_contains=MERGE)  # ABORTED [DELTA_CONCURRENT_APPEND]
    databricks.fail_statements(count=1, error_code="TEMPORARILY_UNAVAILABLE", statement_contains="DESCRIBE")
    run = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    merges = statements(databricks)
    assert [m["state"] for m in merges[:3]] == ["FAILED", "FAILED", "SUCCEEDED"]
    assert sent(merges[0]) == sent(merges[1]) == sent(merges[2])  # the same MERGE, run again
    assert "[DELTA_CONCURRENT_APPEND]" in merges[0]["error"]["message"]
    assert [s["state"] for s in statements(databricks, "DESCRIBE")] == ["FAILED", "SUCCEEDED"]
    assert "failed for a transient reason (ABORTED: [DELTA_CONCURRENT_APPEND]" in run.stderr


def test_statements_whose_answer_was_lost_are_sent_again_and_merge_nothing_twice(databricks, tmp_path):
    cfg = config(databricks, tmp_path)
    databricks.add_fault("drop_response", count=2, statement_contains=MERGE)  # ran, then the connection closed
    databricks.add_fault("drop_response", count=1, statement_contains="CREATE TABLE")
    run = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    merges = statements(databricks)
    assert sent(merges[0]) == sent(merges[1])  # the first MERGE ran twice ...
    assert all(m["state"] == "SUCCEEDED" for m in merges)  # ... and its second run found its rows

    # A column added by a statement whose answer was lost is there when the ALTER is sent again
    grown = {**INVOICE, "Cf_Project": {"type": ["string", "null"]}}
    databricks.add_fault("drop_response", count=1, statement_contains="ALTER TABLE")
    rerun = run_target(tmp_path, cfg, invoices(properties=grown, Cf_Project="PRJ-1"))
    assert rerun.states == [STATE] and audited(cfg) == {"update": 40}
    assert [a["state"] for a in statements(databricks, "ALTER TABLE")] == ["SUCCEEDED", "FAILED"]
    assert statements(databricks, "ALTER TABLE")[1]["error"]["message"].startswith("[FIELDS_ALREADY_EXISTS]")
    assert databricks.sql(f"SELECT count(*), count(DISTINCT InvoiceNo), min(Cf_Project) FROM {TABLE}",
                          dialect="databricks") == [["40", "40", "PRJ-1"]]


def test_a_merge_still_running_when_its_answer_is_lost_is_not_written_twice(databricks, tmp_path):
    """The request waits 5 s, the MERGE takes longer, and the answer (RUNNING) is lost: the target sends the MERGE
    again while the first copy still runs. As on Delta, the copy that commits second finds the table changed since it
    began and fails ABORTED, writing nothing."""
    import time

    cfg = config(databricks, tmp_path, statement_wait_timeout_seconds=5)
    databricks.slow_down(8, count=1, statement_contains=MERGE)
    databricks.add_fault("drop_response", count=1, statement_contains=MERGE)
    run = run_target(tmp_path, cfg, invoices())
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    first = statements(databricks)[0]
    while databricks.admin("GET", f"statements/{first['statement_id']}")["state"] == "RUNNING":
        time.sleep(0.2)  # the lost copy ends on its own
    copies = [s for s in statements(databricks) if sent(s) == sent(first)]
    assert sorted(s["state"] for s in copies) == ["FAILED", "SUCCEEDED"]
    assert "[DELTA_CONCURRENT_APPEND]" in databricks.admin("GET", f"statements/{first['statement_id']}")["error"][
        "message"]
    assert_exact(databricks)


def test_slow_statements_are_polled_to_their_end(databricks, tmp_path):
    cfg = config(databricks, tmp_path, statement_wait_timeout_seconds=5)
    databricks.slow_down(6.5, count=1, statement_contains=MERGE)  # RUNNING past the 5 s the request waits
    run = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    slow = statements(databricks)[0]["statement_id"]
    polls = [r for r in databricks.requests() if r["path"] == f"{STATEMENTS}/{slow}"]
    assert len(polls) >= 2 and all(r["status"] == 200 for r in polls)


def test_expiring_oauth_tokens_are_renewed(databricks, tmp_path):
    cfg = config(databricks, tmp_path, oauth=True)
    databricks.add_fault("token_expired", count=1, status=401, statement_contains="DESCRIBE")  # "Token is expired"
    databricks.add_fault("token_expired", count=1, statement_contains=MERGE)  # 403 "JWT has expired"
    run = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    refused = [r["status"] for r in databricks.requests() if r["path"].startswith("/api/") and r["status"] != 200]
    assert refused == [401, 403]  # each expired token refused once, then a new one used
    assert len([r for r in databricks.requests() if r["path"] == "/oidc/v1/token"]) >= 3
    assert run.stderr.count("Databricks refused the access token") == 2


def test_an_expired_personal_access_token_stops_the_run_naming_the_setting(databricks, tmp_path):
    cfg = config(databricks, tmp_path)
    databricks.add_fault("token_expired", count=1, statement_contains=MERGE)
    run = run_target(tmp_path, cfg, invoices(), check=False)
    assert run.returncode == 1 and run.states == []
    assert "stream 'posting_proposals': the batch of 40 records" in run.stderr
    assert "HTTP 403: Invalid access token. (the personal access token in setting 'token' was refused" in run.stderr
    assert databricks.token not in run.stderr
    assert audited(cfg) == {"failed": 40}


def test_a_permanent_statement_failure_stops_the_batch_naming_stream_and_statement(databricks, tmp_path):
    cfg = config(databricks, tmp_path, max_tries=3)
    databricks.fail_statements(count=1, error_code="BAD_REQUEST", message=DENIED, statement_contains=MERGE)
    run = run_target(tmp_path, cfg, invoices(), check=False)
    assert run.returncode == 1 and run.states == []  # nothing reported written
    failed = statements(databricks)[0]
    assert len(statements(databricks)) == 1  # not run again, nor the batch's other MERGEs
    line = next(line for line in run.stderr.splitlines() if "ERROR" in line and "was not written" in line)
    assert "stream 'posting_proposals': the batch of 40 records for `main`.`ifscloud`.`posting_proposals`" in line
    assert f"statement {failed['statement_id']} FAILED: BAD_REQUEST: {DENIED}; the statement: MERGE INTO " in line
    assert audited(cfg) == {"failed": 40}
    assert DENIED in next(iter(AuditTrail(cfg["audit_url"]).failures())).error

    # A transient failure that outlasts max_tries stops the run as well, saying how often it was tried
    databricks.fail_statements(count=3, statement_contains=MERGE)
    kept_failing = run_target(tmp_path, cfg, invoices(), check=False)
    assert kept_failing.returncode == 1 and kept_failing.states == []
    assert "FAILED (after 3 tries): ABORTED: [DELTA_CONCURRENT_APPEND]" in kept_failing.stderr

    rerun = run_target(tmp_path, cfg, invoices())  # once the warehouse lets it, the same input loads exactly
    assert_exact(databricks)
    assert rerun.states == [STATE] and audited(cfg) == {"insert": 40}


def test_random_faults_of_every_kind_at_once(databricks, tmp_path):
    """Four batches through a workspace that throttles, fails, loses answers, fails statements and expires tokens."""
    cfg = config(databricks, tmp_path, oauth=True, batch_size_rows=25, max_statement_bytes=2000)
    databricks.fault_rates(status_5xx=0.04, rate_limit=0.04, drop=0.03, drop_response=0.04, statement_failed=0.08,
                           token_expired=0.03)
    run = run_target(tmp_path, cfg, invoices(100))
    assert_exact(databricks, 100)
    assert run.states[-1] == STATE and audited(cfg) == {"insert": 100}
    met = [r["fault"] for r in databricks.requests() if r["fault"]]
    assert len(met) >= 3, met  # the faults did happen
