"""How each kind of statement runs on DuckDB and what it answers, in Databricks' result shapes.

Writes run in one DuckDB transaction each (a Delta commit is atomic too). DML answers as Delta does: INSERT with
num_affected_rows/num_inserted_rows, UPDATE and DELETE with num_affected_rows, MERGE with
num_affected_rows/num_updated_rows/num_deleted_rows/num_inserted_rows.

Concurrent writes follow Delta's optimistic concurrency: a MERGE, UPDATE, DELETE or INSERT OVERWRITE reads its table,
and if another write committed to that table after it started, it fails with [DELTA_CONCURRENT_APPEND] (ABORTED) and
nothing of it is written; plain INSERTs (blind appends) never conflict. DuckDB alone would let two MERGEs that insert
the same keys both commit, which Delta never does.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
from sqlglot import exp

from .datatypes import ColumnType, column_type, render
from .sql_errors import SqlError, concurrent_append, from_duckdb, quoted_name, schema_not_found

MAX_LOGGED_SQL = 100_000  # characters of translated SQL kept for the statement log
LONG = ColumnType("LONG", "BIGINT")
STRING = ColumnType("STRING", "STRING")
BOOLEAN = ColumnType("BOOLEAN", "BOOLEAN")


@dataclass
class ResultSet:
    columns: list[tuple[str, ColumnType]] = field(default_factory=list)
    rows: list[list[str | None]] = field(default_factory=list)


def fetch(cursor: duckdb.DuckDBPyConnection) -> ResultSet:
    description = cursor.description or []
    columns = [(d[0], column_type(d[1])) for d in description]
    rows = [[render(v) for v in row] for row in cursor.fetchall()] if description else []
    return ResultSet(columns, rows)


def _sql(tree: exp.Expression) -> str:
    return tree.sql(dialect="duckdb", copy=False)


def table_key(table: exp.Expression) -> str | None:
    """How the commit bookkeeping names a (qualified) table: database.schema.table, lower case."""
    if isinstance(table, exp.Schema):  # INSERT INTO t (columns)
        table = table.this
    if not isinstance(table, exp.Table):
        return None
    return ".".join(part.lower() for part in (table.catalog, table.db, table.name))


def counts(names: tuple[str, ...], values: tuple[int, ...]) -> ResultSet:
    return ResultSet([(n, LONG) for n in names], [[str(v) for v in values]])


class Plan:
    writes = False  # run inside a transaction
    duckdb_text = ""  # what the statement log shows as run on DuckDB
    written_table: str | None = None  # table_key() of the table a DML statement writes
    reads_written_table = False  # it reads that table too (MERGE, UPDATE, DELETE): a concurrent commit conflicts

    def run(self, cursor: duckdb.DuckDBPyConnection, warehouse) -> ResultSet:
        raise NotImplementedError


class NoResultPlan(Plan):
    def run(self, cursor, warehouse) -> ResultSet:
        return ResultSet()


@dataclass
class QueryPlan(Plan):
    sql: str

    @property
    def duckdb_text(self) -> str:
        return self.sql[:MAX_LOGGED_SQL]

    def run(self, cursor, warehouse) -> ResultSet:
        cursor.execute(self.sql)
        return fetch(cursor)


@dataclass
class DdlPlan(Plan):
    steps: list[str]
    writes = True

    @property
    def duckdb_text(self) -> str:
        return ";\n".join(self.steps)

    def run(self, cursor, warehouse) -> ResultSet:
        for step in self.steps:
            cursor.execute(step)
        return ResultSet()


@dataclass
class DropSchemaPlan(Plan):
    """DuckDB drops a schema whose tables were ALTERed even without CASCADE; Databricks refuses a non-empty one."""

    sql: str
    database: str
    schema: str
    cascade: bool
    writes = True

    @property
    def duckdb_text(self) -> str:
        return self.sql

    def run(self, cursor, warehouse) -> ResultSet:
        catalog = self.database.removeprefix("uc_")
        volumes = warehouse.volumes.in_schema(catalog, self.schema)  # a schema's volumes go with it, as its tables
        if not self.cascade:
            cursor.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?",
                           [self.database, self.schema])
            if cursor.fetchone()[0] or volumes:
                raise SqlError("SCHEMA_NOT_EMPTY",
                               f"Cannot drop a schema `{self.schema}` because it contains objects. Use DROP SCHEMA "
                               "... CASCADE to drop the schema and all its objects.", "2BP01")
        cursor.execute(self.sql)
        for volume in volumes:
            warehouse.volumes.drop(volume.full_name, if_exists=True)
        return ResultSet()


@dataclass
class CountPlan(Plan):
    """INSERT, UPDATE, DELETE: DuckDB answers with one count."""

    sql: str
    names: tuple[str, ...]
    before: list[str] = field(default_factory=list)
    written_table: str | None = None
    reads_written_table: bool = False
    writes = True

    @property
    def duckdb_text(self) -> str:
        return ";\n".join([*self.before, self.sql])[:MAX_LOGGED_SQL]

    def run(self, cursor, warehouse) -> ResultSet:
        for step in self.before:
            cursor.execute(step)
        cursor.execute(self.sql)
        row = cursor.fetchone()
        count = int(row[0]) if row else 0
        return counts(self.names, (count,) * len(self.names))


@dataclass
class SchemaExistsPlan(Plan):
    database: str
    catalog: str
    schema: str

    def run(self, cursor, warehouse) -> ResultSet:
        if self.schema.lower() not in [s.lower() for s in warehouse.schemas(cursor, self.catalog)]:
            raise schema_not_found(quoted_name(self.catalog, self.schema))
        return ResultSet()


@dataclass
class CreateCatalogPlan(Plan):
    name: str
    if_not_exists: bool

    def run(self, cursor, warehouse) -> ResultSet:
        warehouse.create_catalog(self.name, self.if_not_exists)
        return ResultSet()


def _matches(name: str, pattern: str | None) -> bool:
    """Databricks SHOW patterns: `*` for any characters, `|` between alternatives, case-insensitive."""
    if not pattern:
        return True
    return any(fnmatch.fnmatchcase(name.lower(), alternative.strip().lower())
               for alternative in pattern.split("|"))


@dataclass
class ShowCatalogsPlan(Plan):
    pattern: str | None

    def run(self, cursor, warehouse) -> ResultSet:
        return ResultSet([("catalog", STRING)], [[c] for c in warehouse.catalogs() if _matches(c, self.pattern)])


@dataclass
class ShowSchemasPlan(Plan):
    catalog: str
    pattern: str | None

    def run(self, cursor, warehouse) -> ResultSet:
        schemas = [s for s in warehouse.schemas(cursor, self.catalog) if _matches(s, self.pattern)]
        return ResultSet([("databaseName", STRING)], [[s] for s in schemas])


@dataclass
class ShowTablesPlan(Plan):
    catalog: str
    schema: str
    pattern: str | None

    def run(self, cursor, warehouse) -> ResultSet:
        if self.schema.lower() not in [s.lower() for s in warehouse.schemas(cursor, self.catalog)]:
            raise schema_not_found(quoted_name(self.catalog, self.schema))
        tables = [t for t in warehouse.tables(cursor, self.catalog, self.schema) if _matches(t["table"], self.pattern)]
        return ResultSet([("database", STRING), ("tableName", STRING), ("isTemporary", BOOLEAN)],
                         [[t["schema"], t["table"], "false"] for t in tables])


def _columns_of(cursor, table: exp.Table) -> list[tuple[str, ColumnType]]:
    cursor.execute(f"SELECT * FROM {_sql(table)} LIMIT 0")
    return [(d[0], column_type(d[1])) for d in cursor.description]


@dataclass
class ShowColumnsPlan(Plan):
    table: exp.Table

    def run(self, cursor, warehouse) -> ResultSet:
        return ResultSet([("col_name", STRING)], [[name] for name, _ in _columns_of(cursor, self.table)])


@dataclass
class DescribePlan(Plan):
    table: exp.Table
    extended: bool

    def run(self, cursor, warehouse) -> ResultSet:
        rows = [[name, ctype.describe_text, None] for name, ctype in _columns_of(cursor, self.table)]
        if self.extended:
            catalog = self.table.catalog.removeprefix("uc_")
            rows += [["", "", ""], ["# Detailed Table Information", "", ""],
                     ["Catalog", catalog, ""], ["Database", self.table.db, ""], ["Table", self.table.name, ""],
                     ["Type", "MANAGED", ""], ["Provider", "delta", ""]]
        return ResultSet([("col_name", STRING), ("data_type", STRING), ("comment", STRING)], rows)


STAGED_SOURCE = "temp.main.mlc_merge_source"  # per connection, and each statement has its own
MERGE_COUNTS = ("num_affected_rows", "num_updated_rows", "num_deleted_rows", "num_inserted_rows")


@dataclass
class MergePlan(Plan):
    """Delta's MERGE INTO on DuckDB's MERGE INTO.

    `UPDATE SET *` and `INSERT *` are expanded to every target column, taken by name from the source; as in Delta
    (without schema evolution) a target column missing from the source is an error and extra source columns are
    ignored. Delta refuses to update or delete a target row that several source rows match; DuckDB would silently
    apply the last one, so the stand-in checks first.
    """

    tree: exp.Merge
    writes = True
    duckdb_text: str = ""
    reads_written_table = True

    @property
    def written_table(self) -> str | None:
        return table_key(self.tree.this)

    def run(self, cursor, warehouse) -> ResultSet:
        # A plan runs once, so its tree is rewritten in place (copying a large VALUES source costs more than running
        # it), and the source is staged once: its columns, the match check and the MERGE all read the staged rows.
        merge = self.tree
        target, source, on = merge.this, merge.args["using"], merge.args["on"]
        target_sql = _sql(target)
        target_table = target.copy()
        target_table.set("alias", None)
        target_columns = [name for name, _ in _columns_of(cursor, target_table)]
        source_alias = _sql(exp.to_identifier(source.alias_or_name, quoted=True))
        stage = f"CREATE TEMPORARY TABLE {STAGED_SOURCE} AS SELECT * FROM {_sql(source)}"
        cursor.execute(stage)
        try:
            source_columns = [d[0] for d in cursor.execute(f"SELECT * FROM {STAGED_SOURCE} LIMIT 0").description]
            staged = f"{STAGED_SOURCE} AS {source_alias}"
            whens = merge.args["whens"]
            for when in whens.expressions:
                self._expand(when, target_columns, source_columns, source.alias_or_name)
            on_sql = _sql(on)
            if self._needs_single_match(whens.expressions):
                self._check_single_match(cursor, target, target_sql, staged, on_sql)
            statement = f"MERGE INTO {target_sql} USING {staged} ON {on_sql} {_sql(whens)}"
            self.duckdb_text = f"{stage[:MAX_LOGGED_SQL]};\n{statement}"
            cursor.execute(statement + " RETURNING merge_action")
            actions = [row[0] for row in cursor.fetchall()]
        finally:
            try:
                cursor.execute(f"DROP TABLE IF EXISTS {STAGED_SOURCE}")
            except duckdb.Error:  # a failed transaction drops it with its rollback
                pass
        updated, deleted, inserted = (actions.count(a) for a in ("UPDATE", "DELETE", "INSERT"))
        return counts(MERGE_COUNTS, (updated + deleted + inserted, updated, deleted, inserted))

    @staticmethod
    def _source_column(name: str, source_columns: list[str], source_alias: str, clause: str) -> exp.Column:
        by_folded = {c.lower(): c for c in source_columns}
        found = by_folded.get(name.lower())
        if found is None:
            given = ", ".join(f"{source_alias}.{c}" for c in source_columns)
            raise SqlError("DELTA_MERGE_UNRESOLVED_EXPRESSION",
                           f"Cannot resolve {source_alias}.{name} in {clause} clause given columns {given}.", "42601")
        return exp.column(found, table=source_alias, quoted=True)

    def _expand(self, when: exp.When, target_columns: list[str], source_columns: list[str], alias: str) -> None:
        action = when.args.get("then")
        if isinstance(action, exp.Update):
            if any(isinstance(e, exp.Star) for e in action.expressions):
                action.set("expressions", [
                    exp.EQ(this=exp.column(c, quoted=True),
                           expression=self._source_column(c, source_columns, alias, "UPDATE"))
                    for c in target_columns])
            else:
                for assignment in action.expressions:
                    if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
                        assignment.set("this", exp.column(assignment.this.name, quoted=True))
        elif isinstance(action, exp.Insert) and isinstance(action.this, exp.Star):
            action.set("this", exp.Tuple(expressions=[exp.column(c, quoted=True) for c in target_columns]))
            action.set("expression", exp.Tuple(expressions=[
                self._source_column(c, source_columns, alias, "INSERT") for c in target_columns]))

    @staticmethod
    def _needs_single_match(whens: list[exp.When]) -> bool:
        matched = [w for w in whens if w.args.get("matched") and not w.args.get("source")]
        if not matched:
            return False
        only_delete = (len(matched) == 1 and not matched[0].args.get("condition")
                       and isinstance(matched[0].args.get("then"), exp.Var)
                       and matched[0].args["then"].name.upper() == "DELETE")
        return not only_delete

    @staticmethod
    def _check_single_match(cursor, target: exp.Table, target_sql: str, source_sql: str, on_sql: str) -> None:
        target_ref = exp.to_identifier(target.alias_or_name, quoted=True).sql(dialect="duckdb")
        cursor.execute(f"SELECT 1 FROM {target_sql} JOIN {source_sql} ON {on_sql} "
                       f"GROUP BY {target_ref}.rowid HAVING count(*) > 1 LIMIT 1")
        if cursor.fetchone():
            raise SqlError(
                "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE",
                "Cannot perform Merge as multiple source rows matched and attempted to modify the same target row "
                "in the Delta table in possibly conflicting ways. By SQL semantics of Merge, when multiple source "
                "rows match on the same target row, the result may be ambiguous as it is unclear which source row "
                "should be used to update or delete the matching target row. You can preprocess the source table "
                "to eliminate the possibility of multiple matches.", "21506")


def execute(plan: Plan, cursor: duckdb.DuckDBPyConnection, warehouse,
            working: Callable[[], None] | None = None) -> ResultSet:
    """Run a plan, in a transaction when it writes; DuckDB errors come back as Databricks errors. `working` is called
    once the statement has done its work and before it commits: a slow statement is slow there, holding its snapshot
    (and a cancel there raises duckdb.InterruptException)."""
    try:
        if not plan.writes:
            result = plan.run(cursor, warehouse)
            if working is not None:
                working()
            return result
        # The version is taken before the transaction's snapshot: a commit in between is a (harmless) conflict
        table = plan.written_table
        read_version = warehouse.table_version(table) if table and plan.reads_written_table else None
        cursor.execute("BEGIN TRANSACTION")
        try:
            result = plan.run(cursor, warehouse)
            if working is not None:
                working()
            with warehouse.commit_lock:
                if read_version is not None and warehouse.table_version(table) != read_version:
                    raise concurrent_append()
                cursor.execute("COMMIT")
                if table:
                    warehouse.committed(table)
            return result
        except BaseException:
            try:
                cursor.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        raise from_duckdb(exc) from None
