"""Volumes in SQL: CREATE VOLUME, DROP VOLUME, SHOW VOLUMES, and read_files over the Parquet files of a volume.

`read_files(path [, format => 'parquet'] [, option => value ...])` reads a file, or every file under a folder
(recursively; names starting with `_` or `.` left out, as Spark leaves them out; a glob in the path filters), and
becomes DuckDB's `read_parquet([...], union_by_name = true)` over those files, so it is usable wherever a table is:
`SELECT ... FROM read_files(...)`, `MERGE INTO t USING (SELECT ... FROM read_files(...)) AS s ...`. Its schema is
the files' own (DECIMAL(p,s), TIMESTAMP, DATE, BIGINT, ... as written), with `_rescued_data` (STRING) added, the
column where read_files keeps what did not fit an inferred schema (always NULL here: Parquet carries its schema).
Reading needs READ VOLUME. Formats other than Parquet, and options other than `format` and `mergeSchema`, are refused
as not supported by the stand-in rather than read wrongly.

Errors read as Databricks words them: [UC_VOLUME_NOT_FOUND], [PATH_NOT_FOUND], [CF_EMPTY_DIR_FOR_SCHEMA_INFERENCE],
[INSUFFICIENT_PERMISSIONS], [VOLUME_ALREADY_EXISTS], [SCHEMA_NOT_FOUND].
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from sqlglot import exp

from . import plans
from .sql_errors import SqlError, quoted_name, schema_not_found, unsupported
from .volumes import (BadPath, NoSuchPath, NoSuchSchema, NoSuchVolume, NotPermitted, VolumeExists, VolumeProblem,
                      quoted)

RESCUED_DATA = "_rescued_data"
READ_OPTIONS = ("format", "mergeschema")


def sql_error(problem: VolumeProblem) -> SqlError:
    """A volume problem as a failed statement reports it."""
    if isinstance(problem, NoSuchVolume):
        return SqlError("UC_VOLUME_NOT_FOUND", f"Volume {quoted(problem.full_name)} does not exist. Please use "
                        "'SHOW VOLUMES' to list available volumes.", "42704")
    if isinstance(problem, VolumeExists):
        return SqlError("VOLUME_ALREADY_EXISTS", f"{problem.message} Choose a different name, drop or replace the "
                        "existing object, or add the IF NOT EXISTS clause to tolerate pre-existing objects.", "42000")
    if isinstance(problem, NoSuchSchema):
        return schema_not_found(quoted_name(problem.catalog, problem.schema))
    if isinstance(problem, NotPermitted):
        return SqlError("INSUFFICIENT_PERMISSIONS", f"Insufficient privileges: {problem.message}", "42501")
    if isinstance(problem, NoSuchPath):
        return SqlError("PATH_NOT_FOUND", f"Path does not exist: {problem.path}.", "42K03")
    if isinstance(problem, BadPath):
        return unsupported(f"this path ({problem.message})")
    return SqlError("INVALID_PARAMETER_VALUE", problem.message, "22023")


# read_files


def read_files(function: exp.Expression, warehouse) -> exp.Expression:
    """The DuckDB query that reads what `read_files(...)` names: a subquery to stand where the function stood."""
    arguments = list(function.expressions)
    if not arguments or not isinstance(arguments[0], exp.Literal) or not arguments[0].is_string:
        raise SqlError("REQUIRED_PARAMETER_NOT_FOUND", "Cannot invoke routine `read_files` because the parameter "
                       "named `path` is required, but the routine call did not supply a value. Please update the "
                       "routine call to supply an argument value (either positionally at index 0 or by name) and "
                       "retry the query again.", "4274K")
    path = arguments[0].name
    options = {}
    for option in arguments[1:]:
        if not isinstance(option, (exp.Kwarg, exp.PropertyEQ)) or not isinstance(option.expression, exp.Literal):
            raise unsupported("read_files options that are not `name => 'literal'`")
        options[option.this.name.lower()] = option.expression.name
    unknown = sorted(set(options) - set(READ_OPTIONS))
    if unknown:
        raise unsupported(f"the read_files option(s) {', '.join(unknown)}")
    try:
        files = warehouse.volumes.files_under(path)
    except VolumeProblem as problem:
        raise sql_error(problem) from None
    file_format = (options.get("format") or _format_of(files) or "").lower()
    if file_format != "parquet":
        raise unsupported(f"read_files with format '{file_format or 'unknown'}' (the stand-in reads Parquet)")
    if not files:
        raise SqlError("CF_EMPTY_DIR_FOR_SCHEMA_INFERENCE", f"Cannot infer schema when the input path `{path}` is "
                       "empty. Please try to start the stream when there are files in the input path, or specify "
                       "the schema.", "42000")
    reader = exp.Anonymous(this="read_parquet", expressions=[
        exp.Array(expressions=[exp.Literal.string(str(local)) for _, local in files]),
        exp.EQ(this=exp.column("union_by_name"), expression=exp.true())])
    select = exp.select("*", exp.alias_(exp.cast(exp.null(), "TEXT"), RESCUED_DATA)).from_(exp.Table(this=reader))
    return exp.Subquery(this=select)


def _format_of(files: list) -> str | None:
    """The format read_files detects from the files' extensions when none is given."""
    extensions = {absolute.rsplit(".", 1)[-1].lower() for absolute, _ in files if "." in absolute.rsplit("/", 1)[-1]}
    return extensions.pop() if len(extensions) == 1 else None


def volume_path_of(local_path: str) -> str:
    """How a file of a volume is named to SQL users (/Volumes/...), from where the stand-in keeps it."""
    marker = "/volumes/"
    if marker in local_path and "/volumes-tmp/" not in local_path:
        return "/Volumes/" + local_path.split(marker, 1)[1]
    return local_path


# DDL


def _parts(name: str, scope) -> tuple[str, str, str]:
    parts = [p.strip("`").lower() for p in name.split(".")]
    if len(parts) == 1:
        return scope.catalog, scope.schema, parts[0]
    if len(parts) == 2:
        return scope.catalog, parts[0], parts[1]
    return parts[0], parts[1], parts[2]


@dataclass
class CreateVolumePlan(plans.Plan):
    catalog: str
    schema: str
    name: str
    if_not_exists: bool
    comment: str | None

    def run(self, cursor, warehouse) -> plans.ResultSet:
        exists = self.schema in [s.lower() for s in warehouse.schemas(cursor, self.catalog)]
        try:
            warehouse.volumes.create(self.catalog, self.schema, self.name, schema_exists=exists,
                                     if_not_exists=self.if_not_exists, comment=self.comment)
        except VolumeProblem as problem:
            raise sql_error(problem) from None
        return plans.ResultSet()


@dataclass
class DropVolumePlan(plans.Plan):
    catalog: str
    schema: str
    name: str
    if_exists: bool

    def run(self, cursor, warehouse) -> plans.ResultSet:
        warehouse.database_of(self.catalog)
        try:
            warehouse.volumes.drop(f"{self.catalog}.{self.schema}.{self.name}", if_exists=self.if_exists)
        except VolumeProblem as problem:
            raise sql_error(problem) from None
        return plans.ResultSet()


@dataclass
class ShowVolumesPlan(plans.Plan):
    catalog: str
    schema: str
    pattern: str | None

    def run(self, cursor, warehouse) -> plans.ResultSet:
        if self.schema not in [s.lower() for s in warehouse.schemas(cursor, self.catalog)]:
            raise schema_not_found(quoted_name(self.catalog, self.schema))
        names = [v.name for v in warehouse.volumes.in_schema(self.catalog, self.schema)
                 if not self.pattern or any(fnmatch.fnmatchcase(v.name, p.strip().lower())
                                            for p in self.pattern.split("|"))]
        return plans.ResultSet([("database", plans.STRING), ("volume_name", plans.STRING)],
                               [[self.schema, n] for n in sorted(names)])


def create_volume(match, scope) -> plans.Plan:
    external, if_not_exists, name, location, comment = match.groups()
    if external or location:
        raise unsupported("external volumes (CREATE EXTERNAL VOLUME ... LOCATION needs an external location)")
    return CreateVolumePlan(*_parts(name, scope), bool(if_not_exists), comment.replace("\\'", "'") if comment else None)


def drop_volume(match, scope) -> plans.Plan:
    return DropVolumePlan(*_parts(match.group(2), scope), bool(match.group(1)))


def show_volumes(match, scope) -> plans.Plan:
    where = [p.strip("`").lower() for p in match.group(1).split(".")] if match.group(1) else [scope.schema]
    catalog, schema = (where[0], where[1]) if len(where) == 2 else (scope.catalog, where[0])
    return ShowVolumesPlan(catalog, schema, match.group(2))
