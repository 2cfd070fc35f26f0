"""The SQL warehouse load path: the same MERGE as the Delta path, sent as statements of the Statement Execution API.
Values never go into a statement's text: they travel as typed parameters (``warehouse_load_method: statements``, here)
or as Parquet files staged in a volume (``volume``, staging.py).

Every statement may be sent again: a lost answer or a 5xx may hide a statement that ran, and a statement that FAILED
for a transient reason (a concurrent writer: ABORTED [DELTA_CONCURRENT_...]; TEMPORARILY_UNAVAILABLE, ...) is run
again. That is safe because each statement is idempotent or its repetition is recognised: CREATE ... IF NOT EXISTS,
DESCRIBE and SELECT change nothing; a MERGE run twice finds its rows by key with the same fingerprint and leaves them
alone (nothing inserted twice, nothing updated again); an ALTER TABLE ADD COLUMNS that already happened is recognised
by [FIELDS_ALREADY_EXISTS] and the columns looked up again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.http import with_retries
from target_databricks import sql
from target_databricks.delta import FINGERPRINT
from target_databricks.workspace_api import DatabricksApiError, WorkspaceApi, workspace_api

logger = logging.getLogger(__name__)

STATEMENTS = "/api/2.0/sql/statements"
_RUNNING = ("PENDING", "RUNNING")
# Keys looked up per SELECT: keeps statements small whatever the batch size.
_LOOKUP_CHUNK = 500
# How a failed statement's status.error.error_code reads when running it again may succeed.
TRANSIENT_ERROR_CODES = frozenset({"ABORTED", "TEMPORARILY_UNAVAILABLE", "WORKSPACE_TEMPORARILY_UNAVAILABLE",
                                   "SERVICE_UNDER_MAINTENANCE", "RESOURCE_EXHAUSTED", "INTERNAL_ERROR", "IO_ERROR"})
# Delta's conflicts between concurrent writers, whatever error_code carries them: rolled back, may run again.
TRANSIENT_ERROR_CLASSES = ("DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED")
_ERROR_CLASS = re.compile(r"^\[([A-Z0-9_.]+)\]")
# Polling a statement that outlasted wait_timeout: from a quarter second, growing, to every five seconds.
_FIRST_POLL, _LONGEST_POLL = 0.25, 5.0
# A statement still running is reported once this long, then every further such period.
_STILL_RUNNING_NOTE_SECONDS = 60.0
WAIT_TIMEOUT_SETTING = "statement_wait_timeout_seconds"


class StatementFailed(RuntimeError):
    """The warehouse ran a statement and it did not succeed (FAILED, CANCELED, CLOSED)."""

    def __init__(self, statement_id: str, state: str, error_code: str | None, message: str, statement: str,
                 attempts: int = 1) -> None:
        self.statement_id, self.state, self.error_code, self.message = statement_id, state, error_code, message
        self.statement, self.attempts = statement, attempts
        match = _ERROR_CLASS.match(message)
        self.error_class = match.group(1) if match else None
        super().__init__(self._text())

    def _text(self) -> str:
        head = " ".join(self.statement.split())
        shown = head[:200] + (f"... ({len(self.statement)} characters)" if len(head) > 200 else "")
        tries = f" (after {self.attempts} tries)" if self.attempts > 1 else ""
        code = f"{self.error_code}: " if self.error_code else ""
        return f"statement {self.statement_id} {self.state}{tries}: {code}{self.message}; the statement: {shown}"

    @property
    def transient(self) -> bool:
        """Running it again may succeed: rolled back by a concurrent writer, or the warehouse was briefly unable."""
        return self.state == "FAILED" and (
            self.error_code in TRANSIENT_ERROR_CODES
            or any((self.error_class or "").startswith(prefix) for prefix in TRANSIENT_ERROR_CLASSES))


class TransientStatementFailure(StatementFailed):
    """A StatementFailed worth running again (see ``transient``)."""


class StatementRunner:
    """Runs statements on one SQL warehouse: submit, poll while it is PENDING or RUNNING, follow its result chunks, and
    run it again (up to ``max_tries``, jittered backoff) while it fails for a transient reason."""

    def __init__(self, api: WorkspaceApi, warehouse_id: str, *, wait_seconds: int = 30, max_tries: int = 8,
                 sleep=time.sleep, clock=time.monotonic) -> None:
        self.api = api
        self.warehouse_id = warehouse_id
        self.wait_seconds = wait_seconds
        self.max_tries = max_tries
        self._sleep, self._clock = sleep, clock

    @classmethod
    def from_config(cls, config: Mapping, **api_options) -> StatementRunner:
        if not config.get("warehouse_id"):
            message = "load_method warehouse needs warehouse_id"
            raise ConfigValidationError(message, errors=[message])  # singer-sdk prints the errors, one a line
        wait = int(config.get(WAIT_TIMEOUT_SETTING, 30))
        if wait != 0 and not 5 <= wait <= 50:
            message = f"{WAIT_TIMEOUT_SETTING} must be 0 or between 5 and 50 (Databricks' wait_timeout), not {wait}"
            raise ConfigValidationError(message, errors=[message])
        api = workspace_api(config, timeout_seconds=wait + 60.0, **api_options)
        return cls(api, config["warehouse_id"], wait_seconds=wait, max_tries=api.max_tries)

    def rows(self, statement: str, parameters: Sequence[Mapping] = ()) -> list[list[str | None]]:
        """Every row of the statement's result (``parameters``: its typed parameters, sql.Parameter); StatementFailed
        when it failed for good (or kept failing)."""
        attempts = {"n": 0}

        def run_once() -> list[list[str | None]]:
            attempts["n"] += 1
            return self._run_once(statement, parameters)

        def announce(details: dict) -> None:
            failure = details["exception"]
            logger.info("Statement %s failed for a transient reason (%s: %s); running it again in %.1f s "
                        "(attempt %d of %d)", failure.statement_id, failure.error_code, failure.message[:200],
                        details["wait"], details["tries"] + 1, self.max_tries)

        try:
            return with_retries(run_once, TransientStatementFailure, max_tries=self.max_tries, log=logger,
                                on_backoff=announce)()
        except TransientStatementFailure as exc:
            raise StatementFailed(exc.statement_id, exc.state, exc.error_code, exc.message, statement,
                                  attempts["n"]) from None

    def _run_once(self, statement: str, parameters: Sequence[Mapping]) -> list[list[str | None]]:
        # A lost answer or a 5xx may hide a statement that ran: sent again all the same (see the module's text).
        body = {"warehouse_id": self.warehouse_id, "statement": statement, "wait_timeout": f"{self.wait_seconds}s",
                "on_wait_timeout": "CONTINUE", "disposition": "INLINE", "format": "JSON_ARRAY"}
        if parameters:
            body["parameters"] = list(parameters)
        response = self.api.post(STATEMENTS, body, retry_unsafe=True)
        statement_id = _field(response, "statement_id", STATEMENTS)
        state = _state(response, statement_id)
        started, pause, noted = self._clock(), _FIRST_POLL, 0.0
        while state in _RUNNING:
            self._sleep(pause)
            pause = min(pause * 1.5, _LONGEST_POLL)
            response = self.api.get(f"{STATEMENTS}/{statement_id}")
            state = _state(response, statement_id)
            running_for = self._clock() - started
            if state in _RUNNING and running_for - noted >= _STILL_RUNNING_NOTE_SECONDS:
                noted = running_for
                logger.info("Statement %s is still %s after %.0f s", statement_id, state, running_for)
        if state != "SUCCEEDED":
            error = response["status"].get("error") or {}
            details = (statement_id, state, error.get("error_code"),
                       str(error.get("message") or f"the statement is {state}"), statement)
            failure = StatementFailed(*details)
            raise TransientStatementFailure(*details) if failure.transient else failure
        result = response.get("result") or {}
        rows = list(result.get("data_array") or [])
        next_chunk = result.get("next_chunk_index")
        while next_chunk is not None:
            chunk = self.api.get(f"{STATEMENTS}/{statement_id}/result/chunks/{next_chunk}")
            rows += chunk.get("data_array") or []
            next_chunk = chunk.get("next_chunk_index")
        return rows


def _field(document: Mapping, name: str, where: str) -> Any:
    value = document.get(name)
    if value is None:
        raise DatabricksApiError(f"{where}: Databricks answered without '{name}': {str(document)[:200]}")
    return value


def _state(response: Mapping, statement_id: str) -> str:
    status = response.get("status")
    state = status.get("state") if isinstance(status, Mapping) else None
    if not isinstance(state, str):
        raise DatabricksApiError(f"statement {statement_id}: Databricks answered without 'status.state': "
                                 f"{str(response)[:200]}")
    return state


class WarehouseWriter:
    """``warehouse_load_method: statements``: each batch's values travel in the statements themselves, as typed
    parameters of MERGE statements of at most ``max_statement_bytes`` (staging.VolumeWriter stages them as files)."""

    def __init__(self, runner: StatementRunner, catalog: str, max_statement_bytes: int) -> None:
        self.runner = runner
        self.catalog = catalog
        self.max_statement_bytes = max_statement_bytes
        self._known_columns: dict[str, set[str]] = {}

    def location(self, schema: str, table: str) -> str:
        return sql.table_name(self.catalog, schema, table)

    def execute(self, statement: str, parameters: Sequence[Mapping] = ()) -> list[list[str | None]]:
        return self.runner.rows(statement, parameters)

    def prepare(self, location: str, schema: pa.Schema) -> None:
        """The table exists with every column of the batch before anything is looked up or merged."""
        known = self._known_columns.get(location)
        if known is None:
            catalog, schema_name, _ = [part.strip("`") for part in location.split("`.`")]
            self.execute(sql.create_schema(catalog, schema_name))
            self.execute(sql.create_table(location, schema))
            known = self._columns(location)
        missing = [f for f in schema if f.name not in known]
        if missing:
            try:
                self.execute(sql.add_columns(location, missing))
            except StatementFailed as exc:
                # Sent again after a lost answer, the ALTER finds its columns there already.
                if exc.error_class != "FIELDS_ALREADY_EXISTS":
                    raise
                known = self._columns(location)
                if any(f.name not in known for f in missing):
                    raise
            known |= {f.name for f in missing}
        self._known_columns[location] = known

    def _columns(self, location: str) -> set[str]:
        return {row[0] for row in self.execute(sql.describe(location)) if row and row[0] and not row[0].startswith("#")}

    def stored(self, location: str, batch_keys: pa.Table, version: pa.Field | None) -> dict[tuple, tuple[str, Any]]:
        """What the table holds for the batch's keys: key -> (fingerprint, version)."""
        version_column = version.name if version is not None else None
        keys = batch_keys.column_names
        key_types = [batch_keys.schema.field(k).type for k in keys]
        key_rows = list(zip(*(batch_keys.column(k).to_pylist() for k in keys)))
        rows = []
        for start in range(0, len(key_rows), _LOOKUP_CHUNK):
            chunk = key_rows[start:start + _LOOKUP_CHUNK]
            rows += self.execute(*sql.select_stored(location, keys, version_column, chunk, key_types))
        return stored_by_key(rows, key_types, version)

    def append(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> None:
        """The warehouse path stays on MERGE, whose statements carry only these rows anyway."""
        self.merge(location, rows, keys, version_column)

    def merge(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> dict:
        statements = 0
        for statement, parameters in sql.merge_statements(location, rows, keys, version_column,
                                                          self.max_statement_bytes):
            self.execute(statement, parameters)
            statements += 1
        return {"rows": rows.num_rows, "statements": statements}


def stored_by_key(rows: list[list[str | None]], key_types: Sequence[pa.DataType],
                  version: pa.Field | None) -> dict[tuple, tuple[str, Any]]:
    """Rows of (keys..., fingerprint[, version]) as the warehouse answers them: key -> (fingerprint, version)."""
    width = len(key_types)
    stored: dict[tuple, tuple[str, Any]] = {}
    for row in rows:
        key = tuple(_from_text(v, t) for v, t in zip(row[:width], key_types))
        stored[key] = (row[width], _from_text(row[width + 1], version.type) if version is not None else None)
    return stored


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
