"""The SQL warehouse load path: the same MERGE as the Delta path, sent as statements through Databricks' own SDK."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.sql import StatementState

from target_databricks import sql
from target_databricks.delta import FINGERPRINT
from target_databricks.workspace import workspace_client

_RUNNING = {StatementState.PENDING, StatementState.RUNNING}
# Keys looked up per SELECT: keeps statements small whatever the batch size.
_LOOKUP_CHUNK = 500


class StatementFailed(RuntimeError):
    """The warehouse refused or failed a statement."""


class WarehouseWriter:
    def __init__(self, client: WorkspaceClient, warehouse_id: str, catalog: str, max_statement_bytes: int) -> None:
        self.client = client
        self.warehouse_id = warehouse_id
        self.catalog = catalog
        self.max_statement_bytes = max_statement_bytes
        self._known_columns: dict[str, set[str]] = {}

    @classmethod
    def from_config(cls, config: Mapping) -> WarehouseWriter:
        if not config.get("warehouse_id"):
            raise ValueError("load_method warehouse needs warehouse_id")
        return cls(workspace_client(config), config["warehouse_id"], config["catalog"], int(config["max_statement_bytes"]))

    def location(self, schema: str, table: str) -> str:
        return sql.table_name(self.catalog, schema, table)

    def execute(self, statement: str) -> list[list[str | None]]:
        return run_statement(self.client, self.warehouse_id, statement)

    def prepare(self, location: str, schema: pa.Schema) -> None:
        """The table exists with every column of the batch before anything is looked up or merged."""
        known = self._known_columns.get(location)
        if known is None:
            catalog, schema_name, _ = [part.strip("`") for part in location.split("`.`")]
            self.execute(sql.create_schema(catalog, schema_name))
            self.execute(sql.create_table(location, schema))
            known = {row[0] for row in self.execute(sql.describe(location)) if row and row[0] and not row[0].startswith("#")}
        missing = [f for f in schema if f.name not in known]
        if missing:
            self.execute(sql.add_columns(location, missing))
            known |= {f.name for f in missing}
        self._known_columns[location] = known

    def stored(self, location: str, batch_keys: pa.Table, version: pa.Field | None) -> dict[tuple, tuple[str, Any]]:
        version_column = version.name if version is not None else None
        keys = batch_keys.column_names
        key_types = [batch_keys.schema.field(k).type for k in keys]
        key_rows = list(zip(*(batch_keys.column(k).to_pylist() for k in keys)))
        stored: dict[tuple, tuple[str, Any]] = {}
        for start in range(0, len(key_rows), _LOOKUP_CHUNK):
            chunk = key_rows[start:start + _LOOKUP_CHUNK]
            for row in self.execute(sql.select_stored(location, keys, version_column, chunk, key_types)):
                key = tuple(_from_text(v, t) for v, t in zip(row[: len(keys)], key_types))
                stored_version = _from_text(row[len(keys) + 1], version.type) if version is not None else None
                stored[key] = (row[len(keys)], stored_version)
        return stored

    def append(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> None:
        """The warehouse path stays on MERGE, whose statements carry only these rows anyway."""
        self.merge(location, rows, keys, version_column)

    def merge(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> dict:
        statements = 0
        for statement in sql.merge_statements(location, rows, keys, version_column, self.max_statement_bytes):
            self.execute(statement)
            statements += 1
        return {"rows": rows.num_rows, "statements": statements}


def run_statement(client: WorkspaceClient, warehouse_id: str, statement: str) -> list[list[str | None]]:
    """Every row of one statement's result (waiting for it, following its chunks); StatementFailed if it failed."""
    response = client.statement_execution.execute_statement(
        statement=statement, warehouse_id=warehouse_id, wait_timeout="30s"
    )
    while response.status.state in _RUNNING:
        time.sleep(0.2)
        response = client.statement_execution.get_statement(response.statement_id)
    if response.status.state != StatementState.SUCCEEDED:
        error = response.status.error
        detail = f"{error.error_code}: {error.message}" if error else str(response.status.state)
        raise StatementFailed(f"{detail} (statement: {statement[:300]}{'...' if len(statement) > 300 else ''})")
    rows = list(response.result.data_array or []) if response.result else []
    next_chunk = response.result.next_chunk_index if response.result else None
    while next_chunk is not None:
        chunk = client.statement_execution.get_statement_result_chunk_n(response.statement_id, next_chunk)
        rows += chunk.data_array or []
        next_chunk = chunk.next_chunk_index
    return rows


def _from_text(text: str | None, kind: pa.DataType) -> Any:
    """The warehouse answers every value as text; compare keys and versions in the batch's own types."""
    if text is None:
        return None
    if pa.types.is_integer(kind):
        return int(text)
    if pa.types.is_decimal(kind):
        return Decimal(text)
    if pa.types.is_timestamp(kind):
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if pa.types.is_date32(kind):
        return dt.date.fromisoformat(text)
    if pa.types.is_boolean(kind):
        return text.lower() == "true"
    return text
