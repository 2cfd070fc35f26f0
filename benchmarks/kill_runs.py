"""What the kill benchmarks share (checkpoints.py, chaos.py): a Meltano run in a process group of its own, killed with
SIGKILL as a whole, and what a run left behind read back from the files it wrote: the audit trail's entries and runs,
Meltano's saved bookmarks and its runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections import Counter
from contextlib import closing
from pathlib import Path

from ifs_standin import BIN
from ml_connector_core import audit_blocks

ROOT = Path(__file__).resolve().parent.parent


def start_run(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`args` (e.g. ``["meltano", "run", ...]`` or ``["mlc-run", job]``, from the project's .venv) in the project,
    in a session of its own, so that a kill of its process group reaches Meltano and every plugin it started."""
    with open(log, "a") as output:
        return subprocess.Popen([str(BIN / args[0]), *args[1:]], cwd=ROOT, env=env, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the run's whole process group: Meltano, the tap, the mappers and the target at once."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # ended meanwhile
        pass
    process.wait()


def _read_only(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)


def audited_rows(audit_db: Path) -> int:
    """Entries in the audit trail so far: the targets write them batch by batch, after each write (rows of
    audit_records, and the entries counted in each block of audit_blocks)."""
    if not audit_db.exists():
        return 0
    try:
        with closing(_read_only(audit_db)) as connection:
            rows = connection.execute("SELECT count(*) FROM audit_records").fetchone()[0]
            return rows + connection.execute("SELECT coalesce(sum(entry_count), 0) FROM audit_blocks").fetchone()[0]
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0


def audit_run_ids(audit_db: Path) -> set[str]:
    if not audit_db.exists():
        return set()
    try:
        with closing(_read_only(audit_db)) as connection:
            return {row[0] for row in connection.execute("SELECT run_id FROM audit_runs")}
    except sqlite3.OperationalError:
        return set()


def latest_run_operations(audit_db: Path) -> dict[str, int]:
    """Entries of the latest audit run by operation: `unchanged` are records the destination already held."""
    with closing(_read_only(audit_db)) as connection:
        [run_id] = connection.execute(
            "SELECT run_id FROM audit_runs ORDER BY started_at DESC, run_id DESC LIMIT 1").fetchone()
        operations = Counter(dict(connection.execute("SELECT operation, count(*) FROM audit_records WHERE run_id = ? "
                                                     "GROUP BY operation", [run_id]).fetchall()))
        for (counts,) in connection.execute("SELECT counts FROM audit_blocks WHERE run_id = ?", [run_id]):
            operations.update(json.loads(counts))
        return dict(operations)


def audit_entries(audit_db: Path) -> list[tuple[str, str, str, str | None, str, str]]:
    """Every entry, in the order written: (run_id, stream, record key as stored, version, operation, outcome)."""
    if not audit_db.exists():
        return []
    with closing(_read_only(audit_db)) as connection:
        entries = connection.execute("SELECT id, run_id, stream, record_key, record_version, operation, outcome "
                                     "FROM audit_records").fetchall()
        for run_id, stream, first_id, blob in connection.execute(
                "SELECT run_id, stream, first_id, entry_columns FROM audit_blocks"):
            columns = audit_blocks.unpack_entries(blob)  # entries in blocks did not fail
            entries.extend((first_id + offset, run_id, stream, key, version, operation, "succeeded") for
                           offset, key, version, operation in zip(columns.offsets, columns.keys, columns.versions,
                                                                  columns.operations))
    return [entry[1:] for entry in sorted(entries)]


def saved_bookmarks(meltano_db: Path) -> dict[str, str]:
    """Every stream's bookmark Meltano has saved (of every state ID: one flow's database holds one)."""
    if not meltano_db.exists():
        return {}
    try:
        with closing(_read_only(meltano_db)) as connection:
            rows = connection.execute("SELECT completed_state FROM state").fetchall()
    except sqlite3.OperationalError:  # the tables are not there yet
        return {}
    bookmarks = {}
    for (text,) in rows:
        state = json.loads(text).get("singer_state", {}) if text else {}
        for stream, bookmark in state.get("bookmarks", {}).items():
            if bookmark.get("replication_key_value"):
                bookmarks[stream] = str(bookmark["replication_key_value"])
    return bookmarks


def saved_bookmark(meltano_db: Path, state_id: str, stream: str) -> str | None:
    """A stream's bookmark as Meltano has saved it, read from its system database."""
    with closing(_read_only(meltano_db)) as connection:
        row = connection.execute("SELECT completed_state FROM state WHERE state_id = ?", [state_id]).fetchone()
    state = json.loads(row[0]).get("singer_state", {}) if row and row[0] else {}
    return state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def meltano_run_states(meltano_db: Path) -> dict[str, int]:
    """Meltano's runs by state (RUNNING, SUCCESS, FAIL, ...)."""
    if not meltano_db.exists():
        return {}
    with closing(_read_only(meltano_db)) as connection:
        return dict(connection.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall())
