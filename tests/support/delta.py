"""Reading Delta tables back through a reader that did not write them: DuckDB with its delta extension."""

from __future__ import annotations

import pathlib

import duckdb
import duckdb_extension_delta

_EXTENSION = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))


def duckdb_with_delta() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute(f"LOAD '{_EXTENSION}'")
    return connection


def read_delta(location: str | pathlib.Path, order_by: str | None = None) -> list[dict]:
    connection = duckdb_with_delta()
    query = f"SELECT * FROM delta_scan('{location}')" + (f" ORDER BY {order_by}" if order_by else "")
    cursor = connection.execute(query)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
