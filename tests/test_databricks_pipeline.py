"""IFS Cloud → Databricks end to end through Meltano: tables complete, reruns move only changes, a killed load loses
and duplicates nothing, and the audit trail says what happened to every record."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ml_connector_core.audit import AuditTrail
from support.delta import duckdb_with_delta
from support.ifs import CLIENT_SECRET
from support.sealed import sealed_env
from support.singer import BIN

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

ROOT = Path(__file__).resolve().parent.parent
STATE_ID = "sandbox:tap-ifscloud-to-target-databricks"
SETS = {
    "purchase_orders": ("PurchaseOrderHandling", "PurchaseOrderSet", "OrderNo"),
    "suppliers": ("SupplierHandling", "SupplierInfoGeneralSet", "SupplierId"),
    "posting_proposals": ("ManSuppInvoiceHandling", "PostingProposalHeadSet", "Company, InvoiceNo"),
    "voucher_rows": ("VoucherHandling", "VoucherRowSet", "Company, VoucherType, AccountingYear, VoucherNo, RowNo"),
}


def pipeline_env(ifs, tmp_path) -> dict:
    return sealed_env({
        **os.environ,
        "TAP_IFSCLOUD_BASE_URL": ifs.base_url,
        "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TAP_IFSCLOUD_LOOKBACK_SECONDS": "0",
        "TARGET_DATABRICKS_DELTA_ROOT": str(tmp_path / "delta"),
        "TARGET_DATABRICKS_AUDIT_URL": f"sqlite:///{tmp_path / 'audit.sqlite'}",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
    })


def meltano_run(env: dict, *options: str) -> str:
    completed = subprocess.run([str(BIN / "meltano"), "run", *options, "tap-ifscloud", "target-databricks"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stderr


def counts(tmp_path, table: str, keys: str) -> tuple[int, int]:
    location = tmp_path / "delta" / "ifscloud" / table
    return duckdb_with_delta().execute(
        f"SELECT count(*), count(DISTINCT ({keys})) FROM delta_scan('{location}')").fetchone()


def test_load_then_incremental_rerun_moves_only_the_changes(ifs, tmp_path):
    env = pipeline_env(ifs, tmp_path)
    log = meltano_run(env)
    for table, (projection, entity_set, keys) in SETS.items():
        assert counts(tmp_path, table, keys) == (ifs.count(projection, entity_set),) * 2, table
    # The target's closing line counts what it wrote (every row of every table), as every ml-connector target's does.
    tables = sorted((tmp_path / "delta" / "ifscloud").iterdir())
    rows = sum(duckdb_with_delta().execute(f"SELECT count(*) FROM delta_scan('{t}')").fetchone()[0] for t in tables)
    assert len(tables) == 11 and f"Writes: {rows} insert (audit run" in log, log[-3000:]

    trail = AuditTrail(env["TARGET_DATABRICKS_AUDIT_URL"])
    first = trail.runs(limit=1)[0]
    supplier = next(e for e in trail.entries(run_id=first.run_id, stream="suppliers"))
    assert supplier.operation == "insert" and supplier.payload["SupplierId"] == supplier.key["SupplierId"]

    ifs.change("SupplierInfoGeneralSet", {"SupplierId": supplier.key["SupplierId"]}, {"Name": "Renamed in IFS AB"})
    meltano_run(env)
    second = trail.runs(limit=1)[0]
    assert second.run_id != first.run_id
    written = [e for e in trail.entries(run_id=second.run_id) if e.operation in ("insert", "update")]
    assert [(e.stream, e.key, e.operation) for e in written] == [("suppliers", supplier.key, "update")]
    location = tmp_path / "delta" / "ifscloud" / "suppliers"
    name = duckdb_with_delta().execute(
        f"SELECT Name FROM delta_scan('{location}') WHERE SupplierId = ?", [supplier.key["SupplierId"]]).fetchone()[0]
    assert name == "Renamed in IFS AB"
    for table, (projection, entity_set, keys) in SETS.items():
        assert counts(tmp_path, table, keys) == (ifs.count(projection, entity_set),) * 2, table


def test_a_load_killed_midway_resumes_from_its_last_batch_and_loses_and_duplicates_nothing(start_ifs, tmp_path):
    """SIGKILL of the whole pipeline once Meltano has saved a checkpoint in the middle of a stream: the saved state
    covers exactly what the tables hold (never a row beyond), the rerun re-reads at most one batch per stream (plus the
    rows stamped with a bookmark's own second), and the tables end exact."""
    batch = 200
    ifs = start_ifs(scale=600)
    env = {**pipeline_env(ifs, tmp_path), "TARGET_DATABRICKS_BATCH_SIZE_ROWS": str(batch), "TAP_IFSCLOUD_PAGE_SIZE": "100"}
    lines = "purchase_order_lines"
    ifs.fault("delay", 10_000, delay_seconds=0.1, path_contains=ALL_SETS[lines][1])  # a stream long enough to stop in
    process = subprocess.Popen([str(BIN / "meltano"), "run", "tap-ifscloud", "target-databricks"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    source = {name: ifs.all_rows(projection, entity_set, keys) for name, (projection, entity_set, keys, _) in ALL_SETS.items()}
    last_change = max(parse_time(row[ALL_SETS[lines][3]]) for row in source[lines])
    # Kill as soon as Meltano has saved a checkpoint inside the lines stream (before this work, it saved none).
    while not (bookmark := saved_bookmarks(tmp_path).get(lines)) or parse_time(bookmark) >= last_change:
        assert process.poll() is None, "the load ended before a checkpoint inside purchase_order_lines was saved"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    ifs.clear_faults()

    state = json.loads(subprocess.run([str(BIN / "meltano"), "state", "get", STATE_ID], cwd=ROOT, env=env,
                                      capture_output=True, text=True, check=True).stdout)
    bookmarks = {name: b["replication_key_value"] for name, b in state["singer_state"]["bookmarks"].items()}
    assert lines in bookmarks and set(bookmarks) < set(ALL_SETS), bookmarks  # stopped midway
    loaded = {name: table_keys(tmp_path, name, keys) for name, (_, _, keys, _) in ALL_SETS.items()}
    for name, bookmark in bookmarks.items():
        _, _, keys, change = ALL_SETS[name]
        # The state never runs ahead of the table: every row changed before its bookmark is there.
        before = {tuple(r[k] for k in keys) for r in source[name] if parse_time(r[change]) < parse_time(bookmark)}
        assert before <= loaded[name], name

    meltano_run(env, "--force")  # the killed run never told Meltano it ended
    # ... nor the audit trail: the rerun's start found its process gone and recorded it interrupted.
    rerun, killed = AuditTrail(env["TARGET_DATABRICKS_AUDIT_URL"]).runs()
    assert (rerun.status, killed.recorded_status) == ("succeeded", "interrupted"), killed
    assert killed.reason.startswith(f"process {killed.pid} on {killed.host} is gone"), killed.reason
    for name, (projection, entity_set, keys, change) in ALL_SETS.items():
        assert counts(tmp_path, name, ", ".join(keys)) == (ifs.count(projection, entity_set),) * 2, name
        # Re-read: rows the rerun was sent that the killed run had written already.
        re_read = sum(1 for e in AuditTrail(env["TARGET_DATABRICKS_AUDIT_URL"]).entries(run_id=rerun.run_id, stream=name)
                      if e.operation == "unchanged")
        ties = sum(1 for r in source[name] if name in bookmarks and r[change] and
                   parse_time(r[change]) == parse_time(bookmarks[name]))
        assert re_read <= batch + ties, (name, re_read, len(loaded[name]))
    assert sum(map(len, loaded.values())) > 3 * batch  # what the rerun did not read again


ALL_SETS = {  # stream (table): projection, entity set, keys, change column
    "purchase_orders": ("PurchaseOrderHandling", "PurchaseOrderSet", ["OrderNo"], "ChangedDate"),
    "purchase_order_lines": ("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", ["OrderNo", "LineNo", "ReleaseNo"],
                             "LastActivityDate"),
    "suppliers": ("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"], "ChangedDate"),
    "customers": ("CustomerHandling", "CustomerInfoSet", ["CustomerId"], "ChangedDate"),
    "posting_proposals": ("ManSuppInvoiceHandling", "PostingProposalHeadSet", ["Company", "InvoiceNo"], "Rowversion"),
    "posting_proposal_lines": ("ManSuppInvoiceHandling", "PostingProposalLineSet", ["Company", "InvoiceNo", "LineNo"],
                               "Rowversion"),
    "gl_accounts": ("AccountsHandling", "AccountSet", ["Company", "Account"], "ChangedDate"),
    "vouchers": ("VoucherHandling", "VoucherSet", ["Company", "VoucherType", "AccountingYear", "VoucherNo"], "DateChanged"),
    "voucher_rows": ("VoucherHandling", "VoucherRowSet", ["Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"],
                     "DateChanged"),
    "accounting_dimensions": ("CodePartValuesHandling", "CodePartValueSet", ["Company", "CodePart", "CodePartValue"],
                              "ChangedDate"),
    "work_orders": ("ActiveWorkOrdersHandling", "ActiveSeparateSet", ["WoNo"], "LastActivityDate"),
}


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def saved_bookmarks(tmp_path) -> dict[str, str]:
    """The bookmarks Meltano has saved so far, read from its system database while the run goes on."""
    database = tmp_path / "meltano.db"
    if not database.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as connection:
        try:
            row = connection.execute("SELECT completed_state FROM state WHERE state_id = ?", [STATE_ID]).fetchone()
        except sqlite3.OperationalError:  # the table is not there yet
            return {}
    bookmarks = json.loads(row[0]).get("singer_state", {}).get("bookmarks", {}) if row and row[0] else {}
    return {name: b["replication_key_value"] for name, b in bookmarks.items() if b.get("replication_key_value")}


def table_keys(tmp_path, table: str, keys: list[str]) -> set[tuple]:
    location = tmp_path / "delta" / "ifscloud" / table
    if not (location / "_delta_log").exists():
        return set()
    return set(duckdb_with_delta().execute(f"SELECT {', '.join(keys)} FROM delta_scan('{location}')").fetchall())


def test_the_warehouse_path_over_tls_trusting_the_ca_through_ca_bundle(start_ifs, sandbox_tls, tmp_path):
    """IFS and the Databricks workspace serve HTTPS with a certificate of a CA only the plugins' ca_bundle names: the
    tap, and the target's OAuth token requests and SQL statements on the warehouse path, trust it."""
    from mlc_sandbox.databricks import DatabricksSandbox

    ifs = start_ifs(tls=sandbox_tls)
    with DatabricksSandbox(port=0, data_dir=tmp_path / "warehouse", **sandbox_tls.server_options) as databricks:
        ca_bundle = str(sandbox_tls.ca_file)
        env = sealed_env({
            **pipeline_env(ifs, tmp_path), "TAP_IFSCLOUD_CA_BUNDLE": ca_bundle,
            "TAP_IFSCLOUD_BUILT_IN_STREAMS": json.dumps(["suppliers", "purchase_orders"]),  # a small load
            "TARGET_DATABRICKS_LOAD_METHOD": "warehouse", "TARGET_DATABRICKS_WORKSPACE_HOST": databricks.base_url,
            "TARGET_DATABRICKS_CLIENT_ID": databricks.client_id,
            "TARGET_DATABRICKS_CLIENT_SECRET": databricks.client_secret,
            "TARGET_DATABRICKS_WAREHOUSE_ID": databricks.warehouse_id, "TARGET_DATABRICKS_CA_BUNDLE": ca_bundle})
        assert ifs.base_url.startswith("https://") and databricks.base_url.startswith("https://")
        meltano_run(env)
        for table, (projection, entity_set, keys) in SETS.items():
            if table in ("suppliers", "purchase_orders"):
                stored = databricks.sql(f"SELECT count(*), count(DISTINCT ({keys})) FROM main.ifscloud.{table}",
                                        dialect="databricks")
                assert [int(n) for n in stored[0]] == [ifs.count(projection, entity_set)] * 2, table
        assert any(s["statement"].startswith("MERGE") for s in databricks.statements())
