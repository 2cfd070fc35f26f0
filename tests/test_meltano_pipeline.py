"""End to end through Meltano: the sandbox environment's pipeline, its state, and an incremental rerun."""

from __future__ import annotations

import json
import os
import subprocess
import pytest
from pathlib import Path

from support.ifs import CLIENT_SECRET
from support.sealed import sealed_env
from support.singer import BIN

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

ROOT = Path(__file__).resolve().parent.parent


def meltano(*args: str, env: dict) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(BIN / "meltano"), *args], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, **env}, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_meltano_run_then_incremental_rerun(ifs, tmp_path):
    state_id = "sandbox:tap-ifscloud-to-target-jsonl"
    env = sealed_env({
        "TAP_IFSCLOUD_BASE_URL": ifs.base_url,
        "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TAP_IFSCLOUD_LOOKBACK_SECONDS": "0",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_STATE_ID_SUFFIX": "",
    })
    first_out = tmp_path / "run-1"
    meltano("run", "tap-ifscloud", "target-jsonl", env={**env, "TARGET_JSONL_DESTINATION_PATH": str(first_out)})
    suppliers = lines(first_out / "suppliers.jsonl")
    assert len(suppliers) == ifs.count("SupplierHandling", "SupplierInfoGeneralSet")
    assert len(lines(first_out / "purchase_orders.jsonl")) == ifs.count("PurchaseOrderHandling", "PurchaseOrderSet")

    state = json.loads(meltano("state", "get", state_id, env=env).stdout)
    bookmark = state["singer_state"]["bookmarks"]["suppliers"]["replication_key_value"]
    assert bookmark == max(s["ChangedDate"] for s in suppliers)

    target = suppliers[0]
    ifs.change("SupplierInfoGeneralSet", {"SupplierId": target["SupplierId"]}, {"Name": "Renamed by the test AB"})
    second_out = tmp_path / "run-2"
    meltano("run", "tap-ifscloud", "target-jsonl", env={**env, "TARGET_JSONL_DESTINATION_PATH": str(second_out)})
    # ge on the bookmark re-reads the rows stamped with the bookmark's own second, and nothing older.
    at_bookmark = {s["SupplierId"] for s in suppliers if s["ChangedDate"] == bookmark}
    assert {s["SupplierId"] for s in lines(second_out / "suppliers.jsonl")} == at_bookmark | {target["SupplierId"]}
    order_bookmark = state["singer_state"]["bookmarks"]["purchase_orders"]["replication_key_value"]
    assert {o["ChangedDate"] for o in lines(second_out / "purchase_orders.jsonl")} <= {order_bookmark}

    # The rerun's bookmark moved to the change, even though the run's last messages were look-back re-reads.
    changed = next(s for s in lines(second_out / "suppliers.jsonl") if s["SupplierId"] == target["SupplierId"])
    after = json.loads(meltano("state", "get", state_id, env=env).stdout)["singer_state"]["bookmarks"]
    assert after["suppliers"]["replication_key_value"] == changed["ChangedDate"] > bookmark
