"""Databricks SQL for the warehouse load path, built as text only: no connection, so every statement is testable.

Values never go into the text of a statement: they travel as typed statement parameters (the Statement Execution
API's `parameters: [{name, value, type}]`, named markers `:name` in the text; a parameter without `value` is NULL),
which Databricks casts from their string form to their type. Only names (quoted identifiers) and, on the volume path,
the path of a staged file the load itself named, are written into the text.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal

import pyarrow as pa

from target_databricks.delta import FINGERPRINT

Parameter = dict[str, str]  # {"name", "value" (left out for NULL), "type"}
Statement = tuple[str, list[Parameter]]  # the text and its parameters


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


def parameter_text(value: object) -> str | None:
    """A value as the string a parameter carries, which Databricks casts to the parameter's type; None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc).isoformat()  # with its offset: no session time zone involved
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")  # plain digits, never an exponent
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parameter(name: str, value: object, kind: pa.DataType) -> Parameter:
    text = parameter_text(value)
    return {"name": name, "type": sql_type(kind)} if text is None else {"name": name, "value": text,
                                                                        "type": sql_type(kind)}


def string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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


def _stored_columns(keys: Sequence[str], version_column: str | None, alias: str = "") -> str:
    wanted = [*keys, FINGERPRINT] + ([version_column] if version_column else [])
    return ", ".join(f"{alias}{ident(c)}" for c in wanted)


def select_stored(name: str, keys: Sequence[str], version_column: str | None, key_rows: Sequence[tuple],
                  key_types: Sequence[pa.DataType]) -> Statement:
    """The stored key, fingerprint and version of the given keys, the keys as parameters."""
    parameters: list[Parameter] = []

    def marker(value: object, kind: pa.DataType) -> str:
        parameters.append(parameter(f"k{len(parameters)}", value, kind))
        return f":k{len(parameters) - 1}"

    if len(keys) == 1:
        where = f"{ident(keys[0])} IN ({', '.join(marker(row[0], key_types[0]) for row in key_rows)})"
    else:
        where = " OR ".join(
            "(" + " AND ".join(f"{ident(k)} = {marker(v, t)}" for k, v, t in zip(keys, row, key_types)) + ")"
            for row in key_rows
        )
    return f"SELECT {_stored_columns(keys, version_column)} FROM {name} WHERE {where}", parameters


def merge_statements(name: str, rows: pa.Table, keys: Sequence[str], version_column: str | None,
                     max_bytes: int) -> Iterator[Statement]:
    """MERGE statements whose text and parameters (as JSON) take at most ``max_bytes`` each (unless one row alone takes
    more), the rows' values as parameters in a VALUES list."""
    schema = rows.schema
    head = f"MERGE INTO {name} AS t USING (" + _values_head(schema)
    tail = _values_tail(schema) + ") AS s" + _merge_actions(keys, version_column)
    types = [sql_type(f.type) for f in schema]
    budget = max_bytes - len(head) - len(tail)
    batch: list[str] = []
    parameters: list[Parameter] = []
    size = 0
    for row in rows.to_pylist():
        values = [parameter_text(row[f.name]) for f in schema]
        start = len(parameters) if batch else 0
        markers = [f":p{start + i}" for i in range(len(values))]
        row_size = sum(len(m) + 2 for m in markers) + 4 + sum(
            _parameter_json_size(m, v, t) for m, v, t in zip(markers, values, types))
        if batch and size + row_size > budget:
            yield head + ", ".join(batch) + tail, parameters
            batch, parameters, size = [], [], 0
            markers = [f":p{i}" for i in range(len(values))]
        batch.append("(" + ", ".join(markers) + ")")
        parameters += [{"name": m[1:], "type": t} if v is None else {"name": m[1:], "value": v, "type": t}
                       for m, v, t in zip(markers, values, types)]
        size += row_size
    if batch:
        yield head + ", ".join(batch) + tail, parameters


def _parameter_json_size(marker: str, value: str | None, kind: str) -> int:
    """Bytes the parameter takes in the request's JSON (as requests encodes it), plus its separator."""
    size = len(marker) - 1 + len(kind) + 39  # {"name": "", "value": "", "type": ""} and ", "
    return size + (len(json.dumps(value)) - 2 if value is not None else -len('"value": "", '))


def _values_head(schema: pa.Schema) -> str:
    casts = ", ".join(f"CAST(c{i} AS {sql_type(f.type)}) AS {ident(f.name)}" for i, f in enumerate(schema))
    return f"SELECT {casts} FROM VALUES "


def _values_tail(schema: pa.Schema) -> str:
    return f" AS v({', '.join(f'c{i}' for i in range(len(schema)))})"


def _merge_actions(keys: Sequence[str], version_column: str | None) -> str:
    """ON the keys; a matched row is updated only when its content changed and the source's version is not older (a
    MERGE sent again after a lost answer so finds nothing left to do), and a new key is inserted."""
    on = " AND ".join(f"t.{ident(k)} = s.{ident(k)}" for k in keys)
    changed = f"NOT (t.{ident(FINGERPRINT)} <=> s.{ident(FINGERPRINT)})"
    if version_column:
        v = ident(version_column)
        changed += f" AND (t.{v} IS NULL OR s.{v} IS NULL OR s.{v} >= t.{v})"
    return f" ON {on} WHEN MATCHED AND {changed} THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"


# The volume path: rows staged as Parquet files in a Unity Catalog volume


def read_files(path: str, schema: pa.Schema) -> str:
    """A staged Parquet file as a source, each column cast to the type the table has for it."""
    casts = ", ".join(f"CAST({ident(f.name)} AS {sql_type(f.type)}) AS {ident(f.name)}" for f in schema)
    return f"SELECT {casts} FROM read_files({string_literal(path)}, format => 'parquet')"


def select_stored_from_file(name: str, keys: Sequence[str], version_column: str | None, path: str,
                            key_schema: pa.Schema) -> str:
    """The stored key, fingerprint and version of the keys in a staged file (one statement whatever their number)."""
    on = " AND ".join(f"t.{ident(k)} = s.{ident(k)}" for k in keys)
    return (f"SELECT {_stored_columns(keys, version_column, 't.')} FROM {name} AS t "
            f"JOIN ({read_files(path, key_schema)}) AS s ON {on}")


def merge_from_file(name: str, path: str, schema: pa.Schema, keys: Sequence[str], version_column: str | None) -> str:
    return f"MERGE INTO {name} AS t USING ({read_files(path, schema)}) AS s" + _merge_actions(keys, version_column)
