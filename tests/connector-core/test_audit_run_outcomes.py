"""Honest runs: a run whose process is gone is interrupted (at once on this host, after the lease elsewhere), and a
run's status covers what the tap did: no input is failed, an input cut short is partial, never succeeded.

Real target processes (target-databricks on local Delta tables), real tap-ifscloud processes against the IFS stand-in,
`mlc-audit` as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from ml_connector_core.audit import AUDIT_URL_ENV, HEARTBEAT_ENV, LEASE_ENV, AuditTrail, runs_table
from support.singer import BIN, record_message, run_target, schema_message, state_message

ORDER = {"OrderNo": {"type": "string"}, "Amount": {"type": "number"}, "ChangedDate": {"type": "string"}}


def target_config(tmp_path: Path, **overrides) -> dict:
    return {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
            **overrides}


def orders(*numbers: int) -> list[dict]:
    return [record_message("orders", {"OrderNo": f"PO-{n}", "Amount": n, "ChangedDate": f"2026-11-{n:02d}"})
            for n in numbers]


def schema() -> dict:
    return schema_message("orders", ORDER, ["OrderNo"], bookmark="ChangedDate")


def complete_input() -> list[dict]:
    return [schema(), *orders(1, 2), state_message({"bookmarks": {"orders": {"replication_key_value": "2026-11-02"}}})]


def mlc_audit(url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in (AUDIT_URL_ENV, LEASE_ENV)
                   and not k.startswith("MELTANO_")}
    completed = subprocess.run([str(BIN / "mlc-audit"), "--url", url, "runs", *args], capture_output=True, text=True,
                               timeout=120, env={**environment, **(env or {})})
    assert completed.returncode == 0, completed.stderr
    return completed


def listed(url: str, run_id: str, **kwargs) -> str:
    """The line `mlc-audit runs` shows for the run."""
    return next(line for line in mlc_audit(url, **kwargs).stdout.splitlines() if line.startswith(run_id))


def start_target(tmp_path: Path, config: dict, env: dict | None = None) -> subprocess.Popen:
    """A target process reading its input from this test, line by line."""
    path = tmp_path / "target-config.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen([str(BIN / "target-databricks"), "--config", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def send_lines(process: subprocess.Popen, messages: list[dict]) -> None:
    process.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    process.stdin.flush()


def wait_for_run(url: str, process: subprocess.Popen, known: set[str] = frozenset()):
    """The run the target process opened (it opens it before reading its input)."""
    deadline = time.monotonic() + 120
    while True:
        with AuditTrail(url) as trail:
            new = [run for run in trail.runs() if run.run_id not in known]
        if new:
            return new[0]
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the target opened no audit run"
        time.sleep(0.1)


def test_a_target_killed_mid_run_is_interrupted_at_once_and_the_next_start_records_it(tmp_path):
    config = target_config(tmp_path)
    url = config["audit_url"]
    target = start_target(tmp_path, config)
    send_lines(target, [schema(), *orders(1, 2, 3)])
    run = wait_for_run(url, target)
    assert (run.status, run.host, run.pid) == ("running", socket.gethostname(), target.pid)
    alive = listed(url, run.run_id)
    assert " running " in alive and " interrupted " not in alive

    target.send_signal(signal.SIGKILL)
    target.wait()
    line = listed(url, run.run_id)
    # Shown at once, before anyone recorded it: the process is gone from this host.
    with AuditTrail(url) as trail:
        recorded = trail.run(run.run_id)
    assert recorded.recorded_status == "running"
    assert " interrupted " in line, line
    assert line.rstrip().endswith(f"process {target.pid} on {socket.gethostname()} is gone (last heartbeat "
                                  f"{recorded.heartbeat_at:%Y-%m-%d %H:%M:%SZ})"), line

    # The next target start on the trail (any flow) records it.
    run_target(tmp_path, target_config(tmp_path, flow="another-flow"), complete_input())
    with AuditTrail(url) as trail:
        killed = trail.run(run.run_id)
        assert (killed.recorded_status, killed.status) == ("interrupted", "interrupted")
        assert killed.reason.startswith(f"process {target.pid} on {socket.gethostname()} is gone")
        assert killed.finished_at is None  # it never finished; the reason says when it was last alive
        assert [r.status for r in trail.runs()] == ["succeeded", "interrupted"]


def test_a_run_elsewhere_is_interrupted_once_its_heartbeat_is_older_than_the_lease_and_a_live_one_never(tmp_path):
    config = target_config(tmp_path)
    url = config["audit_url"]
    now = datetime.now(timezone.utc)
    AuditTrail(url).close()  # the trail's tables
    with sa.create_engine(url).begin() as conn:
        # Two runs another machine writes to the shared trail: one silent for ten minutes, one beating.
        for run_id, heartbeat in (("silent", now - timedelta(minutes=10)), ("beating", now)):
            conn.execute(runs_table.insert().values(
                run_id=run_id, flow="ifs-to-jira", plugin="target-jira", started_at=now - timedelta(hours=1),
                status="running", host="build-agent-7", pid=4242, process_start="other-boot/pid:[1]/1",
                heartbeat_at=heartbeat))
    silent = listed(url, "silent")
    assert " interrupted " in silent
    assert silent.rstrip().endswith(f"no heartbeat from process 4242 on build-agent-7 since "
                                    f"{now - timedelta(minutes=10):%Y-%m-%d %H:%M:%SZ} (lease 300 s)"), silent
    assert " running " in listed(url, "beating")
    # The lease is the reader's: an hour-long lease still counts the silent run as alive.
    assert " running " in listed(url, "silent", env={LEASE_ENV: "3600"})

    run_target(tmp_path, config, complete_input())
    with AuditTrail(url) as trail:
        assert trail.run("silent").recorded_status == "interrupted"
        assert trail.run("beating").recorded_status == "running"  # never mark a live run


def test_a_live_run_marked_interrupted_comes_back_with_its_next_heartbeat(tmp_path):
    """A reader elsewhere may judge a run whose heartbeat is late interrupted; the run's next heartbeat undoes that."""
    config = target_config(tmp_path)
    url = config["audit_url"]
    target = start_target(tmp_path, config, env={HEARTBEAT_ENV: "0.1"})
    try:
        send_lines(target, [schema(), *orders(1)])
        run = wait_for_run(url, target)
        with sa.create_engine(url).begin() as conn:
            conn.execute(runs_table.update().where(runs_table.c.run_id == run.run_id).values(
                status="interrupted", reason="no heartbeat from it since ... (lease 300 s)"))
        with AuditTrail(url) as trail:
            deadline = time.monotonic() + 60
            while trail.run(run.run_id).recorded_status != "running":
                assert time.monotonic() < deadline and target.poll() is None, "the heartbeat did not bring it back"
                time.sleep(0.05)
            back = trail.run(run.run_id)
            assert back.reason is None and back.heartbeat_at > run.heartbeat_at
        send_lines(target, [state_message({"bookmarks": {"orders": {"replication_key_value": "2026-11-01"}}})])
        target.stdin.close()
        assert target.wait(timeout=120) == 0, target.stderr.read()
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
    with AuditTrail(url) as trail:
        assert trail.run(run.run_id).status == "succeeded"


def test_an_input_cut_short_is_partial_with_exit_1_and_an_input_without_any_state_is_not_judged(tmp_path):
    url = target_config(tmp_path)["audit_url"]
    state = state_message({"bookmarks": {"orders": {"replication_key_value": "2026-11-02"}}})
    cut = run_target(tmp_path, target_config(tmp_path), [schema(), *orders(1, 2), state, *orders(3)], expected_exit=1)
    assert cut.states == [state["value"]]  # what was written before the cut is covered; the rest is read again
    with AuditTrail(url) as trail:
        run = trail.runs(1)[0]
    assert run.status == "partial" and run.operations == {"insert": 3}
    assert run.reason == ("the input ended early in stream orders (after 3 of its records) with no closing STATE: the "
                          "tap stopped before finishing; streams after it were not read")
    assert f"Run {run.run_id} is partial: the input ended early" in cut.stderr and "Exit status 1" in cut.stderr

    # For a tap that may end a complete sync on a record, the setting turns the judgement off.
    run_target(tmp_path, target_config(tmp_path, expect_closing_state=False), [schema(), *orders(4), state, *orders(5)])
    # A replay or a file carries no STATE at all: its end says nothing about a tap.
    run_target(tmp_path, target_config(tmp_path), [schema(), *orders(6)])
    with AuditTrail(url) as trail:
        assert [(r.status, r.reason) for r in trail.runs(2)] == [("succeeded", None), ("succeeded", None)]


def pipe(tmp_path: Path, tap_config: dict, config: dict) -> tuple[int, subprocess.CompletedProcess]:
    """`tap-ifscloud | target-databricks` as a shell runs it: the tap's exit status, and the target's process."""
    (tmp_path / "tap-config.json").write_text(json.dumps(tap_config))
    (tmp_path / "target-config.json").write_text(json.dumps(config))
    with (tmp_path / "tap.log").open("wb") as tap_log:
        tap = subprocess.Popen([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "tap-config.json")],
                               stdout=subprocess.PIPE, stderr=tap_log)
        target = subprocess.run([str(BIN / "target-databricks"), "--config", str(tmp_path / "target-config.json")],
                                stdin=tap.stdout, capture_output=True, text=True, timeout=600)
        tap.stdout.close()
        return tap.wait(timeout=60), target


def test_a_tap_that_fails_before_sending_anything_fails_the_run_with_no_input(ifs, tmp_path):
    ifs.fault("status", 1000, status=500, path_contains="$metadata")
    config = target_config(tmp_path)
    tap_status, target = pipe(tmp_path, ifs.tap_config(max_tries=2), config)
    assert tap_status != 0 and target.returncode == 1, target.stderr
    with AuditTrail(config["audit_url"]) as trail:
        run = trail.runs(1)[0]
    assert (run.status, run.reason, run.entries) == ("failed", "no input: the tap sent nothing", 0)
    line = listed(config["audit_url"], run.run_id)
    assert " failed " in line and line.rstrip().endswith(" no input: the tap sent nothing"), line


def test_a_tap_that_fails_on_one_projection_makes_the_run_partial_naming_where_its_input_ended(ifs, tmp_path):
    # Every data request to the purchase order projection answers 500: its streams are never read.
    ifs.fault("status", 100_000, status=500, path_contains="PurchaseOrderHandling.svc/PurchaseOrder")
    config = target_config(tmp_path)
    tap_status, target = pipe(tmp_path, ifs.tap_config(max_tries=2), config)
    assert tap_status != 0 and target.returncode == 1, target.stderr
    with AuditTrail(config["audit_url"]) as trail:
        run = trail.runs(1)[0]
    assert run.status == "partial" and run.operations["insert"] > 0
    # The tap reads streams in reference order: suppliers (and the others before them by name), then purchase orders.
    assert run.reason == ("the input ended early in stream purchase_orders (after its SCHEMA, before any of its "
                          "records) with no closing STATE: the tap stopped before finishing; streams after it were not "
                          "read")
    assert not (tmp_path / "delta" / "ifscloud" / "purchase_orders").exists()
    # The last STATE the target emitted covers the streams it wrote, so the next run reads on from there.
    last_state = json.loads(target.stdout.splitlines()[-1])
    assert "suppliers" in last_state["bookmarks"] and "purchase_orders" not in last_state["bookmarks"]


def test_a_trail_of_an_earlier_version_gains_the_run_columns_and_its_unfinished_runs_are_judged_without_heartbeat(
        audit_url):
    """Trails written before runs had a process and a heartbeat: opening one adds the columns; a run left running
    by that version counts as interrupted a day after it started (it never sent a heartbeat), not before."""
    now = datetime.now(timezone.utc)
    earlier = sa.MetaData()
    old_runs = sa.Table(  # audit_runs as the earlier version created it
        "audit_runs", earlier,
        sa.Column("run_id", sa.String, primary_key=True), sa.Column("flow", sa.String, nullable=False),
        sa.Column("plugin", sa.String, nullable=False), sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)), sa.Column("status", sa.String, nullable=False),
        sa.Column("summary", sa.Text), sa.Index("ix_audit_runs_started_at", "started_at"),
    )
    engine = sa.create_engine(audit_url)
    with engine.begin() as conn:
        earlier.create_all(conn)
        conn.execute(old_runs.insert(), [
            {"run_id": "killed-long-ago", "flow": "f", "plugin": "target-jira", "started_at": now - timedelta(days=2),
             "status": "running"},
            {"run_id": "maybe-still-running", "flow": "f", "plugin": "target-jira",
             "started_at": now - timedelta(hours=1), "status": "running"},
            {"run_id": "done", "flow": "f", "plugin": "target-jira", "started_at": now - timedelta(hours=3),
             "finished_at": now - timedelta(hours=2), "status": "succeeded"},
        ])
    engine.dispose()

    with AuditTrail(audit_url) as trail:
        judged = {run.run_id: (run.status, run.reason) for run in trail.runs()}
        assert judged == {
            "killed-long-ago": ("interrupted", "no heartbeat recorded (a run of an earlier version) and started over "
                                               "24 h ago"),
            "maybe-still-running": ("running", None),
            "done": ("succeeded", None),
        }
        with trail.start_run(flow="f", plugin="target-jira") as run:  # a start records what it judged
            pass
        assert trail.run("killed-long-ago").recorded_status == "interrupted"
        assert trail.run("maybe-still-running").recorded_status == "running"
        assert trail.run(run.run_id).status == "succeeded"
    inspector = sa.inspect(sa.create_engine(audit_url))
    columns = {c["name"] for c in inspector.get_columns("audit_runs")}
    assert {"reason", "host", "pid", "process_start", "heartbeat_at", "pipeline_run_id", "pipeline_state"} <= columns
    assert "ix_audit_runs_running" in {index["name"] for index in inspector.get_indexes("audit_runs")}
