"""The on-disk store: one SQLite file per (data version, seed, scale), built once and cached, copied per run.

Each running stand-in works on its own copy so admin writes never leak into the cache or into another server that
happens to use the same seed and scale.
"""

from __future__ import annotations

import fcntl
import itertools
import multiprocessing
import os
import queue
import shutil
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator

from . import generate, model

HIDDEN_COLUMNS = ("_objid", "_objversion")


def columns(entity: model.Entity) -> tuple[str, ...]:
    return tuple(f.name for f in entity.fields) + HIDDEN_COLUMNS


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_statement(entity: model.Entity, clustered: bool = True) -> str:
    """The table of an entity set. Served tables are clustered on the key (WITHOUT ROWID), so a page of a thousand
    rows is one contiguous range; generation shards are plain heaps, which load a third faster."""
    cols = []
    for f in entity.fields:
        collate = " COLLATE DECIMAL" if f.edm == model.DECIMAL else ""
        cols.append(f"{quote(f.name)} {f.sql_type}{collate}{'' if f.nullable else ' NOT NULL'}")
    cols += ["_objid INTEGER NOT NULL", "_objversion INTEGER NOT NULL"]
    if not clustered:
        return f"CREATE TABLE {quote(entity.table)} ({', '.join(cols)})"
    keys = ", ".join(quote(k) for k in entity.keys)
    return f"CREATE TABLE {quote(entity.table)} ({', '.join(cols)}, PRIMARY KEY ({keys})) WITHOUT ROWID"


def index_statements(entity: model.Entity) -> list[str]:
    change_index = ", ".join(quote(c) for c in (entity.change_column, *entity.keys))
    return [f"CREATE INDEX {quote(entity.table + '_by_change')} ON {quote(entity.table)} ({change_index})"]


def insert_statement(entity: model.Entity) -> str:
    return f"INSERT INTO {quote(entity.table)} VALUES ({', '.join('?' * len(columns(entity)))})"


# --- exact decimal comparison inside SQLite -------------------------------------------------------------------------


def _to_decimal(value) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def decimal_compare(a, b) -> int | None:
    da, db = _to_decimal(a), _to_decimal(b)
    if da is None or db is None:
        return None
    return (da > db) - (da < db)


def _decimal_collation(a: str, b: str) -> int:
    return decimal_compare(a, b) or 0


def connect(path: Path | str, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.create_collation("DECIMAL", _decimal_collation)
    conn.create_function("dec_cmp", 2, decimal_compare, deterministic=True)
    conn.execute("PRAGMA cache_size=-200000")
    conn.execute("PRAGMA mmap_size=8589934592")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


# --- building the cache ---------------------------------------------------------------------------------------------


def cache_path(data_dir: Path, seed: int, scale: int) -> Path:
    return data_dir / f"ifs-v{generate.DATA_VERSION}-seed{seed}-scale{scale}.sqlite"


def _bulk_connection(path: Path, clustered: bool) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA temp_store=FILE")  # the merge sort of millions of rows may spill to disk, not to memory
    conn.execute("PRAGMA threads=4")  # lets CREATE INDEX sort with helper threads
    for entity in model.ENTITIES:
        conn.execute(create_table_statement(entity, clustered))
    return conn


def _load_chunk(conn: sqlite3.Connection, seed: int, volumes: generate.Volumes, family_name: str, chunk: int) -> None:
    family = generate.FAMILY_BY_NAME[family_name]
    batches: dict[str, list[tuple]] = {}
    for entity_set, row in family.generate(seed, volumes, chunk):
        batch = batches.get(entity_set)
        if batch is None:
            # Rows are dicts written in field order; check that once per chunk instead of reordering every row.
            expected = columns(model.ENTITY_BY_SET[entity_set])
            if tuple(row) != expected:
                raise AssertionError(f"{entity_set} generator fields {tuple(row)} != model {expected}")
            batch = batches[entity_set] = []
        batch.append(tuple(row.values()))
    conn.execute("BEGIN")
    for entity_set, batch in batches.items():
        conn.executemany(insert_statement(model.ENTITY_BY_SET[entity_set]), batch)
    conn.execute("COMMIT")


def _load_shard(shard: str, tasks: list[tuple[int, generate.Volumes, str, int]]) -> str:
    conn = _bulk_connection(Path(shard), clustered=False)
    for task in tasks:
        _load_chunk(conn, *task)
    conn.close()
    return shard


def _partition(volumes: generate.Volumes, seed: int, parts: int) -> list[list[tuple]]:
    """Part p gets the p-th contiguous run of every family's chunks, so appending parts in order keeps key order."""
    by_family: dict[str, list[int]] = {}
    for family, chunk in generate.chunk_plan(volumes):
        by_family.setdefault(family, []).append(chunk)
    runs: list[list[tuple]] = [[] for _ in range(parts)]
    for family, chunks in by_family.items():
        for p in range(parts):
            share = chunks[p * len(chunks) // parts : (p + 1) * len(chunks) // parts]
            runs[p].extend((seed, volumes, family, c) for c in share)
    return [run for run in runs if run]


def _phase(name: str, started: float) -> float:
    if os.environ.get("MLC_SANDBOX_BUILD_TIMINGS"):
        print(f"build: {name} {time.monotonic() - started:.1f}s", flush=True)
    return time.monotonic()


def _append_shard(conn: sqlite3.Connection, shard: str) -> None:
    conn.execute("ATTACH ? AS shard", (shard,))
    conn.execute("BEGIN")
    for entity in model.ENTITIES:
        conn.execute(f"INSERT INTO main.{quote(entity.table)} SELECT * FROM shard.{quote(entity.table)}")
    conn.execute("COMMIT")
    conn.execute("DETACH shard")
    Path(shard).unlink()


def build(path: Path, seed: int, scale: int, workers: int | None = None) -> None:
    """Generate the data set into `path` (written under a temporary name first, renamed when complete).

    Worker processes load parts (contiguous runs of chunks) into shard files, plain heaps, in parallel; meanwhile
    this process appends finished parts, in order, to the key-clustered tables with INSERT ... SELECT, which SQLite
    does without going through Python. Appending in part order keeps inserts in key order.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".building-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    volumes = generate.Volumes.for_scale(scale)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if scale >= 20000 else 1
    shard_dir = Path(tempfile.mkdtemp(prefix="shards-", dir=path.parent))
    clock = time.monotonic()
    conn = _bulk_connection(tmp, clustered=True)
    try:
        parts = _partition(volumes, seed, 1 if workers <= 1 else workers * 4)
        shards = [str(shard_dir / f"part-{p}.sqlite") for p in range(len(parts))]
        if workers <= 1:
            for shard, part in zip(shards, parts):
                _append_shard(conn, _load_shard(shard, part))
        else:
            # spawn, not fork: the caller may be a threaded test process or a serving stand-in
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for shard in pool.map(_load_shard, shards, parts):
                    _append_shard(conn, shard)
    finally:
        shutil.rmtree(shard_dir, ignore_errors=True)
    clock = _phase("generated and merged", clock)
    for entity in model.ENTITIES:
        for statement in index_statements(entity):
            conn.execute(statement)
    clock = _phase("built indexes", clock)
    conn.execute("CREATE TABLE sandbox_meta (name TEXT PRIMARY KEY, value TEXT)")
    conn.executemany(
        "INSERT INTO sandbox_meta VALUES (?, ?)",
        [("data_version", str(generate.DATA_VERSION)), ("seed", str(seed)), ("scale", str(scale))],
    )
    conn.execute("PRAGMA analysis_limit=2000")
    conn.execute("ANALYZE")
    conn.close()
    os.replace(tmp, path)
    _phase("analyzed", clock)


def ensure_cache(data_dir: Path, seed: int, scale: int) -> Path:
    """The cached data set for (seed, scale), built under a file lock if missing."""
    path = cache_path(data_dir, seed, scale)
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            build(path, seed, scale)
    return path


def working_copy(cache: Path, data_dir: Path) -> Path:
    """A private copy for one run; stale copies of dead processes are removed on the way."""
    work_dir = data_dir / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in work_dir.glob("*.sqlite"):
        pid = stale.name.split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            for suffix in ("", "-wal", "-shm"):
                Path(str(stale) + suffix).unlink(missing_ok=True)
    target = work_dir / f"{os.getpid()}-{next(_copy_counter)}-{cache.name}"
    shutil.copyfile(cache, target)
    return target


_copy_counter = itertools.count()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the live store -------------------------------------------------------------------------------------------------


class Store:
    """A working copy with a pool of read connections and one serialized writer."""

    def __init__(self, path: Path):
        self.path = path
        self._writer = connect(path)
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA synchronous=OFF")
        self._write_lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = [self._writer]
        self._all_lock = threading.Lock()
        self.counters: dict[str, int] = {}  # sequences of created records (keys, objids), owned by the writer

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = connect(self.path)
            with self._all_lock:
                self._all.append(conn)
        try:
            yield conn
        finally:
            self._readers.put(conn)

    @contextmanager
    def writer(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def close(self, delete: bool = True) -> None:
        with self._all_lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        if delete:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)


def open_store(data_dir: Path, seed: int, scale: int) -> Store:
    started = time.monotonic()
    cache = ensure_cache(data_dir, seed, scale)
    store = Store(working_copy(cache, data_dir))
    store.prepared_seconds = time.monotonic() - started
    return store
