"""Where a run's data comes from: the data set for (data version, seed, scale) is generated once into a cache file,
and every run serves a private copy of it, so admin writes never leak into the cache or into another server that
happens to use the same seed and scale."""

from __future__ import annotations

import fcntl
import itertools
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import generate, model
from .store import Store, columns, connect, create_table_statement, index_statements, insert_statement, quote


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


def open_store(data_dir: Path, seed: int, scale: int) -> Store:
    started = time.monotonic()
    cache = ensure_cache(data_dir, seed, scale)
    store = Store(working_copy(cache, data_dir))
    store.prepared_seconds = time.monotonic() - started
    return store
