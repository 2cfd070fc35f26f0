"""target-databricks on the Delta path: MERGE idempotency, versions, schema growth, exact values, clear failures.

Tables are read back with DuckDB's delta extension, not with the library that wrote them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from support.delta import read_delta
from support.singer import record_message, run_target, schema_message, state_message

INVOICE = {
    "Company": {"type": ["string"]},
    "InvoiceNo": {"type": ["string"]},
    "GrossAmount": {"type": ["number", "null"], "x-sql-datatype": "decimal", "x-sql-datatype-properties": {"precision": 38}},
    "InvoiceDate": {"type": ["string", "null"], "format": "date"},
    "Rowversion": {"type": ["string"], "format": "date-time"},
    "Objstate": {"type": ["string", "null"]},
}
KEYS = ["Company", "InvoiceNo"]


def invoice(no: str, amount: str, rowversion: str, state: str = "Preliminary", company: str = "10") -> dict:
    return {"Company": company, "InvoiceNo": no, "GrossAmount": Decimal(amount), "InvoiceDate": "2026-01-15",
            "Rowversion": rowversion, "Objstate": state}


@pytest.fixture
def config(tmp_path):
    return {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}


def table(config):
    return read_delta(f"{config['delta_root']}/ifscloud/posting_proposals", order_by="Company, InvoiceNo")


def messages_for(records, state=None) -> list[dict]:
    messages = [schema_message("posting_proposals", INVOICE, KEYS, bookmark="Rowversion")]
    messages += [record_message("posting_proposals", r) for r in records]
    if state is not None:
        messages.append(state_message(state))
    return messages


def load(tmp_path, config, records, state=None, **kwargs):
    return run_target(tmp_path, config, messages_for(records, state), **kwargs)


def test_the_same_batch_twice_leaves_one_row_per_key(tmp_path, config):
    batch = [invoice("A1", "100.50", "2026-01-01T10:00:00Z"), invoice("A2", "7", "2026-01-01T10:00:01Z")]
    load(tmp_path, config, batch)
    first = table(config)
    load(tmp_path, config, batch)
    second = table(config)
    assert [(r["InvoiceNo"], r["GrossAmount"]) for r in second] == [("A1", Decimal("100.5")), ("A2", Decimal("7"))]
    assert [r["_mlc_loaded_at"] for r in second] == [r["_mlc_loaded_at"] for r in first]  # unchanged rows untouched


def test_overlapping_batches_update_changed_rows_and_insert_new_ones(tmp_path, config):
    load(tmp_path, config, [invoice("A1", "1", "2026-01-01T10:00:00Z"), invoice("A2", "2", "2026-01-01T10:00:00Z")])
    load(tmp_path, config, [invoice("A2", "2.5", "2026-01-02T10:00:00Z", "Authorized"), invoice("A3", "3", "2026-01-02T10:00:00Z")])
    rows = table(config)
    assert [(r["InvoiceNo"], r["GrossAmount"], r["Objstate"]) for r in rows] == [
        ("A1", Decimal("1"), "Preliminary"), ("A2", Decimal("2.5"), "Authorized"), ("A3", Decimal("3"), "Preliminary")]


def test_latest_version_wins_within_a_batch_and_an_older_version_never_overwrites(tmp_path, config):
    load(tmp_path, config, [
        invoice("A1", "3", "2026-01-03T00:00:00Z", "Posted"),
        invoice("A1", "1", "2026-01-01T00:00:00Z", "Preliminary"),  # arrives later, but older
        invoice("A1", "2", "2026-01-02T00:00:00Z", "Authorized"),
    ])
    assert [(r["GrossAmount"], r["Objstate"]) for r in table(config)] == [(Decimal("3"), "Posted")]
    load(tmp_path, config, [invoice("A1", "1", "2026-01-01T00:00:00Z", "Preliminary")])  # a replay of old data
    assert [(r["GrossAmount"], r["Objstate"]) for r in table(config)] == [(Decimal("3"), "Posted")]


def test_decimals_to_the_last_digit_and_timestamps_in_utc(tmp_path, config):
    exact = "12345678901234.123456789012345678901234"  # 14 + 24 digits: DECIMAL(38, 24)
    load(tmp_path, config, [invoice("D1", exact, "2026-03-01T12:30:00+02:00")])
    row = table(config)[0]
    assert row["GrossAmount"] == Decimal(exact)
    assert row["Rowversion"] == dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.timezone.utc)
    assert row["InvoiceDate"] == dt.date(2026, 1, 15)


def test_a_value_that_would_lose_digits_fails_naming_stream_key_and_field(tmp_path, config):
    result = load(tmp_path, config, [invoice("D2", "1.1234567890123456789012345", "2026-03-01T00:00:00Z")],
                  state={"bookmarks": {"posting_proposals": {"replication_key_value": "2026-03-01T00:00:00Z"}}},
                  check=False)
    assert result.returncode != 0
    assert "posting_proposals" in result.stderr and "D2" in result.stderr and "GrossAmount" in result.stderr
    assert result.states == []  # nothing written, so no state


def test_schema_growth_adds_columns(tmp_path, config):
    load(tmp_path, config, [invoice("G1", "1", "2026-01-01T00:00:00Z")])
    grown = {**INVOICE, "Cf_Project": {"type": ["string", "null"]}}
    messages = [schema_message("posting_proposals", grown, KEYS, bookmark="Rowversion"),
                record_message("posting_proposals", {**invoice("G2", "2", "2026-01-02T00:00:00Z"), "Cf_Project": "PRJ-9"})]
    run_target(tmp_path, config, messages)
    rows = table(config)
    assert [(r["InvoiceNo"], r["Cf_Project"]) for r in rows] == [("G1", None), ("G2", "PRJ-9")]


def test_state_is_emitted_only_after_the_rows_it_covers_are_written(tmp_path, config):
    state = {"bookmarks": {"posting_proposals": {"replication_key_value": "2026-01-01T00:00:00Z"}}}
    result = load(tmp_path, config, [invoice("S1", "1", "2026-01-01T00:00:00Z")], state=state)
    assert result.states == [state]
    assert [r["InvoiceNo"] for r in table(config)] == ["S1"]


def test_a_stream_without_keys_is_deduplicated_on_content(tmp_path, config):
    messages = [schema_message("notes", {"text": {"type": ["string"]}}, []),
                record_message("notes", {"text": "x"}), record_message("notes", {"text": "y"})]
    run_target(tmp_path, config, messages)
    run_target(tmp_path, config, messages)
    rows = read_delta(f"{config['delta_root']}/ifscloud/notes", order_by="text")
    assert [r["text"] for r in rows] == ["x", "y"]


def test_records_of_a_failed_batch_are_audited_and_replayed_after_the_fix(tmp_path, config):
    import json
    import subprocess

    from ml_connector_core.audit import AuditTrail
    from support.singer import BIN

    too_precise = "1.1234567890123456789012345"  # 25 decimals: beyond the default DECIMAL(38, 24)
    batch = [invoice("R1", "10", "2026-02-01T00:00:00Z"), invoice("R2", too_precise, "2026-02-01T00:00:00Z")]
    assert load(tmp_path, config, batch, check=False).returncode != 0
    trail = AuditTrail(config["audit_url"])
    failed = list(trail.failures(stream="posting_proposals"))
    assert sorted(e.key["InvoiceNo"] for e in failed) == ["R1", "R2"]
    assert "GrossAmount" in failed[0].error and str(failed[1].source["GrossAmount"]) == too_precise

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**config, "decimal_scale": 25}))
    replay = subprocess.run(
        [str(BIN / "mlc-audit"), "--url", config["audit_url"], "replay", "--stream", "posting_proposals",
         "--target-command", f"{BIN / 'target-databricks'} --config {fixed}"],
        capture_output=True, text=True)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert {r["InvoiceNo"]: r["GrossAmount"] for r in table(config)} == {"R1": Decimal("10"), "R2": Decimal(too_precise)}
    assert list(trail.failures(stream="posting_proposals")) == []


def test_a_record_the_source_reports_deleted_is_kept_and_marked(tmp_path, config):
    config = {**config, "add_record_metadata": True}
    load(tmp_path, config, [invoice("X1", "1", "2026-01-01T00:00:00Z"), invoice("X2", "2", "2026-01-01T00:00:00Z")])
    # Same content and version as loaded: only the deletion is new, and it must not be taken for "unchanged".
    deleted = {**invoice("X1", "1", "2026-01-01T00:00:00Z"), "_sdc_deleted_at": "2026-01-05T00:00:00Z"}
    load(tmp_path, config, [deleted])
    rows = {r["InvoiceNo"]: r["_sdc_deleted_at"] for r in table(config)}
    assert rows["X2"] is None
    assert rows["X1"] == dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)


def test_a_record_that_breaks_its_schema_is_named_and_nothing_is_written(tmp_path, config):
    bad = {**invoice("B1", "1", "2026-01-01T00:00:00Z"), "GrossAmount": "one hundred"}
    result = load(tmp_path, config, [invoice("B0", "1", "2026-01-01T00:00:00Z"), bad],
                  state={"bookmarks": {"posting_proposals": {"replication_key_value": "2026-01-01T00:00:00Z"}}},
                  check=False)
    assert result.returncode != 0
    assert "GrossAmount" in result.stderr and "one hundred" in result.stderr
    assert result.states == []


def test_the_audit_trail_keeps_what_each_run_wrote_and_the_retention_setting_empties_old_payloads(tmp_path, config):
    from ml_connector_core.audit import AuditEntry, AuditTrail

    batch = [invoice("T1", "10.50", "2026-03-01T00:00:00Z"), invoice("T2", "7", "2026-03-01T00:00:00Z")]
    load(tmp_path, config, batch)
    load(tmp_path, config, batch)  # read again: nothing changed, nothing written
    trail = AuditTrail(config["audit_url"])
    first, second = [list(trail.entries(run_id=run.run_id)) for run in reversed(trail.runs(2))]
    assert [(e.operation, e.payload["GrossAmount"]) for e in first] == [("insert", Decimal("10.50")),
                                                                         ("insert", Decimal("7"))]
    assert [(e.operation, e.payload_json) for e in second] == [("unchanged", None), ("unchanged", None)]
    assert second[0].payload_note.startswith("not kept: this entry wrote nothing")

    # 0 days: every payload of the flow is removed at the end of the run, the entries stay; another flow keeps its.
    other = AuditTrail(config["audit_url"]).start_run("ifs-to-teams", "target-teams")
    other.record([AuditEntry(stream="posting_proposals", key={"Company": "10", "InvoiceNo": "T1"}, operation="insert",
                             outcome="succeeded", payload={"card": "T1"})])
    other.finish()
    load(tmp_path, {**config, "audit_payload_retention_days": 0}, [invoice("T3", "3", "2026-03-02T00:00:00Z")])
    everything = list(AuditTrail(config["audit_url"]).entries())
    assert [(e.flow, e.record_key, e.operation, e.payload_json is None) for e in everything] == [
        ("ifs-to-databricks", '{"Company":"10","InvoiceNo":"T1"}', "insert", True),
        ("ifs-to-databricks", '{"Company":"10","InvoiceNo":"T2"}', "insert", True),
        ("ifs-to-databricks", '{"Company":"10","InvoiceNo":"T1"}', "unchanged", True),
        ("ifs-to-databricks", '{"Company":"10","InvoiceNo":"T2"}', "unchanged", True),
        ("ifs-to-teams", '{"Company":"10","InvoiceNo":"T1"}', "insert", False),
        ("ifs-to-databricks", '{"Company":"10","InvoiceNo":"T3"}', "insert", True),
    ]
    assert everything[0].payload_note.startswith("removed by the payload retention setting on ")
    assert [r["InvoiceNo"] for r in table(config)] == ["T1", "T2", "T3"]  # the table, of course, keeps every row
