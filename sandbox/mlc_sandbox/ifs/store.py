"""The SQLite side of the stand-in: table layout, connections with exact decimal comparison, and the live store
(a pool of readers and one serialized writer) over a run's working copy."""

from __future__ import annotations

import queue
import sqlite3
import threading
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterator

from . import model

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


def connect(path: Path | str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.create_collation("DECIMAL", _decimal_collation)
    conn.create_function("dec_cmp", 2, decimal_compare, deterministic=True)
    conn.execute("PRAGMA cache_size=-200000")
    conn.execute("PRAGMA mmap_size=8589934592")
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


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
        # (table, objid) → changes made to that record in this run, owned by the writer: the objversion of a tenant
        # whose ETags count changes (render.CounterObjversion); a run serves its own copy, so this is all of them
        self.change_counts: dict[tuple[str, int], int] = {}

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
