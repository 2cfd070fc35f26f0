"""IFS Cloud → Databricks end to end through Meltano: tables complete, reruns move only changes, a killed load loses
and duplicates nothing, and the audit trail says what happened to every record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import pytest
from pathlib import Path

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


def test_a_load_killed_midway_then_rerun_loses_and_duplicates_nothing(start_ifs, tmp_path):
    ifs = start_ifs(scale=600)
    env = {**pipeline_env(ifs, tmp_path), "TARGET_DATABRICKS_BATCH_SIZE_ROWS": "200", "TAP_IFSCLOUD_PAGE_SIZE": "100"}
    ifs.fault("delay", 10_000, delay_seconds=0.05, path_contains="Set")
    process = subprocess.Popen([str(BIN / "meltano"), "run", "tap-ifscloud", "target-databricks"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    orders = tmp_path / "delta" / "ifscloud" / "purchase_order_lines"
    while not (orders / "_delta_log").exists() or len(list((orders / "_delta_log").glob("*.json"))) < 3:
        assert time.monotonic() < deadline and process.poll() is None, "the load ended before it could be killed"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    ifs.clear_faults()

    meltano_run(env, "--force")  # the killed run never told Meltano it ended
    for table, (projection, entity_set, keys) in {**SETS, "purchase_order_lines": (
            "PurchaseOrderHandling", "PurchaseOrderLineNopartSet", "OrderNo, LineNo, ReleaseNo")}.items():
        assert counts(tmp_path, table, keys) == (ifs.count(projection, entity_set),) * 2, table
