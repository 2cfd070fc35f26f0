"""`mlc-audit` as a user runs it: a real process on a real store, and replays into a real Singer target process."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ml_connector_core.audit import AUDIT_URL_ENV, AuditEntry, AuditTrail
from support.singer import BIN

FILE_TARGET = Path(__file__).with_name("singer_file_target.py")
LINES_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "amount": {"type": "number"}, "fail_replay": {"type": "boolean"}},
}


def amount(n: int) -> Decimal:
    """42 significant digits: more than a float (17) or Decimal arithmetic's default context (28) keeps."""
    return Decimal(f"98765432109876543210.01234567890123456789{n:02d}")


def mlc_audit(*args: str, url: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [str(BIN / "mlc-audit"), *(["--url", url] if url else []), *args]
    environment = {key: value for key, value in os.environ.items() if key != AUDIT_URL_ENV}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**environment, **(env or {})})


def target_command(output: Path) -> str:
    return shlex.join([sys.executable, str(FILE_TARGET), "--output", str(output)])


def line(n: int, *, outcome: str = "failed", stream: str = "lines", **payload) -> AuditEntry:
    return AuditEntry(
        stream=stream,
        key={"id": n},
        operation="insert",
        outcome=outcome,
        attempts=3 if outcome == "failed" else 1,
        error=f"HTTP 503 on line {n}\nretries exhausted" if outcome == "failed" else None,
        destination="main.ifs.lines",
        payload={"id": n, "amount": amount(n), **payload},
    )


@pytest.fixture
def seeded(audit_url):
    """Two runs: the first with failures in two streams, the second with one more failure."""
    with AuditTrail(audit_url) as trail:
        with trail.start_run(flow="ifs-to-databricks", plugin="target-databricks") as first:
            first.remember_schema("lines", LINES_SCHEMA, ["id"])
            first.remember_schema("orders", {"type": "object"}, ["id"])
            first.record([line(1, outcome="succeeded"), line(2), line(3), line(4, stream="orders")])
        with trail.start_run(flow="ifs-to-databricks", plugin="target-databricks") as second:
            second.remember_schema("lines", LINES_SCHEMA, ["id"])
            second.record([line(5), line(6, outcome="succeeded")])
        ids = {entry.payload["id"]: entry.id for entry in trail.entries()}
    return audit_url, first.run_id, second.run_id, ids


def messages(text: str) -> list[dict]:
    return [json.loads(raw, parse_float=Decimal) for raw in text.splitlines() if raw.strip()]


def test_runs_lists_each_run_with_its_counts(seeded):
    url, first, second, _ = seeded
    listed = mlc_audit("runs", url=url)
    assert listed.returncode == 0, listed.stderr
    header, newest, oldest = listed.stdout.splitlines()
    assert header.split() == ["RUN", "FLOW", "PLUGIN", "STARTED", "FINISHED", "STATUS", "ENTRIES", "WHY"]
    assert newest.startswith(second) and oldest.startswith(first)
    assert "ifs-to-databricks" in oldest and "target-databricks" in oldest and " succeeded " in oldest
    assert oldest.endswith("failed 3, succeeded 1 | insert 4")
    assert len(mlc_audit("runs", "--limit", "1", url=url).stdout.splitlines()) == 2
    assert "no runs of flow 'other'" in mlc_audit("runs", "--flow", "other", url=url).stdout


def test_failures_each_shows_every_failed_entry_with_its_error(seeded):
    url, first, second, ids = seeded
    listed = mlc_audit("failures", "--each", url=url)
    assert listed.returncode == 0, listed.stderr
    for n in (2, 3, 4, 5):
        assert f"#{ids[n]}  " in listed.stdout
    assert f"#{ids[1]}  " not in listed.stdout
    assert "    HTTP 503 on line 2\n    retries exhausted" in listed.stdout
    assert "4 failed entries" in listed.stdout

    by_key = mlc_audit("failures", "--each", "--stream", "lines", "--key", '{"id": 5}', url=url).stdout
    assert f"#{ids[5]}  " in by_key and f"#{ids[2]}  " not in by_key
    by_run = mlc_audit("failures", "--each", "--run", first, "--stream", "orders", url=url).stdout
    assert f"#{ids[4]}  " in by_run and "1 failed entry;" in by_run
    assert "no failed entries" in mlc_audit("failures", "--each", "--key", '{"id": 1}', url=url).stdout


def test_failures_groups_entries_by_run_stream_destination_and_error(sqlite_url):
    """436 failures from a 503 storm and a few refusals: a handful of lines, not one block per entry."""
    def failed(n: int, error: str, stream: str = "lines", destination: str = "main.ifs.lines") -> AuditEntry:
        return AuditEntry(stream=stream, key={"id": n}, operation="insert", outcome="failed", attempts=8,
                          error=error, destination=destination, payload={"id": n})

    storm = "IFS unavailable: HTTP 503 after 8 tries\nretries exhausted"
    with AuditTrail(sqlite_url) as trail:
        with trail.start_run(flow="ifs-to-databricks", plugin="target-databricks") as run:
            run.record([failed(n, storm) for n in range(1, 401)])  # entries 1-400
            run.record([failed(401, "amount is not a number"), failed(402, storm)])
            run.record([failed(n, storm, destination="main.ifs.other") for n in range(403, 437)])
            run.record([line(437, outcome="succeeded")])
        with trail.start_run(flow="ifs-to-databricks", plugin="target-databricks") as later:
            later.record([failed(438, storm)])
        ids = [entry.id for entry in trail.entries()]
    assert ids == list(range(1, 439))  # so that the ranges below are the entry ids

    listed = mlc_audit("failures", url=sqlite_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) < 25, listed.stdout
    assert lines[0] == "failed entries not replayed yet (all runs), by run, stream, destination and error:"
    blocks = listed.stdout.split("\n\n")[1:-1]
    assert blocks == [
        f"401 entries  run {run.run_id}  lines -> main.ifs.lines  flow ifs-to-databricks\n"
        f"    IFS unavailable: HTTP 503 after 8 tries\n    retries exhausted\n    #1-400, #402",
        f"1 entry  run {run.run_id}  lines -> main.ifs.lines  flow ifs-to-databricks\n"
        f"    amount is not a number\n    #401",
        f"34 entries  run {run.run_id}  lines -> main.ifs.other  flow ifs-to-databricks\n"
        f"    IFS unavailable: HTTP 503 after 8 tries\n    retries exhausted\n    #403-436",
        f"1 entry  run {later.run_id}  lines -> main.ifs.lines  flow ifs-to-databricks\n"
        f"    IFS unavailable: HTTP 503 after 8 tries\n    retries exhausted\n    #438",
    ]
    assert lines[-1].startswith("437 failed entries in 4 groups; `mlc-audit show ID` for one entry, "
                                "`mlc-audit failures --each` for every entry")
    assert len(mlc_audit("failures", "--each", url=sqlite_url).stdout.splitlines()) > 1300  # as before, on request

    only_later = mlc_audit("failures", "--run", later.run_id, url=sqlite_url).stdout
    assert f"run {later.run_id}" in only_later and f"run {run.run_id}" not in only_later
    assert "1 failed entry in 1 group;" in only_later


def test_a_groups_ids_are_bounded():
    from ml_connector_core.audit_cli import _compact_ids

    assert _compact_ids([5, 3, 4, 9, 11, 12]) == "#3-5, #9, #11-12"
    scattered = list(range(1, 200, 2))  # 100 ids, no two consecutive
    assert _compact_ids(scattered) == ", ".join(f"#{n}" for n in scattered[:20]) + " and 80 more"
    assert _compact_ids([*range(1, 51), *range(100, 300, 2)], limit=2) == "#1-50, #100 and 99 more"


def test_show_prints_the_exact_payload(seeded):
    url, first, _, ids = seeded
    shown = mlc_audit("show", str(ids[2]), url=url)
    assert shown.returncode == 0, shown.stderr
    assert f"run:         {first} (target-databricks, succeeded)" in shown.stdout
    assert 'key:         {"id":2}' in shown.stdout and "outcome:     failed" in shown.stdout
    assert "attempts:    3" in shown.stdout and "destination: main.ifs.lines" in shown.stdout
    payload = shown.stdout.split("payload:\n", 1)[1]
    assert '  "amount": 98765432109876543210.0123456789012345678902\n' in payload
    assert json.loads(payload, parse_float=Decimal) == {"id": 2, "amount": amount(2)}


def test_unknown_runs_streams_and_entries_are_named(seeded):
    url, *_ = seeded
    cases = [
        (("failures", "--run", "nope"), "no run 'nope'"),
        (("failures", "--stream", "nope"), "no entries of stream 'nope'"),
        (("show", "424242"), "no entry 424242"),
        (("replay", "--entry", "424242", "--dry-run"), "no entry 424242"),
        (("replay", "--stream", "lines", "--target-command", "no-such-target-xyz"), "cannot start the target command 'no-such-target-xyz'"),
    ]
    for args, message in cases:
        result = mlc_audit(*args, url=url)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_mistakes_on_the_command_line_are_explained(sqlite_url, tmp_path):
    with AuditTrail(sqlite_url) as trail:
        trail.start_run("f", "target-test").finish()
    cases = [
        (("failures", "--key", "{id: 1}"), "argument --key: not JSON"),
        (("failures", "--key", "[1, 2]"), "a key is a JSON object"),
        (("show", "abc"), "not a whole number"),
        (("replay", "--dry-run"), "say what to replay"),
        (("replay", "--run", "x"), "replay needs --target-command"),
    ]
    for args, message in cases:
        result = mlc_audit(*args, url=sqlite_url)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    for bad_url, message in [
        ("nonsense", "not a database URL"),
        (f"sqlite:///{tmp_path / 'missing' / 'audit.sqlite'}", "no audit trail at"),
        ("oracle://scott:tiger@db/x", "SQLite or PostgreSQL"),
    ]:
        result = mlc_audit("runs", url=bad_url)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing").exists()


def test_the_store_comes_from_the_environment_or_the_working_directory(tmp_path):
    with AuditTrail(f"sqlite:///{tmp_path / '.ml-connector' / 'audit.sqlite'}") as trail:
        trail.start_run("here", "target-test").finish()
    found_here = subprocess.run(
        [str(BIN / "mlc-audit"), "runs"], capture_output=True, text=True, cwd=tmp_path,
        env={key: value for key, value in os.environ.items() if key != AUDIT_URL_ENV},
    )
    assert found_here.returncode == 0 and " here " in found_here.stdout, found_here.stderr
    elsewhere = tmp_path / "elsewhere.sqlite"
    with AuditTrail(f"sqlite:///{elsewhere}") as trail:
        trail.start_run("from-env", "target-test").finish()
    assert " from-env " in mlc_audit("runs", env={AUDIT_URL_ENV: f"sqlite:///{elsewhere}"}).stdout


def test_a_dry_run_prints_schema_then_records_and_changes_nothing(seeded):
    url, first, second, ids = seeded
    dry = mlc_audit("replay", "--stream", "lines", "--dry-run", url=url)
    assert dry.returncode == 0, dry.stderr
    sent = messages(dry.stdout)
    # Both runs remembered the same SCHEMA for "lines": it is sent once, before the first record.
    assert [(m["type"], m["stream"]) for m in sent] == [("SCHEMA", "lines"), ("RECORD", "lines"), ("RECORD", "lines"), ("RECORD", "lines")]
    assert sent[0]["schema"] == LINES_SCHEMA and sent[0]["key_properties"] == ["id"]
    assert [m["record"]["id"] for m in sent[1:]] == [2, 3, 5]
    assert '"amount":98765432109876543210.0123456789012345678902' in dry.stdout
    assert all(m["type"] != "STATE" for m in sent)
    with AuditTrail(url) as trail:
        assert len(list(trail.failures())) == 4


def test_a_changed_schema_is_sent_again_before_the_records_it_describes(audit_url):
    widened = {**LINES_SCHEMA, "properties": {**LINES_SCHEMA["properties"], "note": {"type": "string"}}}
    with AuditTrail(audit_url) as trail:
        for schema, n in ((LINES_SCHEMA, 1), (widened, 2), (LINES_SCHEMA, 3)):
            with trail.start_run(flow="f", plugin="target-databricks") as run:
                run.remember_schema("lines", schema, ["id"])
                run.record([line(n)])
    sent = messages(mlc_audit("replay", "--stream", "lines", "--dry-run", url=audit_url).stdout)
    assert [m["type"] for m in sent] == ["SCHEMA", "RECORD", "SCHEMA", "RECORD", "SCHEMA", "RECORD"]
    assert [m["schema"] for m in sent if m["type"] == "SCHEMA"] == [LINES_SCHEMA, widened, LINES_SCHEMA]


def test_a_replay_delivers_the_failures_and_marks_them_replayed(seeded, tmp_path):
    url, first, second, ids = seeded
    delivered = tmp_path / "delivered.jsonl"
    replay = mlc_audit("replay", "--run", first, "--target-command", target_command(delivered), url=url)
    assert replay.returncode == 0, replay.stderr
    assert "replayed 3 entries of lines, orders" in replay.stdout

    sent = messages(delivered.read_text())
    assert [(m["type"], m["stream"]) for m in sent] == [
        ("SCHEMA", "lines"), ("RECORD", "lines"), ("RECORD", "lines"), ("SCHEMA", "orders"), ("RECORD", "orders"),
    ]
    assert [m["record"] for m in sent if m["type"] == "RECORD"] == [
        {"id": n, "amount": amount(n)} for n in (2, 3, 4)
    ]
    assert str(sent[1]["record"]["amount"]) == "98765432109876543210.0123456789012345678902"

    with AuditTrail(url) as trail:
        assert [entry.payload["id"] for entry in trail.failures()] == [5]  # the other run's failure waits
        for n in (2, 3, 4):
            assert trail.entry(ids[n]).outcome == "replayed"
            [answer] = trail.replays_of(ids[n])
            assert answer.outcome == "succeeded"
        replay_run = trail.run(answer.run_id)
        assert (replay_run.plugin, replay_run.status, replay_run.flow) == ("mlc-audit replay", "succeeded", "ifs-to-databricks")
        assert replay_run.summary["replayed"] == 3 and replay_run.outcomes == {"succeeded": 3}
    assert f"replayed by: entry {answer.id} in run {answer.run_id}" in mlc_audit("show", str(ids[4]), url=url).stdout
    assert f"replay of:   entry {ids[4]}" in mlc_audit("show", str(answer.id), url=url).stdout

    again = mlc_audit("replay", "--run", first, "--target-command", target_command(delivered), url=url)
    assert again.returncode == 0 and "nothing to replay" in again.stdout
    assert len(messages(delivered.read_text())) == 5  # nothing was sent twice


def test_a_failing_target_leaves_the_entries_failed(audit_url, tmp_path):
    with AuditTrail(audit_url) as trail:
        with trail.start_run(flow="f", plugin="target-databricks") as run:
            run.remember_schema("lines", LINES_SCHEMA, ["id"])
            run.record([line(1), line(2, fail_replay=True), line(3)])
    delivered = tmp_path / "delivered.jsonl"
    replay = mlc_audit("replay", "--stream", "lines", "--target-command", target_command(delivered), url=audit_url)
    assert replay.returncode == 1
    assert "the target command exited 3; the 3 entries stay failed" in replay.stderr
    assert "    target: refusing record 2 (fail_replay)" in replay.stderr
    with AuditTrail(audit_url) as trail:
        assert [entry.payload["id"] for entry in trail.failures()] == [1, 2, 3]
        replay_run = trail.runs(1)[0]
        assert (replay_run.plugin, replay_run.status) == ("mlc-audit replay", "failed")
        assert replay_run.summary["exit_code"] == 3 and replay_run.entries == 0
        good = [entry.id for entry in trail.failures() if entry.payload["id"] != 2]

    # Replaying only the good ones by id succeeds; the bad one stays for later.
    retry = mlc_audit(
        "replay", "--entry", *map(str, good), "--target-command", target_command(delivered), url=audit_url
    )
    assert retry.returncode == 0, retry.stderr
    with AuditTrail(audit_url) as trail:
        assert [entry.payload["id"] for entry in trail.failures()] == [2]


def test_entries_named_that_did_not_fail_are_reported_not_sent(seeded, tmp_path):
    url, _, _, ids = seeded
    delivered = tmp_path / "delivered.jsonl"
    replay = mlc_audit("replay", "--entry", str(ids[1]), str(ids[2]), "--target-command", target_command(delivered), url=url)
    assert replay.returncode == 0, replay.stderr
    assert f"entry {ids[1]} is succeeded, not failed" in replay.stderr
    assert [m["record"]["id"] for m in messages(delivered.read_text()) if m["type"] == "RECORD"] == [2]


def test_a_replay_streams_many_entries_through_the_target(sqlite_url, tmp_path):
    count = 20_000
    with AuditTrail(sqlite_url) as trail:
        with trail.start_run(flow="f", plugin="target-databricks") as run:
            run.remember_schema("lines", LINES_SCHEMA, ["id"])
            run.record([line(n) for n in range(count)])
    delivered = tmp_path / "delivered.jsonl"
    replay = mlc_audit("replay", "--stream", "lines", "--target-command", target_command(delivered), url=sqlite_url)
    assert replay.returncode == 0, replay.stderr
    records = [m for m in messages(delivered.read_text()) if m["type"] == "RECORD"]
    assert [m["record"]["id"] for m in records] == list(range(count))
    with AuditTrail(sqlite_url) as trail:
        assert list(trail.failures()) == []
        assert trail.runs(1)[0].outcomes == {"succeeded": count}


def test_a_replay_sends_the_record_as_received_where_one_was_kept(audit_url, tmp_path):
    """API targets send a request derived from the record; replaying must feed them the record, not the request."""
    request = {"method": "PATCH", "path": "PurchaseOrderSet(OrderNo='P1')", "body": {"Cf_Jira_Status": "Done"}}
    with AuditTrail(audit_url) as trail:
        with trail.start_run(flow="jira-to-ifs", plugin="target-ifscloud") as run:
            run.remember_schema("lines", LINES_SCHEMA, ["id"])
            run.record([
                AuditEntry(stream="lines", key={"id": 7}, operation="update", outcome="failed", error="HTTP 412",
                           payload=request, source={"id": 7, "amount": amount(7)}),
                line(8),  # no record kept: its payload is what is replayed
            ])
        [kept, plain] = list(trail.failures())
        assert kept.payload == request and kept.source == {"id": 7, "amount": amount(7)}
        assert plain.source is None
    sent = messages(mlc_audit("replay", "--stream", "lines", "--dry-run", url=audit_url).stdout)
    assert [m["record"] for m in sent if m["type"] == "RECORD"] == [{"id": 7, "amount": amount(7)}, {"id": 8, "amount": amount(8)}]
    shown = mlc_audit("show", str(kept.id), url=audit_url).stdout
    assert '"Cf_Jira_Status": "Done"' in shown and "record as received:" in shown


def test_a_trail_written_before_the_source_column_existed_is_upgraded(sqlite_url):
    import sqlalchemy as sa

    with AuditTrail(sqlite_url) as trail:
        with trail.start_run(flow="f", plugin="target-databricks") as run:
            run.record([line(1)])
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:  # as that version left it: neither the column nor the indexes that came later
        conn.execute(sa.text("DROP INDEX ix_audit_records_prunable"))
        conn.execute(sa.text("ALTER TABLE audit_records DROP COLUMN source"))
    engine.dispose()
    with AuditTrail(sqlite_url) as trail:
        [old] = list(trail.failures())
        assert old.source is None and old.payload["id"] == 1
        with trail.start_run(flow="f", plugin="target-ifscloud") as run:
            run.record([AuditEntry(stream="lines", key={"id": 2}, operation="update", outcome="failed",
                                   payload={"body": {}}, source={"id": 2})])
        assert [entry.source for entry in trail.failures()] == [None, {"id": 2}]
