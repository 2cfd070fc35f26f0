"""The warehouse path with batches staged in a Unity Catalog volume (warehouse_load_method volume), through real HTTP
against the Databricks stand-in: exact values, updates MERGEd, nothing twice on a rerun or after a kill mid-batch,
faults on uploads, deletes and statements, and a clear error naming staging_volume when the volume cannot be used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from decimal import Decimal

import pytest

from mlc_sandbox.databricks import DatabricksSandbox
from support.singer import BIN, _encode, record_message, run_target, run_target_watching_states, schema_message, \
    state_message
from test_delta_load import INVOICE, KEYS, invoice
from test_warehouse_faults import assert_exact, audited

STREAM = "posting_proposals"
TABLE = "main.ifscloud.posting_proposals"
VOLUME = "main.staging.mlc"
STATE = {"bookmarks": {STREAM: {"replication_key_value": "2026-01-01T00:00:00Z"}}}
FILES = "/api/2.0/fs/files/"
# Every kind of value a finance table holds, with the hard cases: 24 decimals, a timestamp with an offset and
# microseconds, quotes and backslashes, non-ASCII, NULLs, nested values as JSON text
ORDER = {
    "OrderNo": {"type": ["string"]},
    "Amount": {"type": ["number", "null"], "x-sql-datatype": "decimal", "x-sql-datatype-properties": {"precision": 38}},
    "Qty": {"type": ["number", "null"], "x-sql-datatype-properties": {"precision": 12, "scale": 4}},
    "Lines": {"type": ["integer", "null"]},
    "Paid": {"type": ["boolean", "null"]},
    "OrderDate": {"type": ["string", "null"], "format": "date"},
    "ChangedAt": {"type": ["string"], "format": "date-time"},
    "Note": {"type": ["string", "null"]},
    "Tags": {"type": ["array", "null"], "items": {"type": "string"}},
}


@pytest.fixture
def databricks():
    with DatabricksSandbox(volumes=(VOLUME,)) as stand_in:
        yield stand_in


def config(databricks, tmp_path, *, oauth: bool = False, **extra) -> dict:
    credentials = ({"client_id": databricks.client_id, "client_secret": databricks.client_secret} if oauth
                   else {"token": databricks.token})
    return {"load_method": "warehouse", "warehouse_load_method": "volume", "staging_volume": VOLUME,
            "workspace_host": databricks.base_url, "warehouse_id": databricks.warehouse_id, "catalog": "main",
            "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **credentials, **extra}


def invoices(count: int = 40, state: dict | None = STATE, **values) -> list[dict]:
    records = [{**invoice(f"F{n:03}", f"{n}.5", "2026-01-01T00:00:00Z"), **values} for n in range(count)]
    messages = [schema_message(STREAM, INVOICE, KEYS, bookmark="Rowversion")]
    return messages + [record_message(STREAM, r) for r in records] + ([state_message(state)] if state else [])


def statements(databricks, containing: str) -> list[dict]:
    return [s for s in databricks.statements() if containing in s["statement"]]


def orders(count: int, version: str = "2026-03-29T01:30:00.123456+02:00", **changes) -> list[dict]:
    return [{"OrderNo": f"PO{n:04}", "Amount": Decimal(f"{n:02}345678901234.123456789012345678901234"),
             "Qty": Decimal("1.0005") if n % 3 else None, "Lines": n, "Paid": n % 2 == 0,
             "OrderDate": "2026-02-28", "ChangedAt": version, "Note": "O'Brien \\ ünïcode" if n % 2 else None,
             "Tags": ["a", "b"] if n % 4 == 0 else None, **changes} for n in range(count)]


def order_messages(records: list[dict]) -> list[dict]:
    return ([schema_message("purchase_orders", ORDER, ["OrderNo"], bookmark="ChangedAt")]
            + [record_message("purchase_orders", r) for r in records])


def stored_orders(databricks) -> list[list]:
    return databricks.sql("SELECT OrderNo, Amount, Qty, Lines, Paid, OrderDate, ChangedAt, Note, Tags "
                          "FROM main.ifscloud.purchase_orders ORDER BY OrderNo", dialect="databricks")


def test_the_volume_path_loads_exact_values_merges_updates_and_writes_nothing_twice(databricks, tmp_path):
    cfg = config(databricks, tmp_path, batch_size_rows=30)
    run_target(tmp_path, cfg, order_messages(orders(70)))
    rows = stored_orders(databricks)
    assert len(rows) == 70
    assert rows[7] == ["PO0007", "7345678901234.123456789012345678901234", "1.0005", "7", "false", "2026-02-28",
                       "2026-03-28T23:30:00.123456Z", "O'Brien \\ ünïcode", None]
    assert rows[9][2] is None and rows[8][7] is None and rows[8][8] == '["a","b"]'
    assert [c["type"] for c in databricks.tables()[0]["columns"][:7]] == [
        "string", "decimal(38,24)", "decimal(12,4)", "bigint", "boolean", "date", "timestamp"]

    # The same values through warehouse_load_method statements (typed parameters) land exactly alike
    with DatabricksSandbox() as other:
        run_target(tmp_path, {**config(other, tmp_path), "warehouse_load_method": "statements",
                              "audit_url": f"sqlite:///{tmp_path / 'other.sqlite'}"}, order_messages(orders(70)))
        assert stored_orders(other) == rows

    # Batches went as files, read by read_files; no value is in any statement's text or parameters
    merges = statements(databricks, "MERGE INTO")
    assert len(merges) == 3 and all("read_files('/Volumes/main/staging/mlc/ifs-to-databricks/" in m["statement"]
                                    for m in merges)
    assert all(not s["parameters"] and "O\\'Brien" not in s["statement"] for s in databricks.statements())
    uploads = [r for r in databricks.requests() if r["method"] == "PUT" and r["path"].startswith(FILES)]
    assert len(uploads) == 6 and all(r["status"] == 204 for r in uploads)  # per batch its keys, then its rows
    assert databricks.volume_files(VOLUME) == []  # every staged file deleted once used

    # A rerun of the same input writes nothing; newer versions are MERGEd, an older one is not
    loaded_at = databricks.sql("SELECT max(_mlc_loaded_at) FROM main.ifscloud.purchase_orders", dialect="databricks")
    run_target(tmp_path, cfg, order_messages(orders(70)))
    assert audited(cfg) == {"unchanged": 70}
    assert stored_orders(databricks) == rows
    newer = orders(3, version="2026-04-01T00:00:00Z", Note="changed", Amount=Decimal("0.000000000000000000000001"))
    older = [{**orders(4, version="2025-01-01T00:00:00Z")[3], "Note": "stale"}]
    added = [{**orders(71)[70], "OrderNo": "PO9999"}]
    run_target(tmp_path, cfg, order_messages(newer + older + added))
    assert audited(cfg) == {"update": 3, "skipped_duplicate": 1, "insert": 1}
    after = stored_orders(databricks)
    assert len(after) == 71 and [r[1] for r in after[:3]] == ["0.000000000000000000000001"] * 3
    assert [r[7] for r in after[:4]] == ["changed", "changed", "changed", rows[3][7]]
    assert databricks.sql("SELECT count(*) FROM main.ifscloud.purchase_orders WHERE _mlc_loaded_at > "
                          f"TIMESTAMP '{loaded_at[0][0].rstrip('Z')}'", dialect="databricks") == [["4"]]
    assert databricks.volume_files(VOLUME) == []


def test_uploads_deletes_and_statements_under_faults_load_exactly(databricks, tmp_path):
    cfg = config(databricks, tmp_path, batch_size_rows=20)
    databricks.add_fault("rate_limit", count=1, retry_after=1, path_contains=FILES, method="PUT")
    databricks.add_fault("status", count=2, status=503, path_contains=FILES, method="PUT")
    databricks.add_fault("drop", count=1, path_contains=FILES, method="PUT")  # closed before it was carried out
    databricks.add_fault("drop_response", count=2, path_contains=FILES, method="PUT")  # uploaded, answer lost
    databricks.add_fault("status", count=1, status=500, path_contains=FILES, method="DELETE")
    databricks.add_fault("drop_response", count=1, path_contains=FILES, method="DELETE")  # deleted, answer lost
    databricks.add_fault("drop_response", count=1, statement_contains="MERGE INTO")  # ran, answer lost
    databricks.fail_statements(count=1, statement_contains="MERGE INTO")  # ABORTED by a concurrent writer
    databricks.fail_statements(count=1, error_code="TEMPORARILY_UNAVAILABLE", statement_contains="JOIN (SELECT")
    run = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert run.states == [STATE] and audited(cfg) == {"insert": 40}
    met = [(r["method"], r["fault"], r["status"]) for r in databricks.requests() if r["fault"]]
    assert sorted(m for m in met if m[0] == "PUT") == [  # every fault met, and every one got past
        ("PUT", "drop", None), ("PUT", "drop_response", None), ("PUT", "drop_response", None),
        ("PUT", "rate_limit", 429), ("PUT", "status", 503), ("PUT", "status", 503)]
    assert sorted(m for m in met if m[0] == "DELETE") == [("DELETE", "drop_response", None), ("DELETE", "status", 500)]
    # the delete sent again after its lost answer found the file gone, which is what it wanted
    deletes = [r for r in databricks.requests() if r["method"] == "DELETE"]
    assert [r["status"] for r in deletes].count(404) == 1
    # the first MERGE failed ABORTED and its answer was lost: it ran again; then the second batch's
    assert [s["state"] for s in statements(databricks, "MERGE INTO")] == ["FAILED", "SUCCEEDED", "SUCCEEDED"]
    assert databricks.volume_files(VOLUME) == []


def test_random_faults_of_every_kind_on_files_and_statements(databricks, tmp_path):
    cfg = config(databricks, tmp_path, oauth=True, batch_size_rows=25)
    databricks.fault_rates(status_5xx=0.04, rate_limit=0.04, drop=0.03, drop_response=0.05, statement_failed=0.08,
                           token_expired=0.03)
    run = run_target(tmp_path, cfg, invoices(100))
    assert_exact(databricks, 100)
    assert run.states[-1] == STATE and audited(cfg) == {"insert": 100}
    met = [r for r in databricks.requests() if r["fault"]]
    assert any(r["path"].startswith(FILES) for r in met), met  # the uploads and deletes met faults too
    assert databricks.volume_files(VOLUME) == []


def test_state_follows_each_batch_the_warehouse_holds(databricks, tmp_path):
    cfg = config(databricks, tmp_path, batch_size_rows=3)
    records = [invoice(f"C{n:02}", str(n), f"2026-01-01T00:00:{n:02}Z") for n in range(10)]
    messages = [schema_message(STREAM, INVOICE, KEYS, bookmark="Rowversion")]
    for n, record in enumerate(records):
        messages += [record_message(STREAM, record),
                     state_message({"bookmarks": {STREAM: {"replication_key_value": str(n)}}})]
    emitted = []

    def merged_before_emitted(state: dict) -> bool:
        n = int(state["bookmarks"][STREAM]["replication_key_value"])
        held = {row[0] for row in databricks.sql(f"SELECT InvoiceNo FROM {TABLE}", dialect="databricks")}
        assert {r["InvoiceNo"] for r in records[:n + 1]} <= held, n
        emitted.append(n)
        return False

    run = run_target_watching_states(tmp_path, cfg, messages, executable="target-databricks",
                                     on_state=merged_before_emitted)
    assert run.returncode == 0, run.stderr[-3000:]
    assert emitted[-1] == len(records) - 1
    assert max(b - a for a, b in zip([-1, *emitted], emitted)) <= 3, emitted


def start_target(tmp_path, cfg: dict, messages: list[dict]) -> subprocess.Popen:
    config_path = tmp_path / "killed-config.json"
    config_path.write_text(json.dumps(cfg))
    process = subprocess.Popen([str(BIN / "target-databricks"), "--config", str(config_path)], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)

    def feed() -> None:
        try:
            process.stdin.write("".join(_encode(m) + "\n" for m in messages))
            process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    threading.Thread(target=feed, daemon=True).start()
    return process


def wait_for(condition, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_run_killed_while_its_merge_runs_duplicates_nothing_and_the_rerun_removes_its_staged_file(
        databricks, tmp_path):
    """The MERGE of the first batch (keys the table does not hold yet) runs on in the warehouse after its run was
    killed; the rerun looks up the same keys before that MERGE commits, and MERGEs them too. When the killed run's MERGE
    then comes to commit, it meets the rerun's (ABORTED [DELTA_CONCURRENT_APPEND]) and writes nothing: each key once."""
    cfg = config(databricks, tmp_path, statement_wait_timeout_seconds=5)
    databricks.slow_down(600, count=1, statement_contains="MERGE INTO")  # until released below
    killed = start_target(tmp_path, cfg, invoices())
    orphan = wait_for(lambda: next((s for s in statements(databricks, "MERGE INTO")
                                    if s["state"] == "RUNNING" and s["duckdb"]), None),  # its work done
                      "the first MERGE running, waiting to commit")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    leftover = databricks.volume_files(VOLUME)
    assert len(leftover) == 1 and leftover[0].endswith("-rows.parquet")  # the batch the killed run staged

    rerun = run_target(tmp_path, cfg, invoices())
    assert rerun.states == [STATE] and audited(cfg) == {"insert": 40}  # the killed run's MERGE has not committed
    assert "Removed 1 staged file(s) that earlier runs of this flow left in" in rerun.stderr
    assert databricks.volume_files(VOLUME) == []
    assert_exact(databricks)

    databricks.release_statement(orphan["statement_id"])
    ended = wait_for(lambda: (lambda s: s if s["state"] != "RUNNING" else None)(
        databricks.admin("GET", f"statements/{orphan['statement_id']}")), "the killed run's MERGE ending")
    assert ended["state"] == "FAILED" and "[DELTA_CONCURRENT_APPEND]" in ended["error"]["message"]
    assert_exact(databricks)


def test_a_missing_volume_stops_the_run_naming_the_setting(databricks, tmp_path):
    cfg = config(databricks, tmp_path, staging_volume="main.staging.nope")
    run = run_target(tmp_path, cfg, invoices(), check=False)
    assert run.returncode == 1 and run.states == []
    line = next(line for line in run.stderr.splitlines() if "was not written" in line)
    assert "stream 'posting_proposals': the batch of 40 records for `main`.`ifscloud`.`posting_proposals`" in line
    assert "StagingVolumeError: staging_volume 'main.staging.nope': the volume does not exist" in line
    assert "HTTP 404: NOT_FOUND: Volume `main`.`staging`.`nope` does not exist." in line
    assert "Create it (CREATE VOLUME main.staging.nope)" in line
    assert audited(cfg) == {"failed": 40}
    assert databricks.token not in run.stderr


def test_a_volume_this_principal_may_not_write_or_read_stops_the_run_naming_the_setting(databricks, tmp_path):
    cfg = config(databricks, tmp_path)
    databricks.grant_volume(VOLUME, "READ VOLUME")
    run = run_target(tmp_path, cfg, invoices(), check=False)
    assert run.returncode == 1 and run.states == []
    line = next(line for line in run.stderr.splitlines() if "was not written" in line)
    assert "staging_volume 'main.staging.mlc': this principal may not write files in the volume" in line
    assert "HTTP 403: PERMISSION_DENIED: User does not have WRITE VOLUME on Volume 'main.staging.mlc'." in line
    assert "Grant it READ VOLUME and WRITE VOLUME on main.staging.mlc" in line

    databricks.grant_volume(VOLUME, "WRITE VOLUME")  # writing files needs READ VOLUME as well
    run = run_target(tmp_path, cfg, invoices(), check=False)
    assert run.returncode == 1 and run.states == []
    line = next(line for line in run.stderr.splitlines() if "was not written" in line)
    assert "staging_volume 'main.staging.mlc': this principal may not write files in the volume" in line
    assert "User does not have READ VOLUME on Volume 'main.staging.mlc'." in line

    databricks.grant_volume(VOLUME, "READ VOLUME", "WRITE VOLUME")
    rerun = run_target(tmp_path, cfg, invoices())
    assert_exact(databricks)
    assert rerun.states == [STATE]


@pytest.mark.parametrize("volume, message", [
    (None, "warehouse_load_method volume needs staging_volume"),
    ("main.staging", "staging_volume names a Unity Catalog volume as catalog.schema.volume, not 'main.staging'"),
])
def test_staging_volume_is_required_and_named_whole(databricks, tmp_path, volume, message):
    cfg = {k: v for k, v in config(databricks, tmp_path, staging_volume=volume).items() if v is not None}
    run = run_target(tmp_path, cfg, invoices(), check=False)
    assert run.returncode != 0 and run.states == []
    assert message in run.stderr
