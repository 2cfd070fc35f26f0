"""The audit store on SQLite and on a real PostgreSQL: runs, entries, exact keys and decimals, replay bookkeeping."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from ml_connector_core.audit import (
    AUDIT_URL_ENV,
    AuditEntry,
    AuditError,
    AuditTrail,
    UnknownEntryError,
    UnknownRunError,
    canonical_key,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "order_no": {"type": "string"},
        "line_no": {"type": "integer"},
        "amount": {"type": "number"},
    },
}


def entry(order_no="PO-1", line_no=1, *, outcome="succeeded", operation="insert", **fields) -> AuditEntry:
    payload = fields.pop("payload", {"order_no": order_no, "line_no": line_no, "amount": Decimal("10.50")})
    return AuditEntry(
        stream=fields.pop("stream", "purchase_order_lines"),
        key={"order_no": order_no, "line_no": line_no},
        operation=operation,
        outcome=outcome,
        payload=payload,
        destination=fields.pop("destination", "main.ifs.purchase_order_lines"),
        **fields,
    )


@pytest.fixture
def trail(audit_url):
    with AuditTrail(audit_url) as trail:
        yield trail


def test_tables_and_indexes_are_created_once(audit_url):
    AuditTrail(audit_url).close()
    with AuditTrail(audit_url) as trail:  # a second open finds them and changes nothing
        inspector = sa.inspect(trail._engine)
        assert {"audit_runs", "audit_schemas", "audit_records"} <= set(inspector.get_table_names())
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("audit_records")}
    assert indexes["ix_audit_records_run_id"] == ["run_id"]
    assert indexes["ix_audit_records_stream_key"] == ["stream", "record_key"]
    assert indexes["ix_audit_records_failed"] == ["outcome"]


def test_default_store_is_a_sqlite_file_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(AUDIT_URL_ENV, raising=False)
    with AuditTrail() as trail:
        trail.start_run("flow", "target-test").finish()
    assert (tmp_path / ".ml-connector" / "audit.sqlite").is_file()

    elsewhere = tmp_path / "team" / "audit.sqlite"
    monkeypatch.setenv(AUDIT_URL_ENV, f"sqlite:///{elsewhere}")
    with AuditTrail() as trail:
        trail.start_run("flow", "target-test").finish()
        assert len(trail.runs()) == 1
    assert elsewhere.is_file()


def test_unusable_urls_are_refused_clearly(tmp_path):
    with pytest.raises(AuditError, match="not a database URL"):
        AuditTrail("not a url")
    with pytest.raises(AuditError, match="SQLite or PostgreSQL"):
        AuditTrail("mysql://user:pw@localhost/db")
    with pytest.raises(AuditError, match="no audit trail at"):
        AuditTrail(f"sqlite:///{tmp_path / 'absent.sqlite'}", must_exist=True)
    with pytest.raises(AuditError, match=r"cannot open the audit trail at postgresql\+psycopg://u:\*\*\*@127.0.0.1:9/x") as caught:
        AuditTrail("postgresql+psycopg://u:hunter2-password@127.0.0.1:9/x")
    assert "hunter2-password" not in str(caught.value)


def test_a_run_counts_its_entries_per_outcome_and_operation(trail):
    run = trail.start_run(flow="ifs-to-databricks", plugin="target-databricks")
    assert run.record([entry("PO-1"), entry("PO-2", operation="update"), entry("PO-3", outcome="failed", error="HTTP 500")]) == 3
    assert run.record([entry("PO-4", operation="unchanged"), entry("PO-5", operation="skipped_duplicate")]) == 2
    assert run.record([]) == 0
    [listed] = trail.runs()
    assert listed.status == "running" and listed.finished_at is None
    run.finish("failed", {"rows": 5, "amount": Decimal("0.10")})

    other = trail.start_run(flow="ifs-to-jira", plugin="target-jira")
    other.record([entry("PO-9", operation="delete", stream="issues")])
    other.finish()

    latest, first = trail.runs()
    assert latest.run_id == other.run_id and first.run_id == run.run_id
    assert first.status == "failed" and first.finished_at >= first.started_at
    assert first.outcomes == {"succeeded": 4, "failed": 1}
    assert first.operations == {"insert": 2, "update": 1, "unchanged": 1, "skipped_duplicate": 1}
    assert str(first.summary["amount"]) == "0.10"
    assert latest.outcomes == {"succeeded": 1} and latest.operations == {"delete": 1}
    assert [r.run_id for r in trail.runs(flow="ifs-to-databricks")] == [run.run_id]
    assert len(trail.runs(limit=1)) == 1
    assert trail.run(run.run_id).entries == 5


def test_a_preferred_run_id_is_used_while_free_then_suffixed(trail):
    meltano_run = "0f9a2e9c-5b4e-4a53-9d43-5c1b8a1f0e11"
    first = trail.start_run("flow", "target-a", preferred_run_id=meltano_run)
    second = trail.start_run("flow", "target-b", preferred_run_id=meltano_run)
    third = trail.start_run("flow", "target-a", preferred_run_id=meltano_run)
    assert [first.run_id, second.run_id, third.run_id] == [meltano_run, f"{meltano_run}-2", f"{meltano_run}-3"]
    assert trail.run(f"{meltano_run}-2").plugin == "target-b"
    assert trail.start_run("flow", "target-a").run_id != meltano_run  # without one: an id of its own
    with pytest.raises(sa_exc.IntegrityError):  # an exact run_id is never silently changed
        trail.start_run("flow", "target-a", run_id=meltano_run)


def test_runs_finish_on_leaving_the_block(trail):
    with trail.start_run("flow", "target-test") as good:
        good.record([entry()])
    with pytest.raises(RuntimeError), trail.start_run("flow", "target-test") as bad:
        raise RuntimeError("warehouse unreachable")
    assert trail.run(good.run_id).status == "succeeded"
    assert trail.run(bad.run_id).status == "failed"
    assert trail.run(bad.run_id).summary == {"error": "RuntimeError: warehouse unreachable"}
    with pytest.raises(ValueError, match="finishes as one of"):
        good.finish("running")


def test_failures_are_found_by_run_stream_and_exact_key(trail):
    first = trail.start_run("flow", "target-test")
    first.record(
        [
            entry("PO-1", 1),
            entry("PO-1", 2, outcome="failed", error="first error"),
            entry("PO-2", 2, outcome="failed", error="second error"),
            entry("PO-1", 2, outcome="failed", error="other stream", stream="receipts"),
        ]
    )
    second = trail.start_run("flow", "target-test")
    second.record([entry("PO-1", 2, outcome="failed", error="again")])

    assert [e.error for e in trail.failures()] == ["first error", "second error", "other stream", "again"]
    assert [e.error for e in trail.failures(run_id=first.run_id)] == ["first error", "second error", "other stream"]
    assert [e.error for e in trail.failures(stream="receipts")] == ["other stream"]
    # The key matches whatever order its properties come in and however its numbers are spelled.
    for key in ({"order_no": "PO-1", "line_no": 2}, {"line_no": Decimal("2.00"), "order_no": "PO-1"}, {"line_no": 2.0, "order_no": "PO-1"}):
        found = trail.failures(stream="purchase_order_lines", key=key)
        assert [e.error for e in found] == ["first error", "again"]
    assert list(trail.failures(key={"order_no": "PO-1", "line_no": 3})) == []
    assert list(trail.failures(key={"order_no": "PO-1"})) == []  # a part of a key is not the key
    assert [e.error for e in trail.failures(run_id=second.run_id, key={"line_no": 2, "order_no": "PO-1"})] == ["again"]
    with pytest.raises(UnknownRunError, match="no run 'nope'"):
        trail.failures(run_id="nope")


def test_canonical_keys_spell_each_value_one_way():
    assert canonical_key({"b": 1, "a": "x"}) == '{"a":"x","b":1}'
    assert canonical_key({"n": Decimal("2.50")}) == canonical_key({"n": 2.5}) == '{"n":2.5}'
    assert canonical_key({"n": Decimal("1E+2")}) == canonical_key({"n": 100}) == '{"n":100}'
    assert canonical_key({"flag": True}) == '{"flag":true}'
    assert canonical_key({"n": Decimal("12345678901234567890.000000000000000001")}) == '{"n":12345678901234567890.000000000000000001}'


def test_payloads_keep_every_digit(trail):
    payload = {
        "amount": Decimal("12345678901234567890.12345678901234567890"),
        "price": Decimal("0.10"),
        "rate": Decimal("1E+2"),
        "tiny": Decimal("-0.000000000000000000000001"),
        "big_integer": 2**80,
        "lines": [{"qty": Decimal("3.000")}, {"qty": Decimal("0")}],
        "text": "Ümlaut \"quoted\" \\ back",
        "nothing": None,
    }
    run = trail.start_run("flow", "target-test")
    run.record([entry("PO-7", 1, outcome="failed", payload=payload, version="2026-11-25T10:00:00Z", attempts=4)])
    [failed] = trail.failures()
    stored = trail.entry(failed.id)
    assert '"amount":12345678901234567890.12345678901234567890' in stored.payload_json
    assert '"price":0.10,"rate":1E+2' in stored.payload_json
    assert '"big_integer":1208925819614629174706176' in stored.payload_json
    round_trip = stored.payload
    assert {name: str(value) for name, value in round_trip.items() if isinstance(value, Decimal)} == {
        "amount": "12345678901234567890.12345678901234567890",
        "price": "0.10",
        "rate": "1E+2",
        "tiny": "-1E-24",
    }
    assert str(round_trip["lines"][0]["qty"]) == "3.000" and round_trip["big_integer"] == 2**80
    assert round_trip["text"] == payload["text"] and round_trip["nothing"] is None
    assert list(round_trip) == list(payload)  # the order sent is the order stored
    assert (stored.version, stored.attempts, stored.outcome, stored.operation) == ("2026-11-25T10:00:00Z", 4, "failed", "insert")
    assert stored.key == {"line_no": 1, "order_no": "PO-7"}
    assert stored.written_at.tzinfo is not None


def test_unknown_entries_and_invalid_entries_are_named(trail):
    with pytest.raises(UnknownEntryError, match="no entry 999"):
        trail.entry(999)
    run = trail.start_run("flow", "target-test")
    with pytest.raises(ValueError, match=r"stream 'purchase_order_lines' key .*PO-3.*operation 'upsert'"):
        run.record([entry("PO-3", operation="upsert")])
    with pytest.raises(ValueError, match="outcome 'replayed'"):
        run.record([entry("PO-3", outcome="replayed")])
    with pytest.raises(ValueError, match=r"cannot audit stream 'purchase_order_lines' key .*PO-4"):
        run.record([entry("PO-4", payload={"when": object()})])
    # A refused batch leaves nothing behind.
    assert trail.run(run.run_id).entries == 0


def test_the_latest_schema_of_a_stream_is_remembered(trail):
    run = trail.start_run("flow", "target-test")
    run.remember_schema("purchase_order_lines", {"type": "object"}, ["order_no"])
    run.remember_schema("purchase_order_lines", SCHEMA, ["order_no", "line_no"])
    remembered = trail.schema(run.run_id, "purchase_order_lines")
    assert remembered.schema == SCHEMA and remembered.key_properties == ["order_no", "line_no"]
    assert trail.schema(run.run_id, "receipts") is None


def test_replayed_entries_leave_the_failures_and_point_to_their_replay(trail):
    run = trail.start_run("flow", "target-test")
    run.record([entry("PO-1", outcome="failed", error="boom"), entry("PO-2", outcome="failed"), entry("PO-3")])
    first, second = trail.failures()
    succeeded = next(e for e in trail.entries(run_id=run.run_id) if e.outcome == "succeeded")

    replay = trail.start_run("flow", "mlc-audit replay")
    assert trail.mark_replayed([first.id, succeeded.id], replay.run_id) == 1
    assert [e.id for e in trail.failures()] == [second.id]
    original = trail.entry(first.id)
    assert original.outcome == "replayed" and original.error == "boom"
    [answer] = trail.replays_of(first.id)
    assert (answer.run_id, answer.replay_of, answer.outcome) == (replay.run_id, first.id, "succeeded")
    assert answer.payload_json == first.payload_json and answer.record_key == first.record_key
    assert trail.entry(succeeded.id).outcome == "succeeded"
    assert trail.mark_replayed([first.id], replay.run_id) == 0  # already answered
    assert trail.run(replay.run_id).outcomes == {"succeeded": 1}
    with pytest.raises(UnknownRunError):
        trail.mark_replayed([second.id], "no-such-run")


def test_many_replayed_entries_are_marked_in_chunks(trail):
    run = trail.start_run("flow", "target-test")
    run.record([entry(f"PO-{n}", outcome="failed") for n in range(1_234)])
    replay = trail.start_run("flow", "mlc-audit replay")
    assert trail.mark_replayed((e.id for e in trail.failures()), replay.run_id) == 1_234
    assert list(trail.failures()) == []
    assert trail.run(replay.run_id).entries == 1_234
