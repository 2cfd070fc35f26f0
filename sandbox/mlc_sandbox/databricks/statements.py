"""The SQL Statement Execution API 2.0: statements run asynchronously on worker threads; callers wait up to
`wait_timeout`, then poll, cancel and fetch result chunks.

States follow Databricks: PENDING (queued) -> RUNNING -> SUCCEEDED | FAILED | CANCELED; cancelling a SUCCEEDED
statement CLOSES it (its result is gone). Results are cut into chunks of `chunk_rows` rows; only chunk 0 comes with
the statement, the rest must be fetched by index.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import duckdb

from . import plans, translate
from .datatypes import manifest_column
from .guards import Fault
from .responses import ApiError, invalid
from .settings import DatabricksSettings
from .sql_errors import SqlError
from .warehouse import Warehouse

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED")
INLINE_LIMIT = 25 * 1024 * 1024  # bytes of result an INLINE statement may produce
KEPT_RESULTS = 200  # older statements are CLOSED, as Databricks drops results after a while
KEPT_TEXTS = 200  # older finished statements keep only the start of their text in the log
SHORT_TEXT = 10_000
LOGGED = 5000  # statements the log remembers
WAIT_TIMEOUT = re.compile(r"^(\d+)s$")


@dataclass
class StatementRequest:
    warehouse_id: str
    statement: str
    parameters: dict[str, translate.Parameter]
    catalog: str | None
    schema: str | None
    wait_seconds: int
    cancel_on_timeout: bool
    row_limit: int | None
    byte_limit: int | None

    @classmethod
    def from_json(cls, body: dict, settings: DatabricksSettings) -> "StatementRequest":
        warehouse_id, statement = body.get("warehouse_id"), body.get("statement")
        if not warehouse_id:
            raise invalid("Missing required field: warehouse_id")
        if statement is None or not isinstance(statement, str):
            raise invalid("Missing required field: statement")
        size = len(statement.encode("utf-8"))
        if size > settings.statement_size_limit:
            raise invalid(f"The statement is {size} bytes long; the maximum query text size is "
                          f"{settings.statement_size_limit} bytes ({settings.statement_size_limit / 2**20:g} MiB).")
        wait = WAIT_TIMEOUT.match(str(body.get("wait_timeout", "10s")))
        wait_seconds = int(wait.group(1)) if wait else -1
        if wait_seconds != 0 and not 5 <= wait_seconds <= 50:
            raise invalid(f"wait_timeout must be 0s or between 5s and 50s, got '{body.get('wait_timeout')}'")
        on_timeout = body.get("on_wait_timeout", "CONTINUE")
        if on_timeout not in ("CONTINUE", "CANCEL"):
            raise invalid(f"on_wait_timeout must be CONTINUE or CANCEL, got '{on_timeout}'")
        disposition, result_format = body.get("disposition", "INLINE"), body.get("format", "JSON_ARRAY")
        if disposition not in ("INLINE", "EXTERNAL_LINKS"):
            raise invalid(f"Unknown disposition '{disposition}'")
        if disposition == "EXTERNAL_LINKS":
            raise invalid("The Databricks stand-in serves results INLINE only (EXTERNAL_LINKS needs cloud storage)")
        if result_format != "JSON_ARRAY":
            raise invalid(f"format {result_format} is supported only with EXTERNAL_LINKS disposition")
        return cls(warehouse_id=str(warehouse_id), statement=statement,
                   parameters=_parameters(body.get("parameters")), catalog=body.get("catalog") or None,
                   schema=body.get("schema") or None, wait_seconds=wait_seconds,
                   cancel_on_timeout=on_timeout == "CANCEL", row_limit=_limit(body, "row_limit"),
                   byte_limit=_limit(body, "byte_limit"))


def _limit(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid(f"{name} must be a non-negative integer")
    return value


def _parameters(given) -> dict[str, translate.Parameter]:
    if given is None:
        return {}
    if not isinstance(given, list):
        raise invalid("parameters must be a list of {name, value, type}")
    parameters = {}
    for item in given:
        if not isinstance(item, dict) or not item.get("name"):
            raise invalid("every parameter needs a name")
        value = item.get("value")
        parameter = translate.Parameter(str(item["name"]), None if value is None else str(value),
                                        str(item.get("type") or "STRING"))
        try:
            parameter.data_type()
        except ValueError as exc:
            raise invalid(str(exc)) from None
        parameters[parameter.name] = parameter
    return parameters


@dataclass
class Statement:
    statement_id: str
    request: StatementRequest
    catalog: str
    schema: str
    state: str = "PENDING"
    error: dict | None = None
    result: plans.ResultSet | None = None
    truncated: bool = False
    chunk_rows: int = 10_000
    duckdb_text: str = ""
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    done: threading.Event = field(default_factory=threading.Event)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)  # a slow statement goes on at once
    cursor: duckdb.DuckDBPyConnection | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    fault: Fault | None = None  # an injected statement_failed or slow_statement

    # what the API answers

    def response(self) -> dict:
        with self.lock:
            document = {"statement_id": self.statement_id, "status": {"state": self.state}}
            if self.state == "FAILED" and self.error:
                document["status"]["error"] = dict(self.error)
            if self.state == "SUCCEEDED" and self.result is not None:
                document["manifest"] = self._manifest()
                document["result"] = self._chunk(0) if self._chunks() else {}
            return document

    def chunk(self, index: int) -> dict:
        with self.lock:
            if self.state != "SUCCEEDED" or self.result is None:
                raise ApiError(400, "INVALID_STATE", f"Statement {self.statement_id} is {self.state}; results can "
                               "only be fetched from a SUCCEEDED statement.")
            if not 0 <= index < len(self._chunks()):
                raise invalid(f"Chunk index {index} is out of range: the result has {len(self._chunks())} chunks.")
            return self._chunk(index)

    def _chunks(self) -> list[tuple[int, int]]:
        total, size = len(self.result.rows), max(1, self.chunk_rows)
        return [(offset, min(size, total - offset)) for offset in range(0, total, size)]

    def _manifest(self) -> dict:
        chunks = self._chunks()
        columns = [manifest_column(name, i, ctype) for i, (name, ctype) in enumerate(self.result.columns)]
        manifest = {"format": "JSON_ARRAY", "schema": {"column_count": len(columns), "columns": columns},
                    "total_chunk_count": len(chunks), "total_row_count": len(self.result.rows),
                    "total_byte_count": _byte_count(self.result.rows), "truncated": self.truncated}
        if chunks:
            manifest["chunks"] = [{"chunk_index": i, "row_offset": offset, "row_count": count}
                                  for i, (offset, count) in enumerate(chunks)]
        return manifest

    def _chunk(self, index: int) -> dict:
        chunks = self._chunks()
        offset, count = chunks[index]
        chunk = {"chunk_index": index, "row_offset": offset, "row_count": count,
                 "data_array": self.result.rows[offset:offset + count]}
        if index + 1 < len(chunks):
            chunk["next_chunk_index"] = index + 1
            chunk["next_chunk_internal_link"] = (f"/api/2.0/sql/statements/{self.statement_id}/result/chunks/"
                                                 f"{index + 1}?row_offset={offset + count}")
        return chunk

    def log_entry(self) -> dict:
        with self.lock:
            rows = len(self.result.rows) if self.result is not None else None
            return {
                "statement_id": self.statement_id, "warehouse_id": self.request.warehouse_id,
                "statement": self.request.statement,
                "parameters": [{"name": p.name, "value": p.value, "type": p.type}
                               for p in self.request.parameters.values()],
                "catalog": self.catalog, "schema": self.schema, "state": self.state, "error": self.error,
                "duckdb": self.duckdb_text, "row_count": rows, "truncated": self.truncated,
                "submitted_at": self.submitted_at, "started_at": self.started_at, "finished_at": self.finished_at,
                "duration_ms": round((self.finished_at - self.submitted_at) * 1000, 2) if self.finished_at else None,
            }


def _work_on(statement: Statement, plan: plans.Plan, seconds: float) -> None:
    """A slow statement: `seconds` more of work before it commits (RUNNING, holding its snapshot, its DuckDB text
    already in the log) unless cancelled, or released early (`POST /_admin/statements/<id>/release`)."""
    statement.duckdb_text = plan.duckdb_text
    deadline = time.monotonic() + seconds
    while not statement.released.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if statement.cancel_requested.wait(min(remaining, 0.05)):
            raise duckdb.InterruptException(f"statement {statement.statement_id} was cancelled")


def _byte_count(rows: list[list[str | None]]) -> int:
    return sum(len(json.dumps(row, ensure_ascii=False)) for row in rows)


def _limit_rows(result: plans.ResultSet, row_limit: int | None, byte_limit: int | None) -> bool:
    """Apply row_limit and byte_limit; True when rows were cut."""
    truncated = False
    if row_limit is not None and len(result.rows) > row_limit:
        result.rows, truncated = result.rows[:row_limit], True
    if byte_limit is not None:
        used = 0
        for i, row in enumerate(result.rows):
            used += len(json.dumps(row, ensure_ascii=False))
            if used > byte_limit:
                result.rows, truncated = result.rows[:i], True
                break
    return truncated


class StatementService:
    def __init__(self, settings: DatabricksSettings, warehouse: Warehouse):
        self.settings = settings
        self.warehouse = warehouse
        self._statements: OrderedDict[str, Statement] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="dbx-statement")

    def close(self) -> None:
        with self._lock:
            running = [s for s in self._statements.values() if s.state not in TERMINAL]
        for statement in running:
            self._cancel_running(statement)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # the API

    def execute(self, body: dict, fault: Fault | None = None) -> dict:
        """Submit a statement; `fault` (statement_failed or slow_statement) is what it suffers while it runs."""
        request = StatementRequest.from_json(body, self.settings)
        if request.warehouse_id not in self.settings.warehouse_ids:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {request.warehouse_id} does not exist.")
        self.settings.warehouse_state = "RUNNING"  # a statement starts a stopped warehouse, as Databricks does
        statement = Statement(statement_id=str(uuid.uuid4()), request=request,
                              catalog=(request.catalog or self.settings.default_catalog).lower(),
                              schema=(request.schema or self.settings.default_schema).lower(), fault=fault)
        self._remember(statement)
        queued = statement.response()  # with wait_timeout=0s the caller always sees the statement PENDING
        self._pool.submit(self._run, statement)
        if request.wait_seconds == 0:
            return queued
        if not statement.done.wait(request.wait_seconds):
            if request.cancel_on_timeout:
                self.cancel(statement.statement_id)
                statement.done.wait(5)
        return statement.response()

    def get(self, statement_id: str) -> Statement:
        with self._lock:
            statement = self._statements.get(statement_id)
        if statement is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {statement_id} does not exist.")
        return statement

    def cancel(self, statement_id: str) -> None:
        statement = self.get(statement_id)
        with statement.lock:
            state = statement.state
            if state == "SUCCEEDED":
                statement.state, statement.result = "CLOSED", None
                return
            if state in TERMINAL:
                return
            statement.cancel_requested.set()
            if state == "PENDING":
                statement.state, statement.finished_at = "CANCELED", time.time()
                statement.done.set()
                return
        self._cancel_running(statement)

    def release(self, statement_id: str) -> None:
        """A slow statement (slow_statement fault) ends its extra work now and commits, or meets what committed
        meanwhile: a test lets a statement that a killed client left running finish when the test wants it to."""
        self.get(statement_id).released.set()

    def log(self) -> list[dict]:
        with self._lock:
            statements = list(self._statements.values())
        return [s.log_entry() for s in statements]

    def clear_log(self) -> None:
        with self._lock:
            for statement_id in [k for k, s in self._statements.items() if s.state in TERMINAL]:
                del self._statements[statement_id]

    # execution

    def _remember(self, statement: Statement) -> None:
        """Bound memory: a long load sends thousands of megabyte-sized statements."""
        with self._lock:
            self._statements[statement.statement_id] = statement
            while len(self._statements) > LOGGED:
                self._statements.popitem(last=False)
            for age, older in enumerate(reversed(self._statements.values())):
                if age < min(KEPT_RESULTS, KEPT_TEXTS):
                    continue
                with older.lock:
                    if age >= KEPT_RESULTS and older.result is not None:
                        older.state, older.result = "CLOSED", None
                    text = older.request.statement
                    if age >= KEPT_TEXTS and older.state in TERMINAL and len(text) > SHORT_TEXT:
                        older.request.statement = text[:SHORT_TEXT] + f"... [{len(text) - SHORT_TEXT} more characters]"

    @staticmethod
    def _cancel_running(statement: Statement) -> None:
        statement.cancel_requested.set()
        cursor = statement.cursor
        if cursor is not None:
            try:
                cursor.interrupt()
            except duckdb.Error:
                pass

    def _run(self, statement: Statement) -> None:
        with statement.lock:
            if statement.state != "PENDING":
                return
            statement.state, statement.started_at = "RUNNING", time.time()
        cursor = None
        try:
            delay = self.settings.execution_delay
            if delay > 0 and statement.cancel_requested.wait(delay):
                self._finish(statement, "CANCELED")
                return
            fault = statement.fault
            if fault is not None and fault.kind == "statement_failed":  # nothing of it is written
                self._finish(statement, "FAILED", error=fault.statement_error())
                return
            scope = translate.Scope(statement.catalog, statement.schema)
            plan = translate.plan(statement.request.statement, statement.request.parameters, scope, self.warehouse)
            statement.duckdb_text = plan.duckdb_text
            cursor = self.warehouse.cursor()
            statement.cursor = cursor
            if statement.cancel_requested.is_set():
                self._finish(statement, "CANCELED")
                return
            slow = fault.delay_seconds if fault is not None and fault.kind == "slow_statement" else 0.0
            result = plans.execute(plan, cursor, self.warehouse,
                                   (lambda: _work_on(statement, plan, slow)) if slow > 0 else None)
            statement.duckdb_text = plan.duckdb_text
            truncated = _limit_rows(result, statement.request.row_limit, statement.request.byte_limit)
            if _byte_count(result.rows) > INLINE_LIMIT:
                raise SqlError("MLC_SANDBOX_INLINE_RESULT_TOO_LARGE",
                               "The result is larger than the 25 MiB Databricks allows for INLINE disposition; "
                               "Databricks aborts such statements. Use row_limit/byte_limit or a smaller query.")
            if statement.cancel_requested.is_set():
                self._finish(statement, "CANCELED")
                return
            self._finish(statement, "SUCCEEDED", result=result, truncated=truncated)
        except SqlError as exc:
            self._finish(statement, "FAILED", error=exc.as_status_error())
        except duckdb.InterruptException:
            self._finish(statement, "CANCELED")
        except Exception as exc:  # a stand-in bug must still end the statement, and say so
            import traceback

            traceback.print_exc()
            self._finish(statement, "FAILED", error={"error_code": "INTERNAL_ERROR",
                                                     "message": f"[INTERNAL_ERROR] Databricks stand-in bug: {exc!r}"})
        finally:
            statement.cursor = None
            if cursor is not None:
                cursor.close()

    def _finish(self, statement: Statement, state: str, *, result: plans.ResultSet | None = None,
                error: dict | None = None, truncated: bool = False) -> None:
        with statement.lock:
            if statement.state in TERMINAL:
                return
            statement.state, statement.result, statement.error = state, result, error
            statement.truncated, statement.finished_at = truncated, time.time()
            statement.chunk_rows = self.settings.chunk_rows
            statement.done.set()
