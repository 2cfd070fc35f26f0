"""`mlc-run`: `meltano run`, one run at a time per extractor, and a killed run known as such at once.

    mlc-run [--environment ENV] [meltano run options] JOB_OR_BLOCK...    e.g. mlc-run ifs-to-databricks

Why (verified with Meltano 4.4): Meltano keeps an extractor's files for a run in ``.meltano/run/<extractor>/``, one
folder per plugin name, shared by every run of that plugin: the catalog it discovers and rewrites with the select rules
(``tap.properties.json``), its cache key, and the bookmarks it hands the tap (``state.json``). Two runs of one extractor
at once overwrite each other's files: one reads a catalog half written by the other ("Invalid JSON"), or, worse, its
tap starts from the other flow's bookmarks. (A loader's or mapper's folder holds only files named per run by a fresh
uuid, and logging settings that are the same for every run.) Meltano itself refuses only a second run with the same
state ID; and once a run is killed it goes on refusing that flow for five minutes (until the dead run's heartbeat is
``HEARTBEAT_VALID_MINUTES`` old) unless ``--force``, which skips the check altogether, live runs included.

mlc-run takes an exclusive lock (``flock``) on ``.meltano/run/<extractor>/mlc-run.lock`` for every extractor of the
run, then becomes ``meltano run`` (exec: same process, so Meltano holds the locks until it ends, however it ends; the
kernel releases them when the process dies, SIGKILL included). So:

- a second run of the same flow, or of any flow with the same extractor, is refused at once (exit status 75), naming
  the run that holds it: its pid, command and start;
- a lock that is free means the run that held it is over. If Meltano still has that run ``running`` (it was killed),
  mlc-run marks it failed, saying so, before starting: no five-minute wait, no ``--force``.

Flows with extractors of their own run side by side; in meltano.yml every job has its own (inherited) extractor.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

#: Exit status of a run refused because another run holds one of its extractors (EX_TEMPFAIL: try again later).
EXIT_IN_USE = 75
LOCK_NAME = "mlc-run.lock"
#: The files SQLite keeps beside a database while writing it (rollback journal, write-ahead log and its index).
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")
RUN_ID_ENV = "MELTANO_RUN_ID"


@dataclass
class Holder:
    """What a lock file says of the run that took it."""

    pid: int | None
    run_id: str | None
    names: list[str]  #: the jobs and blocks as given
    blocks: list[str]  #: what they run
    started_at: str

    @classmethod
    def read(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(data.get("pid"), data.get("run_id"), list(data.get("names") or []),
                       list(data.get("blocks") or []), data.get("started_at", ""))
        except (ValueError, AttributeError, TypeError):
            return None

    def describe(self) -> str:
        return (f"pid {self.pid}, `meltano run {' '.join(self.names)}`, started {self.started_at}"
                if self.pid else "its details are not written yet")


class ExtractorLock:
    """An open lock file of one extractor's run folder."""

    def __init__(self, run_dir: Path, extractor: str) -> None:
        self.extractor = extractor
        folder = run_dir / extractor
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / LOCK_NAME
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_take(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def holder(self) -> Holder | None:
        os.lseek(self.fd, 0, os.SEEK_SET)
        return Holder.read(os.read(self.fd, 65536).decode("utf-8", "replace"))

    def write(self, holder: Holder) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(holder.__dict__).encode(), 0)

    def close(self) -> None:
        os.close(self.fd)


def run_blocks(run_args: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The jobs and blocks of ``meltano run`` arguments and the run id they give, read by Meltano's own parser."""
    from meltano.cli.run import run as meltano_run

    params = meltano_run.make_context("run", list(run_args), resilient_parsing=True).params
    return list(params.get("blocks") or ()), (str(params["run_id"]) if params.get("run_id") else None)


def expanded(project, names: list[str]) -> list[str]:
    """The blocks a run of these jobs and blocks runs, in order."""
    from meltano.core.task_sets_service import TaskSetsService

    jobs = TaskSetsService(project)
    return [block for name in names
            for block in ([b.split(":")[0] for b in jobs.get(name).flat_args] if jobs.exists(name) else [name])]


def extractors_of(project, blocks: list[str]) -> list[str]:
    """The extractors among these blocks (an unknown name is left for Meltano to report)."""
    from meltano.core.plugin.error import PluginNotFoundError

    found = set()
    for block in blocks:
        try:
            plugin = project.plugins.find_plugin(block)
        except PluginNotFoundError:
            continue
        if str(plugin.type) == "extractors":
            found.add(plugin.name)
    return sorted(found)


def refusal(lock: ExtractorLock, holder: Holder | None, blocks: list[str], root: str) -> str:
    if holder and holder.blocks == blocks:
        return (f"mlc-run: this flow is already running ({holder.describe()}); a second run of it is refused "
                f"rather than run beside it")
    return (f"mlc-run: {lock.extractor} is in use by another run ({holder.describe() if holder else 'unknown'}). "
            f"Meltano keeps an extractor's catalog and bookmarks in .meltano/run/{lock.extractor}/, shared by every run "
            f"of it, so two runs of it at once would overwrite each other's: run this once the other has ended, or give "
            f"this flow an extractor of its own in meltano.yml (a plugin with inherit_from: {root})")


def fail_interrupted(project, holder: Holder) -> list[str]:
    """Mark the Meltano runs of a lock's last holder failed if Meltano still has them running: the lock was free, so
    the process that held it is gone. Returns their state IDs."""
    from meltano.core.db import project_engine
    from meltano.core.job import Job, State

    _, make_session = project_engine(project)
    session = make_session()
    try:
        running = session.query(Job).filter(Job.run_id == uuid.UUID(holder.run_id),
                                            Job._state == State.RUNNING.name).all()
        for job in running:
            job.fail(error=f"Interrupted: its Meltano process (pid {holder.pid}) ended without finishing the run, "
                           "most likely killed; found by mlc-run, as the lock that process held was free")
            job.save(session)
        return [job.job_name for job in running]
    finally:
        session.close()


def _settle(project, previous: Holder) -> None:
    try:
        state_ids = fail_interrupted(project, previous)
    except Exception as exc:  # noqa: BLE001 - Meltano's own stale-run check still applies
        click.echo(f"mlc-run: could not look up the earlier run {previous.run_id} in Meltano's database "
                   f"({type(exc).__name__}); Meltano's own check of running pipelines applies", err=True)
        return
    for state_id in state_ids:
        click.echo(f"mlc-run: the run {previous.run_id} of {state_id} ({previous.describe()}) ended without finishing "
                   "(its lock was free): marked failed in Meltano, so this run need not wait for it", err=True)


def migrate_system_database(project) -> None:
    """Bring Meltano's system database up to date, one process at a time. Every Meltano command does this when it
    starts, unguarded: two runs started at once on a new project both create its tables and one fails ('table
    alembic_version already exists'). Done here under a project-wide lock, the runs' own check then finds it done.

    A new SQLite database is built aside and moved into place when complete: SQLite runs Meltano's CREATE TABLEs
    outside a transaction, so a run killed while creating it in place left a database without its migration version
    that every later command refused ("Cannot upgrade the system database"). One left that way by an earlier
    command (tables but not a row in them) is made anew the same way; one that holds data is left to Meltano."""
    from meltano.core.db import project_engine
    from meltano.core.migration_service import MigrationError, MigrationService

    lock_path = project.dirs.run() / "mlc-run.database.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or by the kernel if this process dies
        database = sqlite_file(project.settings.get("database_uri"))
        if database is not None and not holds_anything(database):
            create_sqlite_aside(database)
        engine, _ = project_engine(project, default=True)
        try:
            MigrationService(engine).upgrade(silent=True)
        except MigrationError as exc:
            where = database or "the database of the database_uri setting"
            raise click.ClickException(
                f"{exc}. Meltano's system database {where} holds runs and bookmarks but cannot be brought up to date "
                "(Meltano's error above). Keep a copy of it, move it aside and run again to start with a new one; "
                "bookmarks can be set back with `meltano state set`.") from None


def sqlite_file(database_uri: str) -> Path | None:
    """The file of a SQLite system database (None for another database, or SQLite in memory)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_uri)
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
        else None


def holds_anything(database: Path) -> bool:
    """Whether a SQLite file has a migration version or a row in any table (a file cut short while Meltano created
    its tables has neither)."""
    import sqlite3

    if not database.exists() or database.stat().st_size == 0:
        return False
    # Read and write: a rollback journal left by a killed writer is played back first (read-only, SQLite refuses to)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return any(connection.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() for name in tables)


def create_sqlite_aside(database: Path) -> None:
    """Meltano's system database built in a file of its own, then renamed onto ``database`` (atomic): a kill at any
    moment leaves either no database, the one cut short before, or a complete one."""
    from meltano.core.migration_service import MigrationService
    from sqlalchemy import create_engine

    database.parent.mkdir(parents=True, exist_ok=True)
    aside = database.with_name(f"{database.name}.creating")
    for leftover in (aside, *(aside.with_name(aside.name + suffix) for suffix in SQLITE_COMPANIONS)):
        leftover.unlink(missing_ok=True)  # of a creation killed before
    engine = create_engine(f"sqlite:///{aside}")
    try:
        MigrationService(engine).upgrade(silent=True)
    finally:
        engine.dispose()
    with open(aside, "rb") as built:
        os.fsync(built.fileno())
    # A journal left by the process killed while writing the old file would be played back into the new one.
    for suffix in SQLITE_COMPANIONS:
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    os.replace(aside, database)
    directory = os.open(database.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)



@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
               help=__doc__.split("\n\n")[0])
@click.option("--environment", "-e", default=None, help="Meltano environment (default: meltano.yml's).")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def main(environment: str | None, run_args: tuple[str, ...]) -> None:
    from ml_connector_core.check_cli import open_project, root_of

    names, given_run_id = run_blocks(run_args)
    project = open_project(environment, "mlc-run")
    migrate_system_database(project)
    blocks = expanded(project, names)
    locks = [ExtractorLock(project.dirs.run(), name) for name in extractors_of(project, blocks)]
    for lock in locks:
        if not lock.try_take():
            root = root_of(project, project.plugins.find_plugin(lock.extractor)).name
            click.echo(refusal(lock, lock.holder(), blocks, root), err=True)
            sys.exit(EXIT_IN_USE)
    run_id = given_run_id or os.environ.get(RUN_ID_ENV) or str(uuid.uuid4())
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for lock in locks:
        previous = lock.holder()
        if previous and previous.run_id and previous.run_id != run_id:
            _settle(project, previous)
        lock.write(Holder(os.getpid(), run_id, names, blocks, started_at))
        os.set_inheritable(lock.fd, True)  # held on by `meltano run` below, which is this very process
    meltano = Path(sys.executable).parent / "meltano"
    global_options = ["--environment", environment] if environment else []
    os.execve(meltano, [str(meltano), *global_options, "run", *run_args], {**os.environ, RUN_ID_ENV: run_id})


if __name__ == "__main__":
    main()
