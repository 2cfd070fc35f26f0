"""Statement failures as Databricks reports them: `status.error` with a service error code and a message that
starts with the Databricks error class and carries the SQLSTATE (`[TABLE_OR_VIEW_NOT_FOUND] ... SQLSTATE: 42P01`).

DuckDB's exceptions are mapped onto the Databricks error classes a client could meet; anything unmapped keeps
DuckDB's message under a class that says the stand-in is to blame, never a made-up Databricks class.
"""

from __future__ import annotations

import re

import duckdb


class SqlError(Exception):
    def __init__(self, error_class: str, message: str, sqlstate: str | None = None, *,
                 error_code: str = "BAD_REQUEST", detail: str = ""):
        super().__init__(message)
        self.error_class, self.text, self.sqlstate = error_class, message, sqlstate
        self.error_code, self.detail = error_code, detail

    @property
    def message(self) -> str:
        state = f" SQLSTATE: {self.sqlstate}" if self.sqlstate else ""
        return f"[{self.error_class}] {self.text}{state}{self.detail}"

    def as_status_error(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}


def quoted_name(*parts: str | None) -> str:
    return ".".join(f"`{p}`" for p in parts if p)


def table_not_found(name: str) -> SqlError:
    return SqlError("TABLE_OR_VIEW_NOT_FOUND",
                    f"The table or view {name} cannot be found. Verify the spelling and correctness of the schema and "
                    "catalog.", "42P01")


def schema_not_found(name: str) -> SqlError:
    return SqlError("SCHEMA_NOT_FOUND",
                    f"The schema {name} cannot be found. Verify the spelling and correctness of the schema and "
                    "catalog.", "42704")


def catalog_not_found(name: str) -> SqlError:
    return SqlError("NO_SUCH_CATALOG_EXCEPTION",
                    f"Catalog '{name}' was not found. Please verify the catalog name and then retry the query or "
                    "command again.", "42704")


def concurrent_append() -> SqlError:
    """What Delta answers a write whose table another write changed since it read it (optimistic concurrency): the
    statement is rolled back and may simply be run again."""
    return SqlError("DELTA_CONCURRENT_APPEND",
                    "ConcurrentAppendException: Files were added to the table by a concurrent update. "
                    "Please try the operation again.", "2D521", error_code="ABORTED")


def unsupported(what: str) -> SqlError:
    return SqlError("UNSUPPORTED_FEATURE.MLC_SANDBOX",
                    f"The Databricks stand-in does not support {what}.", "0A000")


_NAME = r'"?([^"!\s]+)"?'
_DUCKDB_TYPE_NAMES = {"INT8": "TINYINT", "INT16": "SMALLINT", "INT32": "INT", "INT64": "BIGINT",
                     "VARCHAR": "STRING", "BOOL": "BOOLEAN"}
_RULES: list[tuple[type, re.Pattern, callable]] = [
    (duckdb.CatalogException, re.compile(rf"Table with name {_NAME} does not exist"),
     lambda m: table_not_found(f"`{m.group(1)}`")),
    (duckdb.CatalogException, re.compile(rf"Schema with name {_NAME} does not exist"),
     lambda m: schema_not_found(f"`{m.group(1)}`")),
    (duckdb.CatalogException, re.compile(rf"Table with name {_NAME} already exists"),
     lambda m: SqlError("TABLE_OR_VIEW_ALREADY_EXISTS",
                        f"Cannot create table or view `{m.group(1)}` because it already exists.", "42P07")),
    (duckdb.CatalogException, re.compile(rf"Schema with name {_NAME} already exists"),
     lambda m: SqlError("SCHEMA_ALREADY_EXISTS",
                        f"Cannot create schema `{m.group(1)}` because it already exists.", "42P06")),
    (duckdb.CatalogException, re.compile(rf"Column with name {_NAME} already exists"),
     lambda m: SqlError("FIELDS_ALREADY_EXISTS",
                        f"Cannot add column, because `{m.group(1)}` already exists.", "42710")),
    (duckdb.CatalogException, re.compile(rf"(?:Scalar |Aggregate |Table )?Function with name {_NAME} does not exist"),
     lambda m: SqlError("UNRESOLVED_ROUTINE", f"Cannot resolve routine `{m.group(1)}` on search path.", "42883")),
    (duckdb.BinderException, re.compile(r'Referenced column "([^"]+)" not found'),
     lambda m: SqlError("UNRESOLVED_COLUMN.WITH_SUGGESTION",
                        f"A column, variable, or function parameter with name `{m.group(1)}` cannot be resolved.",
                        "42703")),
    (duckdb.BinderException, re.compile(r"Values list \"?\w+\"? does not have a column named \"([^\"]+)\""),
     lambda m: SqlError("UNRESOLVED_COLUMN.WITH_SUGGESTION",
                        f"A column, variable, or function parameter with name `{m.group(1)}` cannot be resolved.",
                        "42703")),
    (duckdb.BinderException, re.compile(r"has (\d+) columns but (\d+) values were supplied"),
     lambda m: SqlError("INSERT_COLUMN_ARITY_MISMATCH.NOT_ENOUGH_DATA_COLUMNS" if int(m.group(2)) < int(m.group(1))
                        else "INSERT_COLUMN_ARITY_MISMATCH.TOO_MANY_DATA_COLUMNS",
                        f"Cannot write to the table: the table has {m.group(1)} columns but the data has "
                        f"{m.group(2)}.", "21S01")),
    (duckdb.ConversionException, re.compile(r"Could not convert string ['\"](.*)['\"] to ([\w(),]+)"),
     lambda m: SqlError("CAST_INVALID_INPUT",
                        f"The value '{m.group(1)}' of the type \"STRING\" cannot be cast to "
                        f"\"{_DUCKDB_TYPE_NAMES.get(m.group(2), m.group(2))}\" because it is malformed. Correct the "
                        "value as per the syntax, or change its target type.", "22018")),
    (duckdb.ConversionException, re.compile(r"field value out of range: \"([^\"]*)\""),
     lambda m: SqlError("CAST_INVALID_INPUT",
                        f"The value '{m.group(1)}' of the type \"STRING\" cannot be cast to a date or timestamp "
                        "because it is malformed.", "22018")),
    (duckdb.ConversionException, re.compile(r"(out of range|Overflow|overflow|Could not cast value)"),
     lambda m: SqlError("NUMERIC_VALUE_OUT_OF_RANGE", "A value cannot be represented by its target type.",
                        "22003")),
    (duckdb.ConversionException, re.compile(r".*"),
     lambda m: SqlError("CAST_INVALID_INPUT", "A value cannot be cast to its target type.", "22018")),
    (duckdb.DependencyException, re.compile(r'Cannot drop entry "([^"]+)"'),
     lambda m: SqlError("SCHEMA_NOT_EMPTY",
                        f"Cannot drop a schema `{m.group(1)}` because it contains objects. Use DROP SCHEMA ... "
                        "CASCADE to drop the schema and all its objects.", "2BP01")),
    (duckdb.OutOfRangeException, re.compile(r".*"),
     lambda m: SqlError("ARITHMETIC_OVERFLOW", "Arithmetic overflow.", "22003")),
    (duckdb.ConstraintException, re.compile(r"NOT NULL constraint failed: ([\w.]+)"),
     lambda m: SqlError("DELTA_NOT_NULL_CONSTRAINT_VIOLATED",
                        f"NOT NULL constraint violated for column: {m.group(1)}.", "23502")),
    (duckdb.TransactionException, re.compile(r"[Cc]onflict"), lambda m: concurrent_append()),
    # a staged file of a volume (read_files) that is not Parquet, or cut short
    (duckdb.InvalidInputException, re.compile(r"(?:magic bytes|not a parquet file|Parquet)[^']*'([^']+)'"),
     lambda m: SqlError("FAILED_READ_FILE.NO_HINT", f"Error while reading file {_volume_path(m.group(1))}.",
                        "KD001")),
    (duckdb.IOException, re.compile(r"(?:No files found|Cannot open file|No such file)[^'\"]*['\"]([^'\"]+)['\"]"),
     lambda m: SqlError("FAILED_READ_FILE.FILE_NOT_EXIST", f"Error while reading file {_volume_path(m.group(1))}. "
                        "File does not exist. It is possible the underlying files have been updated.", "KD001")),
]


def _volume_path(local_path: str) -> str:
    from .volume_sql import volume_path_of

    return volume_path_of(local_path)


def from_duckdb(exc: duckdb.Error) -> SqlError:
    text = str(exc)
    for exc_type, pattern, build in _RULES:
        if isinstance(exc, exc_type):
            match = pattern.search(text)
            if match:
                error = build(match)
                error.detail = f"\n\n== DuckDB ==\n{text}"
                return error
    first_line = text.splitlines()[0] if text else type(exc).__name__
    return SqlError("MLC_SANDBOX_DUCKDB_ERROR", f"DuckDB, which runs this stand-in's warehouse, failed: {first_line}",
                    None, detail=f"\n\n== DuckDB ==\n{text}")
