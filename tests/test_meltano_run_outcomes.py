"""`meltano run tap-ifscloud target-databricks` whose tap fails: the target's audit run is never `succeeded`.

The target sees only its input. When the tap stops after a STATE, the input ends without the STATE that closes every
tap-ifscloud sync, and the target itself says `partial`. When the tap stops before its first STATE, the input looks
like any input without STATE; Meltano records the run FAIL, and the audit run, linked to Meltano's run, is `partial`
as soon as someone reads Meltano's record (`mlc-audit runs`, the next target's start)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from ml_connector_core.audit import AuditTrail
from support.ifs import CLIENT_SECRET
from support.singer import BIN

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

ROOT = Path(__file__).resolve().parent.parent


def meltano_run_failing(env: dict) -> str:
    completed = subprocess.run([str(BIN / "meltano"), "run", "tap-ifscloud", "target-databricks"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode != 0 and "Extractor" in completed.stderr, completed.stderr[-4000:]
    return completed.stderr


def mlc_audit_runs(url: str, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "MLC_AUDIT"))}
    completed = subprocess.run([str(BIN / "mlc-audit"), "--url", url, "runs", *args], capture_output=True, text=True,
                               env=env, timeout=120, cwd=ROOT)
    assert completed.returncode == 0 and completed.stderr == "", completed.stderr
    return completed.stdout.splitlines()


def meltano_runs(database: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT run_id, state, payload FROM runs").fetchall()
    return {str(uuid.UUID(run_id)): (state, payload) for run_id, state, payload in rows}


def test_a_pipeline_whose_tap_fails_is_never_recorded_succeeded(start_ifs, tmp_path):
    ifs = start_ifs()
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    env = {
        **os.environ,
        "TAP_IFSCLOUD_BASE_URL": ifs.base_url,
        "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TAP_IFSCLOUD_MAX_TRIES": "2",
        "TARGET_DATABRICKS_DELTA_ROOT": str(tmp_path / "delta"),
        "TARGET_DATABRICKS_AUDIT_URL": audit_url,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
    }

    # 1. The first stream's first page comes, every later page answers 500: the tap stops before its first STATE.
    ifs.fault("status", 100_000, status=500, path_contains="CodePartValueSet?$filter")
    meltano_run_failing({**env, "TAP_IFSCLOUD_PAGE_SIZE": "5"})
    trail = AuditTrail(audit_url)
    [early] = trail.runs()
    assert early.recorded_status == "succeeded" and early.operations == {"insert": 5}  # all its input said
    [(meltano_state, payload)] = [meltano_runs(tmp_path / "meltano.db")[early.pipeline_run_id]]
    assert meltano_state == "FAIL" and "Extractor failed" in payload
    why = (f"the pipeline failed (Meltano run {early.pipeline_run_id} FAIL: Extractor failed): this target wrote "
           "what it received, the rest was not read")
    # mlc-audit reads Meltano's database where the run recorded it (no MELTANO_DATABASE_URI in its environment).
    [header, line] = mlc_audit_runs(audit_url)
    assert line.startswith(early.run_id) and " partial " in line and line.rstrip().endswith(why), line
    [_, unlinked] = mlc_audit_runs(audit_url, "--no-pipeline")
    assert " succeeded " in unlinked

    # 2. The purchase order projection answers 500: the tap stops after the streams before it, each closed by STATE.
    ifs.clear_faults()
    ifs.fault("status", 100_000, status=500, path_contains="PurchaseOrderHandling.svc/PurchaseOrder")
    log = meltano_run_failing(env)
    assert "is partial: the input ended early in stream purchase_orders" in log
    cut = trail.runs(1)[0]
    assert cut.run_id != early.run_id and cut.recorded_status == "partial"
    assert cut.reason == ("the input ended early in stream purchase_orders (after its SCHEMA, before any of its "
                          "records) with no closing STATE: the tap stopped before finishing; streams after it were not "
                          "read")
    assert meltano_runs(tmp_path / "meltano.db")[cut.pipeline_run_id][0] == "FAIL"
    # That target's start recorded how the first pipeline ended.
    settled = trail.run(early.run_id)
    assert (settled.recorded_status, settled.pipeline_state, settled.reason) == ("partial", "FAIL", why)
    assert all(" partial " in line for line in mlc_audit_runs(audit_url)[1:])
