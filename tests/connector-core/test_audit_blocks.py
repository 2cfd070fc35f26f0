"""The lean audit trail on SQLite and a real PostgreSQL: entries that did not fail in compressed blocks, failed ones as
rows, every payload back byte for byte, one id order, lookups by key and id, merged blocks, retention, and a trail
written by the version before blocks read, extended and compacted without losing an entry."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_connector_core import audit_blocks
from ml_connector_core.audit import AuditEntry, AuditTrail, dump_json
from ml_connector_core.redaction import REDACTED
from support.singer import BIN

LEGACY_TRAIL = Path(__file__).with_name("legacy_audit_trail.sql")


def order(n: int, **fields) -> dict:
    return {"OrderNo": f"P{1_000_000 + n}", "Company": ("10", "20", "30")[n % 3], "VendorNo": f"S{10_000 + n % 97}",
            "Objstate": ("Planned", "Released", "Closed")[n % 3], "TotalNetAmount": Decimal(f"{n * 7919 % 100000}.45"),
            "CurrencyRate": Decimal("10.4721") if n % 10 else Decimal("1.000000000000000000000001"),
            "OrderDate": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}", "NoteText": None if n % 4 else "O'Brien's order",
            **fields}


def entry(n: int, *, outcome: str = "succeeded", operation: str = "insert", stream: str = "purchase_orders",
          **fields) -> AuditEntry:
    return AuditEntry(stream=stream, key={"OrderNo": f"P{1_000_000 + n}"}, operation=operation, outcome=outcome,
                      version=f"2026-11-0{1 + n % 9}T10:00:00Z", destination=f"/data/ifs/{stream}",
                      error="HTTP 503: retries exhausted" if outcome == "failed" else None,
                      payload=fields.pop("payload", order(n)), **fields)


def blocks_of(trail: AuditTrail, run_id: str | None = None) -> list[sa.Row]:
    query = sa.text("SELECT block_id, run_id, stream, first_id, last_id, entry_count, documents IS NULL AS emptied "
                    "FROM audit_blocks" + (" WHERE run_id = :run" if run_id else "") + " ORDER BY first_id")
    with trail._engine.connect() as conn:
        return conn.execute(query, {"run": run_id}).all()


def rows_of(trail: AuditTrail) -> list[sa.Row]:
    with trail._engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, outcome FROM audit_records ORDER BY id")).all()


@pytest.fixture
def trail(audit_url):
    with AuditTrail(audit_url) as trail:
        yield trail


def test_payloads_come_back_byte_for_byte_from_blocks(trail):
    payloads = [
        order(1),
        {"amount": Decimal("12345678901234567890.12345678901234567890"), "rate": Decimal("1E+2"),
         "tiny": Decimal("-0.000000000000000000000001"), "big": 2**80, "text": 'Ümlaut "quoted" \\ back\n',
         "nested": {"lines": [{"qty": Decimal("3.000")}, None], "ok": True}, "nothing": None},
        {"Company": "10", "OrderNo": "P1000003"},  # another field order: another group of columns
        ["a list", Decimal("0.10")],
        "a plain string",
        {"client_secret": "s3cr3t", "body": {"password": "pw", "limit": Decimal("1.50")}},  # masked, as rows are
        {},
    ]
    with trail.start_run("ifs-to-databricks", "target-databricks") as run:
        run.record([entry(n, payload=payload, source={"n": n} if n % 2 else None)
                    for n, payload in enumerate(payloads)])
    stored = list(trail.entries(run_id=run.run_id))
    assert [e.payload_json for e in stored] == [trail.redactor.payload_json(p) for p in payloads]
    assert stored[5].payload == {"client_secret": REDACTED, "body": {"password": REDACTED, "limit": Decimal("1.50")}}
    assert [e.source for e in stored] == [{"n": n} if n % 2 else None for n in range(len(payloads))]
    assert list(stored[1].payload) == list(payloads[1]) and stored[1].payload["tiny"] == Decimal("-1E-24")
    assert [(b.entry_count, b.emptied) for b in blocks_of(trail)] == [(len(payloads), False)]
    assert rows_of(trail) == []  # nothing failed: no row per entry


def test_failed_and_succeeded_entries_share_one_id_order(trail):
    with trail.start_run("ifs-to-databricks", "target-databricks") as run:
        run.record([entry(1), entry(2, outcome="failed"), entry(3, stream="vouchers"), entry(4),
                    entry(5, outcome="failed", stream="vouchers")])
        run.record([entry(6, operation="update")])
    everything = list(trail.entries())
    assert [(e.record_key, e.outcome, e.stream) for e in everything] == [
        ('{"OrderNo":"P1000001"}', "succeeded", "purchase_orders"),
        ('{"OrderNo":"P1000002"}', "failed", "purchase_orders"),
        ('{"OrderNo":"P1000003"}', "succeeded", "vouchers"),
        ('{"OrderNo":"P1000004"}', "succeeded", "purchase_orders"),
        ('{"OrderNo":"P1000005"}', "failed", "vouchers"),
        ('{"OrderNo":"P1000006"}', "succeeded", "purchase_orders"),
    ]
    ids = [e.id for e in everything]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [e.id for e in trail.failures()] == [ids[1], ids[4]]
    for expected in everything:  # by id, whichever table holds it
        found = trail.entry(expected.id)
        assert (found.id, found.record_key, found.outcome, found.payload_json, found.flow, found.destination) == (
            expected.id, expected.record_key, expected.outcome, expected.payload_json, "ifs-to-databricks",
            expected.destination)
    assert [e.id for e in trail.entries(entry_ids=[ids[5], ids[1], ids[2]])] == [ids[1], ids[2], ids[5]]
    assert [e.id for e in trail.entries(stream="vouchers")] == [ids[2], ids[4]]
    assert [e.id for e in trail.entries(outcome="succeeded", limit=2)] == [ids[0], ids[2]]
    assert trail.run(run.run_id).outcomes == {"succeeded": 4, "failed": 2}
    assert trail.run(run.run_id).operations == {"insert": 5, "update": 1}
    assert trail.knows_stream("vouchers") and not trail.knows_stream("receipts")


def test_a_key_is_found_in_every_run_that_wrote_it(trail):
    key = {"OrderNo": "P1000042"}
    for version in range(3):
        with trail.start_run("ifs-to-teams", "target-teams") as run:
            run.record([entry(n, operation="update" if version else "insert") for n in range(40, 45)])
    found = list(trail.entries(stream="purchase_orders", key=key, outcome="succeeded"))
    assert len(found) == 3 and all(e.record_key == '{"OrderNo":"P1000042"}' for e in found)
    assert [e.operation for e in found] == ["insert", "update", "update"]
    assert found[-1].payload == {**order(42), "TotalNetAmount": Decimal(order(42)["TotalNetAmount"])}
    assert list(trail.entries(key={"OrderNo": "P1000042"})) == found  # without the stream: every stream's blocks
    assert list(trail.entries(stream="vouchers", key=key)) == []
    assert list(trail.entries(stream="purchase_orders", key={"OrderNo": "P9"})) == []
    # A trail opened later (a new process) builds its key index from the store.
    with AuditTrail(trail.url) as other:
        assert [e.id for e in other.entries(stream="purchase_orders", key=key)] == [e.id for e in found]


def test_small_batches_are_merged_when_the_run_ends_ids_and_order_kept(trail):
    # Two runs writing at the same time, one entry per batch (as target-ifscloud does): their ids interleave.
    first = trail.start_run("jira-to-ifs", "target-ifscloud")
    second = trail.start_run("jira-to-ifs", "target-ifscloud")
    for n in range(12):
        (first if n % 2 else second).record([entry(n, stream="jira_purchase_orders")])
    first.record([entry(100, outcome="failed", stream="jira_purchase_orders")])
    before = [(e.id, e.run_id, e.payload_json) for e in trail.entries()]
    assert len(blocks_of(trail)) == 12
    first.finish()
    assert [b.entry_count for b in blocks_of(trail, first.run_id)] == [6]
    second.finish()
    assert [b.entry_count for b in blocks_of(trail, second.run_id)] == [6]
    after = [(e.id, e.run_id, e.payload_json) for e in trail.entries()]
    assert after == before  # the same entries, same ids, in the order written, though the merged blocks overlap
    assert [e.id for e in trail.entries(run_id=first.run_id)] == [i for i, run, _ in before if run == first.run_id]
    assert trail.entry(before[5][0]).payload_json == before[5][2]
    key = {"OrderNo": "P1000007"}
    assert [e.id for e in trail.entries(stream="jira_purchase_orders", key=key)] == [before[7][0]]


def test_an_entry_whose_payload_an_earlier_entry_holds_keeps_none(trail, audit_url):
    with trail.start_run("ifs-to-databricks", "target-databricks") as run:
        run.record([entry(1)])
    with trail.start_run("ifs-to-databricks", "target-databricks") as rerun:
        run_entries = [entry(1, operation="unchanged", source=order(1), keep_payload=False),
                       entry(2, operation="skipped_duplicate"), entry(3, operation="unchanged")]
        rerun.record(run_entries)
    written, unchanged, duplicate, looked_up = trail.entries()
    assert unchanged.operation == "unchanged" and unchanged.payload_json is None and unchanged.source_json is None
    assert unchanged.payload_note == ("not kept: this entry wrote nothing, an earlier entry of its key holds what it "
                                      "was given")
    assert duplicate.payload == order(2) and duplicate.payload_note is None  # an older version: not elsewhere
    assert looked_up.payload == order(3)  # unchanged too, but its target keeps what it sent (a lookup, say)
    shown = subprocess.run([str(BIN / "mlc-audit"), "--url", audit_url, "show", str(unchanged.id)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert (f"payload: (not kept: this entry wrote nothing, an earlier entry of its key holds what it was given; "
            f"the last payload written for this key is entry {written.id})") in shown.stdout


def test_retention_empties_old_payloads_of_its_flow_but_never_failed_ones(trail):
    with trail.start_run("ifs-to-databricks", "target-databricks") as run:
        run.record([entry(1), entry(2, outcome="failed"), entry(3, outcome="failed")])
    with trail.start_run("ifs-to-teams", "target-teams") as other_flow:
        other_flow.record([entry(4)])
    [delivered, still_failed] = trail.failures()
    replay = trail.start_run("ifs-to-databricks", "mlc-audit replay")
    trail.mark_replayed([delivered.id], replay.run_id)
    replay.finish()

    assert trail.prune_documents("ifs-to-databricks", timedelta(days=1)) == 0  # nothing that old yet
    assert trail.prune_documents("ifs-to-databricks", timedelta(0)) == 3  # the block, the replayed row, its answer
    succeeded, replayed, failed, other, answer = trail.entries()
    assert succeeded.payload_json is None and succeeded.payload_note.startswith("removed by the payload retention")
    assert (succeeded.record_key, succeeded.version, succeeded.operation) == ('{"OrderNo":"P1000001"}',
                                                                             "2026-11-02T10:00:00Z", "insert")
    assert replayed.outcome == "replayed" and replayed.payload_json is None
    assert answer.replay_of == replayed.id and answer.payload_json is None
    assert failed.id == still_failed.id and failed.payload == order(3)  # kept until a replay delivers it
    assert other.flow == "ifs-to-teams" and other.payload == order(4)  # another flow's setting, not this one's
    assert trail.prune_documents("ifs-to-databricks", timedelta(0)) == 0


def test_entries_stay_small(trail):
    """5,000 IFS purchase orders (each about 260 bytes of JSON): a few dozen bytes an entry, where one row each with
    its own indexes took about 640."""
    with trail.start_run("ifs-to-databricks", "target-databricks") as run:
        run.record([entry(n) for n in range(5_000)])
    used = trail.bytes_used()
    assert used / 5_000 < 80, f"{used / 5_000:.0f} bytes an entry"
    stored = list(trail.entries(run_id=run.run_id))  # payloads of every frame of the block
    assert [stored[n].payload_json for n in (0, 999, 1000, 2500, 4999)] == [
        dump_json(order(n)) for n in (0, 999, 1000, 2500, 4999)]


# --- A trail written by the version before blocks (SQLite, the default store) ---


@pytest.fixture
def legacy_url(tmp_path) -> str:
    path = tmp_path / "audit.sqlite"
    with sqlite3.connect(path) as connection:
        connection.executescript(LEGACY_TRAIL.read_text())
    return f"sqlite:///{path}"


def test_a_trail_of_the_previous_version_is_read_extended_and_compacted(legacy_url):
    with AuditTrail(legacy_url) as trail:
        old = list(trail.entries())
        assert [e.id for e in old] == list(range(1, 9))
        assert [e.id for e in trail.failures()] == [5]
        assert [e.id for e in trail.replays_of(3)] == [8]
        assert old[1].payload_json == ('{"OrderNo":"P1000002","Company":"10","TotalNetAmount":2234.50,"Rate":1E+2,'
                                       '"NoteText":"O\'Brien \\"ü\\""}')
        assert trail.run("20261101T080000Z-0a1b2c3d").outcomes == {"succeeded": 5, "replayed": 1, "failed": 1}
        with trail.start_run("ifs-to-databricks", "target-databricks") as run:
            run.record([entry(9), entry(10, outcome="failed")])
        new = list(trail.entries(run_id=run.run_id))
        assert [e.id for e in new] == [9, 10]  # after the last entry of the old version

        result = trail.compact()
        assert result.moved_rows == 5 and result.bytes_before > 0 and result.bytes_after > 0
        # Succeeded entries moved into blocks; the failed, the replayed and the replay's answer stay rows.
        assert [(row.id, row.outcome) for row in rows_of(trail)] == [(3, "replayed"), (5, "failed"), (8, "succeeded"),
                                                                     (10, "failed")]
        after = list(trail.entries())
        assert [(e.id, e.run_id, e.stream, e.record_key, e.version, e.operation, e.destination, e.outcome, e.attempts,
                 e.error, e.payload_json, e.written_at, e.replay_of) for e in after] == [
            (e.id, e.run_id, e.stream, e.record_key, e.version, e.operation, e.destination, e.outcome, e.attempts,
             e.error, e.payload_json, e.written_at, e.replay_of) for e in [*old, *new]]
        assert trail.entry(7).payload_json == '["not","an","object"]'  # an entry that was stored whole stays so
        assert [e.id for e in trail.entries(stream="purchase_orders", key={"OrderNo": "P1000002"})] == [2]
        assert trail.compact().moved_rows == 0  # again: nothing left to move
    with sqlite3.connect(legacy_url.removeprefix("sqlite:///")) as connection:
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # later retention gives space back


def test_mlc_audit_compact_and_show_by_key(legacy_url):
    def mlc_audit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "mlc-audit"), "--url", legacy_url, *args], capture_output=True, text=True,
                              timeout=120)

    compacted = mlc_audit("compact")
    assert compacted.returncode == 0, compacted.stderr
    assert compacted.stdout.startswith("moved 5 entries into blocks, merged ")
    shown = mlc_audit("show", "--key", '{"OrderNo": "P1000003"}')
    assert shown.returncode == 0, shown.stderr
    assert "entry:           8\n" in shown.stdout and "earlier entries: #3\n" in shown.stdout
    assert '"TotalNetAmount": 3234.50' in shown.stdout
    assert mlc_audit("show", "--key", '{"OrderNo": "P9"}').stderr == (
        f'mlc-audit: no entries with key {{"OrderNo":"P9"}} in AuditTrail({legacy_url!r})\n')
    assert "show needs an ENTRY_ID or --key" in mlc_audit("show").stderr


def test_a_block_s_columns_round_trip_through_merging():
    texts = [dump_json(order(n)) for n in range(3)] + [None, '["whole"]', '{"a":1,"a":2}']
    merged = audit_blocks.merged_document_columns([audit_blocks.document_columns_of_texts(texts[:2]),
                                                   audit_blocks.document_columns_of_texts(texts[2:])])
    reader = audit_blocks.DocumentReader(merged)
    assert [reader.text(i) for i in range(len(texts))] == texts  # a text with a repeated field is kept whole


def test_pending_entries_are_failed_rows_replaced_by_their_outcome_in_blocks(trail):
    """record_pending (written before an action that cannot be asked about afterwards) stores failed rows; the outcome
    recorded with replacing= takes their place; a pending entry never replaced stays failed (the run was killed)."""
    with trail.start_run("ifs-to-teams", "target-teams") as run:
        with pytest.raises(ValueError, match="must be 'failed'"):
            run.record_pending([entry(0)])
        first = run.record_pending([entry(1, outcome="failed")])
        left = run.record_pending([entry(2, outcome="failed")])
        run.record([entry(1)], replacing=first)
    assert rows_of(trail) == [(left[0], "failed")]  # entry 1's pending row is gone; entry 2's stays
    assert len(blocks_of(trail, run.run_id)) == 1  # entry 1, succeeded, in a block
    stored = {e.key["OrderNo"]: e.outcome for e in trail.entries(run_id=run.run_id)}
    assert stored == {"P1000001": "succeeded", "P1000002": "failed"}
    assert first[0] < left[0]  # ids from the one entry counter, never reused


def test_an_outcome_and_the_next_pending_entry_are_recorded_together(trail):
    """record_and_pend: the outcome of one action replaces its pending entry and the next action's pending entry is
    stored, in one transaction; what a run killed after it leaves is that next entry, failed."""
    with trail.start_run("ifs-to-teams", "target-teams") as run:
        first = run.record_and_pend([], pending=[entry(1, outcome="failed")])
        with pytest.raises(ValueError, match="must be 'failed'"):
            run.record_and_pend([entry(1)], replacing=first, pending=[entry(2)])
        assert rows_of(trail) == [(first[0], "failed")]  # the refused call changed nothing
        second = run.record_and_pend([entry(1)], replacing=first, pending=[entry(2, outcome="failed")])
        third = run.record_and_pend([entry(2, outcome="failed", operation="update")], replacing=second,
                                    pending=[entry(3, outcome="failed")])
    assert first[0] < second[0] < third[0]
    outcomes = {e.key["OrderNo"]: (e.outcome, e.operation) for e in trail.entries(run_id=run.run_id)}
    assert outcomes["P1000001"][0] == "succeeded"
    assert outcomes["P1000002"] == ("failed", "update")  # its outcome, not its pending entry
    assert outcomes["P1000003"][0] == "failed"  # pending when the run ended
    assert len(rows_of(trail)) == 2  # entry 2's outcome and entry 3's pending entry; entry 1 is in a block
