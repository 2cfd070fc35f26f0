"""Databricks SQL for the warehouse load path, built as text only: no connection, so every statement is testable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pyarrow as pa

from target_databricks.delta import FINGERPRINT


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_name(catalog: str, schema: str, table: str) -> str:
    return ".".join(ident(part) for part in (catalog, schema, table))


def sql_type(kind: pa.DataType) -> str:
    if pa.types.is_decimal(kind):
        return f"DECIMAL({kind.precision},{kind.scale})"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    if pa.types.is_date32(kind):
        return "DATE"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    return "STRING"


def literal(value: object, kind: pa.DataType) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, Decimal):
        return format(value, "f")  # plain digits: 1E-12 would be a DOUBLE literal in Databricks SQL
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_schema(catalog: str, schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {ident(catalog)}.{ident(schema)}"


def create_table(name: str, schema: pa.Schema) -> str:
    columns = ", ".join(f"{ident(f.name)} {sql_type(f.type)}" for f in schema)
    return f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING DELTA"


def add_columns(name: str, fields: Sequence[pa.Field]) -> str:
    columns = ", ".join(f"{ident(f.name)} {sql_type(f.type)}" for f in fields)
    return f"ALTER TABLE {name} ADD COLUMNS ({columns})"


def describe(name: str) -> str:
    return f"DESCRIBE TABLE {name}"


def select_stored(name: str, keys: Sequence[str], version_column: str | None, key_rows: Sequence[tuple],
                  key_types: Sequence[pa.DataType]) -> str:
    wanted = [*keys, FINGERPRINT] + ([version_column] if version_column else [])
    if len(keys) == 1:
        where = f"{ident(keys[0])} IN ({', '.join(literal(row[0], key_types[0]) for row in key_rows)})"
    else:
        where = " OR ".join(
            "(" + " AND ".join(f"{ident(k)} = {literal(v, t)}" for k, v, t in zip(keys, row, key_types)) + ")"
            for row in key_rows
        )
    return f"SELECT {', '.join(ident(c) for c in wanted)} FROM {name} WHERE {where}"


def merge_statements(name: str, rows: pa.Table, keys: Sequence[str], version_column: str | None,
                     max_bytes: int) -> Iterator[str]:
    """MERGE statements of at most ``max_bytes`` each (unless one row alone is larger), rows staged inline."""
    schema = rows.schema
    head = f"MERGE INTO {name} AS t USING (" + _merge_head(schema)
    tail = _merge_tail(schema, keys, version_column)
    budget = max_bytes - len(head) - len(tail)
    batch: list[str] = []
    size = 0
    for row in rows.to_pylist():
        values = "(" + ", ".join(literal(row[f.name], f.type) for f in schema) + ")"
        if batch and size + len(values) + 2 > budget:
            yield head + ", ".join(batch) + tail
            batch, size = [], 0
        batch.append(values)
        size += len(values) + 2
    if batch:
        yield head + ", ".join(batch) + tail


def _merge_head(schema: pa.Schema) -> str:
    casts = ", ".join(f"CAST(c{i} AS {sql_type(f.type)}) AS {ident(f.name)}" for i, f in enumerate(schema))
    return f"SELECT {casts} FROM VALUES "


def _merge_tail(schema: pa.Schema, keys: Sequence[str], version_column: str | None) -> str:
    aliases = ", ".join(f"c{i}" for i in range(len(schema)))
    on = " AND ".join(f"t.{ident(k)} = s.{ident(k)}" for k in keys)
    changed = f"NOT (t.{ident(FINGERPRINT)} <=> s.{ident(FINGERPRINT)})"
    if version_column:
        v = ident(version_column)
        changed += f" AND (t.{v} IS NULL OR s.{v} IS NULL OR s.{v} >= t.{v})"
    return (
        f" AS v({aliases})"
        f") AS s ON {on} WHEN MATCHED AND {changed} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
