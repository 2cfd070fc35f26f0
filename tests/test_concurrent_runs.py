"""Runs that meet in one project: a second run of a flow is refused with a clear message, a killed run is settled at
once (no five-minute wait, no --force), and two flows with extractors of their own run side by side, each loading all
it should and keeping its own bookmarks. Real `mlc-run` and `meltano run` processes in a fresh copy of the project,
against the IFS stand-in.

Why it matters (see connector-core/ml_connector_core/run_cli.py): Meltano keeps an extractor's catalog and the bookmarks
it hands the tap in .meltano/run/<extractor>/, one folder per plugin name, shared by all of that plugin's runs."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ml_connector_core.run_cli import EXIT_IN_USE, expanded, extractors_of
from ml_connector_core.secrets import generate_key, seal
from support.delta import read_delta
from support.ifs import CLIENT_SECRET
from support.meltano import PROJECT_ROOT, fresh_copy, user_env
from support.singer import BIN

pytestmark = pytest.mark.meltano


@pytest.fixture
def project(tmp_path) -> Path:
    return fresh_copy(tmp_path / "project")


@pytest.fixture
def env(ifs, tmp_path) -> dict:
    key = generate_key()
    return {**user_env(tmp_path / "home"), "MLC_SECRET_KEY": key, "MLC_SANDBOX_IFS_URL": ifs.base_url,
            "MLC_SANDBOX_IFS_CLIENT_SECRET_SEALED": seal(CLIENT_SECRET, key=key.encode()),
            "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
            "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "jsonl"),
            "TARGET_DATABRICKS_DELTA_ROOT": str(tmp_path / "delta"),
            "MLC_AUDIT_URL": f"sqlite:///{tmp_path / 'audit.sqlite'}"}


def slow(ifs, slow: bool = True) -> None:
    """IFS answers each data request after a second: a run lasts long enough (about half a minute) to be met."""
    ifs.settings(fault_rates={"delay": 1.0 if slow else 0.0})


def start(project: Path, env: dict, *args: str, log: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "mlc-run"), *args], cwd=project, env=env, start_new_session=True,
                            stdout=open(project.parent / log, "wb"), stderr=subprocess.STDOUT)


def mlc_run(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mlc-run"), *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=900)


def lock_is_held(project: Path, extractor: str) -> bool:
    """Whether some process holds the extractor's lock (a try to take it fails)."""
    path = project / ".meltano" / "run" / extractor / "mlc-run.lock"
    if not path.exists():
        return False
    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def wait_until(condition, what: str, process: subprocess.Popen | None = None, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def data_reads(ifs) -> int:
    return sum(1 for r in ifs.requests_log() if r.get("kind") == "data")


def meltano_runs(tmp_path: Path) -> list[tuple[str, str, dict]]:
    with sqlite3.connect(tmp_path / "meltano.db") as db:
        return [(name, state, json.loads(payload or "{}"))
                for name, state, payload in db.execute("SELECT job_name, state, payload FROM runs ORDER BY id")]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_second_run_is_refused_and_a_killed_run_is_settled_at_once(project, env, ifs, tmp_path):
    # Every data request answered after four seconds: the first run outlasts the two runs started while it goes, also
    # on a machine so busy that each of them takes half a minute to start (with one second it had ended before).
    ifs.fault("delay", 100_000, delay_seconds=4, path_contains="Set?")
    first = start(project, env, "ifs-to-jsonl", log="first.log")
    try:
        wait_until(lambda: lock_is_held(project, "tap-ifscloud-jsonl") and data_reads(ifs) >= 2,
                   "the first run reads from IFS", first)

        again = mlc_run(project, env, "ifs-to-jsonl")
        assert again.returncode == EXIT_IN_USE
        assert again.stderr.startswith(f"mlc-run: this flow is already running (pid {first.pid}, `meltano run "
                                       "ifs-to-jsonl`, started "), again.stderr
        # another flow with the same extractor: refused too, and told how to run beside it
        other = mlc_run(project, env, "tap-ifscloud-jsonl", "target-databricks")
        assert other.returncode == EXIT_IN_USE
        assert "tap-ifscloud-jsonl is in use by another run" in other.stderr
        assert "inherit_from: tap-ifscloud" in other.stderr and other.stdout == ""
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the whole process group: Meltano and its plugins
        first.wait()

    # Meltano alone keeps refusing the flow after the kill (for five minutes, or with --force)...
    plain = subprocess.run([str(BIN / "meltano"), "run", "ifs-to-jsonl"], cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
    assert plain.returncode != 0 and "is already running" in plain.stderr and "--force" in plain.stderr
    # ... mlc-run knows the killed run is over (its lock is free), says so, and runs the flow now.
    ifs.clear_faults()
    rerun = mlc_run(project, env, "ifs-to-jsonl")
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "ended without finishing (its lock was free): marked failed in Meltano" in rerun.stderr
    assert len(jsonl(tmp_path / "jsonl" / "suppliers.jsonl")) >= ifs.count("SupplierHandling", "SupplierInfoGeneralSet")
    runs = meltano_runs(tmp_path)
    assert [(name, state) for name, state, _ in runs] == [
        ("sandbox:tap-ifscloud-jsonl-to-target-jsonl", "FAIL"), ("sandbox:tap-ifscloud-jsonl-to-target-jsonl", "SUCCESS")]
    assert runs[0][2]["error"].startswith(f"Interrupted: its Meltano process (pid {first.pid}) ended without finishing")


def test_two_flows_with_extractors_of_their_own_run_side_by_side(project, env, ifs, tmp_path):
    slow(ifs)
    to_databricks = start(project, env, "ifs-to-databricks", log="databricks.log")
    to_jsonl = start(project, env, "ifs-to-jsonl", log="jsonl.log")
    try:
        wait_until(lambda: lock_is_held(project, "tap-ifscloud") and lock_is_held(project, "tap-ifscloud-jsonl"),
                   "both runs hold their extractors at once", to_databricks)
        for process in (to_databricks, to_jsonl):
            assert process.wait(timeout=900) == 0, (tmp_path / ("databricks.log" if process is to_databricks
                                                                else "jsonl.log")).read_text()[-4000:]
    finally:
        for process in (to_databricks, to_jsonl):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)

    suppliers = ifs.count("SupplierHandling", "SupplierInfoGeneralSet")
    orders = ifs.count("PurchaseOrderHandling", "PurchaseOrderSet")
    assert len(read_delta(tmp_path / "delta" / "ifscloud" / "suppliers")) == suppliers
    assert len(read_delta(tmp_path / "delta" / "ifscloud" / "purchase_orders")) == orders
    assert len({s["SupplierId"] for s in jsonl(tmp_path / "jsonl" / "suppliers.jsonl")}) == suppliers
    assert len({o["OrderNo"] for o in jsonl(tmp_path / "jsonl" / "purchase_orders.jsonl")}) == orders
    # each flow kept bookmarks of its own, at the newest change it read
    newest = max(s["ChangedDate"] for s in jsonl(tmp_path / "jsonl" / "suppliers.jsonl"))
    succeeded = {name: payload for name, state, payload in meltano_runs(tmp_path) if state == "SUCCESS"}
    assert set(succeeded) == {"sandbox:tap-ifscloud-to-target-databricks", "sandbox:tap-ifscloud-jsonl-to-target-jsonl"}
    for payload in succeeded.values():
        assert payload["singer_state"]["bookmarks"]["suppliers"]["replication_key_value"] == newest


def test_every_job_has_extractors_of_its_own():
    """What lets any two jobs of meltano.yml run side by side."""
    from meltano.core.project import Project
    from meltano.core.task_sets_service import TaskSetsService

    project = Project(PROJECT_ROOT)
    owners: dict[str, list[str]] = {}
    for job in TaskSetsService(project).list_task_sets():
        for extractor in extractors_of(project, expanded(project, [job.name])):
            owners.setdefault(extractor, []).append(job.name)
    assert owners and {name: jobs for name, jobs in owners.items() if len(jobs) > 1} == {}


# --- Meltano's system database: a kill while it is created never leaves one that later runs refuse -----------------

def migrated_revision(database: Path) -> str | None:
    """The migration version a SQLite system database holds (None: no file, or none recorded)."""
    if not database.exists():
        return None
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
            return None
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def head_revision() -> str:
    from meltano.core.migration_service import LOCK_PATH

    return LOCK_PATH.read_text().strip()


def test_a_kill_while_the_system_database_is_created_leaves_none_or_a_whole_one(project, env, tmp_path):
    """mlc-run SIGKILLed at moments spread over its start on a new project (the system database created by then or
    not): after every kill the database is absent or complete, and the next run starts."""
    database = tmp_path / "meltano.db"
    started = time.monotonic()
    assert mlc_run(project, env, "no-such-job").returncode != 0
    startup = time.monotonic() - started
    assert migrated_revision(database) == head_revision()

    seen = set()
    for share in (0.2, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        for leftover in tmp_path.glob("meltano.db*"):
            leftover.unlink()
        process = start(project, env, "no-such-job", log="killed.log")
        time.sleep(startup * share)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        revision = migrated_revision(database)
        seen.add("absent" if not database.exists() else "whole" if revision == head_revision() else "cut short")
        assert not database.exists() or revision == head_revision(), f"killed after {startup * share:.1f} s"
    print(f"start {startup:.1f} s; after the kills the database was {sorted(seen)}")

    completed = mlc_run(project, env, "no-such-job")
    assert "no-such-job" in completed.stderr + completed.stdout, completed.stderr[-3000:]
    assert migrated_revision(database) == head_revision()


def test_a_database_cut_short_by_an_earlier_command_is_made_anew(project, env, tmp_path):
    """A database left by a plain Meltano command killed while creating it (tables, no row, no migration version,
    a hot rollback journal beside it) is built anew instead of refused."""
    database = tmp_path / "meltano.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE job (id INTEGER NOT NULL, job_id VARCHAR, PRIMARY KEY (id))")
    (tmp_path / "meltano.db-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504))
    completed = mlc_run(project, env, "no-such-job")
    output = completed.stderr + completed.stdout
    assert "Cannot upgrade the system database" not in output and "no-such-job" in output, output[-3000:]
    assert migrated_revision(database) == head_revision()
    assert not (tmp_path / "meltano.db-journal").exists()


def test_a_database_holding_data_that_cannot_be_migrated_is_named_and_kept(project, env, tmp_path):
    database = tmp_path / "meltano.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE job (id INTEGER NOT NULL, job_id VARCHAR, PRIMARY KEY (id))")
        db.execute("INSERT INTO job VALUES (1, 'tap-ifscloud-to-target-databricks')")
    completed = mlc_run(project, env, "ifs-to-databricks")
    assert completed.returncode == 1
    assert f"Meltano's system database {database} holds runs and bookmarks" in completed.stderr, completed.stderr[-3000:]
    assert "PrintLogger" not in completed.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT job_id FROM job").fetchall() == [("tap-ifscloud-to-target-databricks",)]
