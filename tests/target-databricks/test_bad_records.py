"""Records target-databricks cannot write (bad_records): a record without its key, a value not of its schema's type, a
value too large for its DECIMAL column, fed to the real target process among good records. With quarantine the others
are written, the bad ones are in `mlc-audit failures` named by stream, position or key, field and reason, the STATE is
emitted and the exit status is 3; with stop the run stops at the first, naming it. Set-aside records leave the
failures when a replay delivers them after a fix in the target's configuration, or when a later run writes their key.
"""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal

import pytest

from ml_connector_core.audit import AuditTrail, RunStatus
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from support.delta import read_delta
from support.singer import BIN, record_message, run_target, schema_message, state_message

STREAM = "purchase_orders"
PROPERTIES = {
    "OrderNo": {"type": ["string", "null"]},
    "LegacyOrderNo": {"type": ["string", "null"]},
    "TotalNetAmount": {"type": ["number", "null"]},
    "Rowversion": {"type": ["string"], "format": "date-time"},
}
STATE_AFTER_BAD = {"bookmarks": {STREAM: {"replication_key_value": "2026-01-01T00:00:03Z"}}}
FINAL_STATE = {"bookmarks": {STREAM: {"replication_key_value": "2026-01-01T00:00:05Z"}}}
# A run that read everything and set records aside is partial once run statuses know it (failed before that).
UNDELIVERED_STATUS = "partial" if "partial" in {s.value for s in RunStatus} else "failed"


def order(no: str | None, amount, second: int, **extra) -> dict:
    record = {"OrderNo": no, "TotalNetAmount": amount, "Rowversion": f"2026-01-01T00:00:0{second}Z", **extra}
    return {k: v for k, v in record.items() if not (k == "OrderNo" and v is None)}


GOOD_1 = order("PO-1", Decimal("10.50"), 1)
NO_KEY = order(None, Decimal("20"), 2, LegacyOrderNo="PO-2")  # OrderNo absent, the old number still there
WRONG_TYPE = order("PO-3", "abc", 3)
TOO_LARGE = order("PO-4", 123456789012345678, 4)  # 18 digits before the point: DECIMAL(38,24) holds 14
GOOD_5 = order("PO-5", Decimal("5"), 5)


def messages(*records_and_states) -> list[dict]:
    out = [schema_message(STREAM, PROPERTIES, ["OrderNo"], bookmark="Rowversion")]
    for item in records_and_states:
        out.append(state_message(item["state"]) if "state" in item else record_message(STREAM, item))
    return out


MIXED = messages(GOOD_1, NO_KEY, WRONG_TYPE, {"state": STATE_AFTER_BAD}, TOO_LARGE, GOOD_5, {"state": FINAL_STATE})


@pytest.fixture
def config(tmp_path):
    return {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}


def quarantine(config, **extra) -> dict:
    return {**config, "bad_records": "quarantine", **extra}


def table(config) -> dict[str, Decimal]:
    location = f"{config['delta_root']}/ifscloud/{STREAM}"
    if not os.path.isdir(location):
        return {}
    return {row["OrderNo"]: row["TotalNetAmount"] for row in read_delta(location, order_by="OrderNo")}


def mlc_audit(config, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mlc-audit"), "--url", config["audit_url"], *args], capture_output=True,
                          text=True, timeout=300)


def failures(config) -> list:
    return list(AuditTrail(config["audit_url"]).failures())


def test_quarantine_writes_the_good_records_and_sets_the_bad_ones_aside_named(tmp_path, config):
    result = run_target(tmp_path, quarantine(config), MIXED, expected_exit=EXIT_UNDELIVERED)

    assert table(config) == {"PO-1": Decimal("10.5"), "PO-5": Decimal("5")}
    # The STATE after the bad records goes out: they hold nothing back.
    assert result.states and result.states[-1] == FINAL_STATE
    run = AuditTrail(config["audit_url"]).runs(1)[0]
    assert run.status == UNDELIVERED_STATUS and run.outcomes == {"failed": 3, "succeeded": 2}

    listed = mlc_audit(config, "failures", "--each")
    assert listed.returncode == 0, listed.stderr
    assert ("bad record: record 2 of stream 'purchase_orders' (no key): missing key property OrderNo"
            in listed.stdout)
    assert ("bad record: record 3 of stream 'purchase_orders' (key OrderNo='PO-3'): \"abc\" is not of types "
            "\"null\", \"number\" at TotalNetAmount" in listed.stdout)
    assert ("bad record: record 4 of stream 'purchase_orders' (key OrderNo='PO-4'): value 123456789012345678 does "
            "not fit DECIMAL(38,24) (18 digits before the point, it holds 14) at TotalNetAmount" in listed.stdout)
    # A record without its key is found by its position in the stream and its run.
    assert f'key {{"OrderNo":null,"_record":2,"_run":"{run.run_id}"}}' in listed.stdout

    # Each kept as received, so that a replay can send it again.
    assert [f.source for f in failures(config)] == [NO_KEY, WRONG_TYPE, TOO_LARGE]
    assert "Set aside (bad_records: quarantine) as audit entry" in result.stderr
    assert "3 bad record(s) set aside (bad_records: quarantine) wait for a fix" in result.stderr


def test_stop_stops_at_the_first_bad_record_naming_it_and_audits_it(tmp_path, config):
    result = run_target(tmp_path, config, MIXED, check=False)

    assert result.returncode == 1
    assert "record 2 of stream 'purchase_orders' (no key): missing key property OrderNo" in result.stderr
    assert "Stopped (bad_records: stop) at a bad record" in result.stderr
    assert result.states == []  # nothing after the last STATE emitted was written
    assert table(config) == {}
    [failed] = failures(config)
    assert failed.source == NO_KEY and failed.error.endswith("missing key property OrderNo")
    assert AuditTrail(config["audit_url"]).runs(1)[0].status == "failed"


def test_stop_names_a_value_that_does_not_fit_its_column(tmp_path, config):
    result = run_target(tmp_path, config, messages(GOOD_1, TOO_LARGE, {"state": FINAL_STATE}), check=False)

    assert result.returncode == 1 and result.states == []
    assert ("record 2 of stream 'purchase_orders' (key OrderNo='PO-4'): value 123456789012345678 does not fit "
            "DECIMAL(38,24) (18 digits before the point, it holds 14) at TotalNetAmount") in result.stderr
    # The rest of its batch is audited as not written, so that one replay after the fix delivers the batch.
    assert [(f.key, f.error.startswith("bad record: ")) for f in failures(config)] == [
        ({"OrderNo": "PO-1"}, False), ({"OrderNo": "PO-4"}, True)]


def test_the_same_bad_records_sent_again_are_audited_once(tmp_path, config):
    run_target(tmp_path, quarantine(config), MIXED, expected_exit=EXIT_UNDELIVERED)
    again = run_target(tmp_path, quarantine(config), MIXED, expected_exit=EXIT_UNDELIVERED)

    assert len(failures(config)) == 3
    assert "Bad record, already audit entry" in again.stderr
    assert again.states[-1] == FINAL_STATE


def test_replay_after_a_fix_in_the_target_configuration_delivers_a_record_without_its_key(tmp_path, config):
    run_target(tmp_path, quarantine(config), MIXED, expected_exit=EXIT_UNDELIVERED)
    no_key, wrong_type, _ = failures(config)

    # A replay sends the record as received: without a fix it is set aside again, and stays failed (once).
    unfixed = tmp_path / "unfixed.json"
    unfixed.write_text(json.dumps(quarantine(config)))
    replay = mlc_audit(config, "replay", "--entry", str(wrong_type.id),
                       "--target-command", f"{BIN / 'target-databricks'} --config {unfixed}")
    assert replay.returncode == 1 and "the 1 entries stay failed" in replay.stderr
    assert [f.id for f in failures(config)] == [no_key.id, wrong_type.id, failures(config)[2].id]

    # The fix on the target's side: a stream map that takes the key from the old order number.
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(quarantine(config, stream_maps={
        STREAM: {"OrderNo": "record.get('OrderNo') or record.get('LegacyOrderNo')"}})))
    replay = mlc_audit(config, "replay", "--entry", str(no_key.id),
                       "--target-command", f"{BIN / 'target-databricks'} --config {fixed}")
    assert replay.returncode == 0, replay.stderr
    assert table(config)["PO-2"] == Decimal("20")
    assert no_key.id not in [f.id for f in failures(config)]


def test_a_record_fixed_at_the_source_is_settled_when_a_later_run_writes_its_key(tmp_path, config):
    run_target(tmp_path, quarantine(config), MIXED, expected_exit=EXIT_UNDELIVERED)
    fixed = [order("PO-3", Decimal("3"), 6), order("PO-4", Decimal("12345678901234.5"), 7)]

    result = run_target(tmp_path, quarantine(config), messages(*fixed, {"state": FINAL_STATE}))

    assert "2 bad record(s) set aside by earlier runs were written since" in result.stderr
    assert [f.source for f in failures(config)] == [NO_KEY]  # no key to match: only a replay delivers it
    assert table(config)["PO-4"] == Decimal("12345678901234.5")


def test_a_bad_version_after_a_good_one_in_the_same_input_stays_failed(tmp_path, config):
    # The input's last word on PO-3 is the bad version: writing the older, good one does not settle it.
    result = run_target(tmp_path, quarantine(config), messages(order("PO-3", Decimal("3"), 1), WRONG_TYPE),
                        expected_exit=EXIT_UNDELIVERED)
    assert result.returncode == EXIT_UNDELIVERED
    assert [f.source for f in failures(config)] == [WRONG_TYPE]


def test_the_warehouse_path_sets_aside_the_same_records(tmp_path, config):
    from mlc_sandbox.databricks import DatabricksSandboxProcess

    databricks = DatabricksSandboxProcess(data_dir=tmp_path / "warehouse")
    try:
        warehouse = quarantine(config, load_method="warehouse", workspace_host=databricks.base_url,
                               token=databricks.token, warehouse_id=databricks.warehouse_id, catalog="main")
        result = run_target(tmp_path, warehouse, MIXED, expected_exit=EXIT_UNDELIVERED)
        rows = databricks.sql(f"SELECT OrderNo, TotalNetAmount FROM main.ifscloud.{STREAM} ORDER BY OrderNo",
                              dialect="databricks")
    finally:
        databricks.stop()
    assert [(no, Decimal(amount)) for no, amount in rows] == [("PO-1", Decimal("10.5")), ("PO-5", Decimal("5"))]
    assert result.states[-1] == FINAL_STATE
    assert [(f.source, f.destination) for f in failures(config)] == [
        (NO_KEY, None), (WRONG_TYPE, None), (TOO_LARGE, f"`main`.`ifscloud`.`{STREAM}`")]
