"""Databricks SQL in, a DuckDB plan out.

Every statement must parse as Databricks SQL (sqlglot, read="databricks"); what does not is reported the way
Databricks reports it (PARSE_SYNTAX_ERROR). Parameter markers (`:name`) are bound to typed literals, table names are
qualified with the statement's catalog and schema (catalogs map onto DuckDB databases, see warehouse.py), and what
DuckDB spells differently is rewritten: CREATE TABLE ... USING DELTA loses its table properties, ALTER TABLE ...
ADD COLUMNS becomes one ADD COLUMN per column, MERGE's `*` actions are expanded per column (plans.MergePlan).
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from . import plans, volume_sql
from .sql_errors import SqlError, unsupported
from .warehouse import Warehouse

DIALECT = "databricks"
# sqlglot warns whenever it keeps a statement as a Command (SHOW ..., OPTIMIZE ...); those are handled below
logging.getLogger("sqlglot").setLevel(logging.ERROR)
STATEMENTS = (exp.Query, exp.Values, exp.Create, exp.Drop, exp.Alter, exp.Merge, exp.Insert, exp.Update, exp.Delete,
              exp.TruncateTable, exp.Describe, exp.Use, exp.Set, exp.Comment, exp.Copy, exp.Command)


@dataclass(frozen=True)
class Parameter:
    """A named parameter as the Statement Execution API takes it; a missing value is NULL, a missing type STRING."""

    name: str
    value: str | None
    type: str = "STRING"

    def data_type(self) -> exp.DataType:
        return parameter_type(self.type)


def parameter_type(text: str) -> exp.DataType:
    """The parameter's type, or ValueError (the request is then refused before it runs)."""
    return _parameter_type(text).copy()  # a node of its own: trees keep their parents


@functools.lru_cache(maxsize=256)
def _parameter_type(text: str) -> exp.DataType:
    """Parsed once per type: a MERGE of many rows carries thousands of parameters of a handful of types."""
    try:
        return exp.DataType.build(text, dialect=DIALECT)
    except (ParseError, TokenError, ValueError) as exc:
        raise ValueError(f"unknown parameter type '{text}'") from exc


@dataclass(frozen=True)
class Scope:
    """Where unqualified names resolve: the request's `catalog` and `schema` (or the workspace defaults)."""

    catalog: str
    schema: str


# parsing


def _syntax_error(text: str, near: str, line: int, column: int) -> SqlError:
    position = f"'{near}'" if near else "end of input"
    lines = text.splitlines() or [text]
    shown = "\n".join(lines[:line])[-2000:]
    pointer = "-" * max(0, column - len(near)) + "^^^"
    return SqlError("PARSE_SYNTAX_ERROR", f"Syntax error at or near {position}.", "42601",
                    detail=f" (line {line}, pos {max(0, column - len(near))})\n\n== SQL ==\n{shown}\n{pointer}\n")


def _first_token_error(text: str) -> SqlError:
    stripped = text.lstrip()
    word = re.match(r"\S+", stripped)
    return _syntax_error(text, word.group(0) if word else "", 1, len(word.group(0)) if word else 0)


def parse(text: str) -> exp.Expression:
    """One Databricks SQL statement, or the SqlError Databricks would report."""
    try:
        trees = [t for t in sqlglot.parse(text, read=DIALECT) if t is not None]
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        near = (error.get("highlight") or "").strip()
        if "SENTINEL" in (error.get("description") or "") or near == "SENTINEL":
            near = ""  # sqlglot ran out of tokens: Databricks says "at or near end of input"
        raise _syntax_error(text, near, error.get("line", 1), error.get("col", 0)) from None
    except TokenError:
        raise _first_token_error(text) from None
    if not trees:
        raise SqlError("PARSE_EMPTY_STATEMENT", "Syntax error, unexpected empty statement.", "42617")
    if len(trees) > 1:
        raise _second_statement_error(text)
    tree = trees[0]
    if not isinstance(tree, STATEMENTS):  # sqlglot reads a bare expression (`FOO BAR`) as a statement
        raise _first_token_error(text)
    return tree


def _second_statement_error(text: str) -> SqlError:
    tokens = sqlglot.tokenize(text, read=DIALECT)
    seen_semicolon = False
    for token in tokens:
        if token.token_type == sqlglot.TokenType.SEMICOLON:
            seen_semicolon = True
        elif seen_semicolon:
            return _syntax_error(text, token.text, token.line, token.col)
    return _first_token_error(text)


# rewriting


def bind_parameters(tree: exp.Expression, parameters: dict[str, Parameter]) -> None:
    """Named markers become typed literals, the way Databricks casts a parameter's string to its type."""
    folded = {name.lower(): p for name, p in parameters.items()}
    for placeholder in list(tree.find_all(exp.Placeholder)):
        name = placeholder.name
        if not name:
            raise SqlError("UNBOUND_SQL_PARAMETER", "Found the unbound parameter: ?. Positional parameter markers "
                           "are not supported by the Statement Execution API.", "42P02")
        parameter = parameters.get(name) or folded.get(name.lower())
        if parameter is None:
            raise SqlError("UNBOUND_SQL_PARAMETER",
                           f"Found the unbound parameter: {name}. Please, fix `args` and provide a mapping of the "
                           "parameter to either a SQL literal or collection constructor functions such as `map()`, "
                           "`array()`, `struct()`.", "42P02")
        data_type = parameter.data_type()
        literal = exp.null() if parameter.value is None else exp.Literal.string(parameter.value)
        is_string = data_type.this in (exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR)
        placeholder.replace(literal if is_string and parameter.value is not None
                            else exp.Cast(this=literal, to=data_type))


def qualify(tree: exp.Expression, scope: Scope, warehouse: Warehouse) -> None:
    """catalog.schema.table everywhere, catalogs renamed to their DuckDB databases, names lower-cased as in Unity
    Catalog; names of common table expressions stay as they are."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.this
        if name is None and table.args.get("db"):  # a schema: CREATE/DROP SCHEMA
            table.set("catalog", _identifier(warehouse.database_of(table.catalog or scope.catalog)))
            table.set("db", _identifier(table.db.lower()))
            continue
        if not isinstance(name, exp.Identifier):  # a table function
            if _function_name(name) == "read_files":  # files of a volume (volume_sql)
                source = volume_sql.read_files(name, warehouse)
                if table.args.get("alias") is not None:
                    source.set("alias", table.args["alias"])
                table.replace(source)
                continue
            _check_table_function(name)
            continue
        if not table.args.get("db") and name.name.lower() in ctes:
            continue
        table.set("catalog", _identifier(warehouse.database_of(table.catalog or scope.catalog)))
        table.set("db", _identifier((table.db or scope.schema).lower()))
        table.set("this", _identifier(name.name.lower()))
    for column in tree.find_all(exp.Column):
        if column.args.get("catalog"):
            column.set("catalog", _identifier(warehouse.database_of(column.args["catalog"].name)))
    for function in list(tree.find_all(exp.CurrentCatalog)):
        function.replace(exp.Literal.string(scope.catalog))
    for function in list(tree.find_all(exp.CurrentSchema, exp.CurrentDatabase)):
        function.replace(exp.Literal.string(scope.schema))


# Databricks' table-valued functions that DuckDB runs alike; DuckDB's own (read_csv, glob, ...) would reach the disk
TABLE_FUNCTIONS = ("range",)


def _function_name(function: exp.Expression) -> str:
    return (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).lower()


def _check_table_function(function: exp.Expression) -> None:
    name = _function_name(function)
    if name not in TABLE_FUNCTIONS:
        raise SqlError("UNRESOLVED_ROUTINE", f"Cannot resolve routine `{name}` on search path.", "42883")


def _identifier(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def duckdb_sql(tree: exp.Expression) -> str:
    return tree.sql(dialect="duckdb", copy=False)  # plans own their trees; copying costs more than generating


# statements


def plan(text: str, parameters: dict[str, Parameter], scope: Scope, warehouse: Warehouse) -> plans.Plan:
    tree = parse(text)
    if isinstance(tree, exp.Command):
        return _command(text, scope, warehouse)
    bind_parameters(tree, parameters)
    if isinstance(tree, exp.Copy):
        raise unsupported("COPY INTO (load staged files with MERGE INTO ... USING read_files(...) instead)")
    if isinstance(tree, exp.Use):
        return _use(tree, scope, warehouse)
    if isinstance(tree, (exp.Set, exp.Comment)):
        return plans.NoResultPlan()
    qualify(tree, scope, warehouse)
    if isinstance(tree, (exp.Query, exp.Values)):
        return plans.QueryPlan(duckdb_sql(tree))
    if isinstance(tree, exp.Create):
        return _create(tree)
    if isinstance(tree, exp.Drop):
        if str(tree.args.get("kind", "")).upper() not in ("TABLE", "VIEW", "SCHEMA", "DATABASE"):
            raise unsupported(f"DROP {tree.args.get('kind')}")
        if str(tree.args.get("kind")).upper() in ("SCHEMA", "DATABASE"):
            tree.set("kind", "SCHEMA")
            schema = tree.args["tables"][0]
            return plans.DropSchemaPlan(duckdb_sql(tree), schema.catalog, schema.db, bool(tree.args.get("cascade")))
        return plans.DdlPlan([duckdb_sql(tree)])
    if isinstance(tree, exp.Alter):
        return _alter(tree)
    if isinstance(tree, exp.Merge):
        return plans.MergePlan(tree)
    if isinstance(tree, exp.Insert):
        return _insert(tree)
    if isinstance(tree, exp.Update):
        _unqualify_assignments(tree.expressions)
        return plans.CountPlan(duckdb_sql(tree), ("num_affected_rows",), written_table=plans.table_key(tree.this),
                               reads_written_table=True)
    if isinstance(tree, exp.Delete):
        return plans.CountPlan(duckdb_sql(tree), ("num_affected_rows",), written_table=plans.table_key(tree.this),
                               reads_written_table=True)
    if isinstance(tree, exp.TruncateTable):
        return plans.DdlPlan([duckdb_sql(tree)])
    if isinstance(tree, exp.Describe):
        return _describe(tree)
    raise unsupported(type(tree).__name__.upper())  # pragma: no cover - STATEMENTS lists what reaches here


def _create(tree: exp.Create) -> plans.Plan:
    kind = str(tree.args.get("kind", "")).upper()
    # USING DELTA, TBLPROPERTIES, PARTITIONED BY, CLUSTER BY, LOCATION, COMMENT: storage details DuckDB has no use for
    tree.set("properties", None)
    if kind in ("SCHEMA", "DATABASE"):
        tree.set("kind", "SCHEMA")
        return plans.DdlPlan([duckdb_sql(tree)])
    if kind not in ("TABLE", "VIEW"):
        raise unsupported(f"CREATE {kind}")
    for column in tree.find_all(exp.ColumnDef):
        kept = []
        for constraint in column.args.get("constraints") or []:
            if isinstance(constraint.kind, exp.CommentColumnConstraint):
                continue
            if isinstance(constraint.kind, exp.GeneratedAsIdentityColumnConstraint):
                raise unsupported("identity columns (GENERATED ... AS IDENTITY)")
            kept.append(constraint)
        column.set("constraints", kept)
    return plans.DdlPlan([duckdb_sql(tree)])


def _alter(tree: exp.Alter) -> plans.Plan:
    if str(tree.args.get("kind", "")).upper() != "TABLE":
        raise unsupported(f"ALTER {tree.args.get('kind')}")
    table = tree.this
    steps: list[str] = []
    for action in tree.args.get("actions") or []:
        if isinstance(action, (exp.Schema, exp.ColumnDef)):
            # Databricks adds several columns in one ADD COLUMNS (...); DuckDB takes one ADD COLUMN each
            for column in action.expressions if isinstance(action, exp.Schema) else [action]:
                column = column.copy()
                column.set("constraints", [c for c in column.args.get("constraints") or []
                                           if not isinstance(c.kind, exp.CommentColumnConstraint)])
                steps.append(f"ALTER TABLE {duckdb_sql(table)} ADD COLUMN {duckdb_sql(column)}")
        elif isinstance(action, exp.AlterSet):
            steps.append(f"SELECT 1 FROM {duckdb_sql(table)} LIMIT 0")  # TBLPROPERTIES: only the table must exist
        elif isinstance(action, exp.AlterRename):
            target = action.this
            steps.append(f"ALTER TABLE {duckdb_sql(table)} RENAME TO {duckdb_sql(_identifier(target.name))}")
        else:
            single = tree.copy()
            single.set("actions", [action.copy()])
            steps.append(duckdb_sql(single))
    return plans.DdlPlan(steps)


def _insert(tree: exp.Insert) -> plans.Plan:
    steps = []
    overwrite = bool(tree.args.get("overwrite"))
    if overwrite:
        tree.set("overwrite", None)
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        steps.append(f"DELETE FROM {duckdb_sql(target)}")
    return plans.CountPlan(duckdb_sql(tree), ("num_affected_rows", "num_inserted_rows"), before=steps,
                           written_table=plans.table_key(tree.this), reads_written_table=overwrite)


def _unqualify_assignments(assignments: list[exp.Expression]) -> None:
    """DuckDB refuses `SET t.col = ...`; the target of an assignment is always the updated table anyway."""
    for assignment in assignments:
        if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
            assignment.set("this", exp.column(assignment.this.name, quoted=True))


def _describe(tree: exp.Describe) -> plans.Plan:
    kind = str(tree.args.get("kind") or "TABLE").upper()
    if kind != "TABLE" or not isinstance(tree.this, exp.Table):
        raise unsupported(f"DESCRIBE {kind}")
    extended = str(tree.args.get("style") or "").upper() in ("EXTENDED", "FORMATTED")
    return plans.DescribePlan(tree.this, extended)


def _use(tree: exp.Use, scope: Scope, warehouse: Warehouse) -> plans.Plan:
    """Each statement runs in its own session here, as with the API; USE only has to name something that exists."""
    kind = str(tree.args.get("kind") or "").upper()
    target = tree.this
    if kind == "CATALOG":
        warehouse.database_of(target.name)
        return plans.NoResultPlan()
    catalog = target.db or scope.catalog
    return plans.SchemaExistsPlan(warehouse.database_of(catalog), catalog, target.name)


_NAME = r"(?:`[^`]+`|[\w]+)"
_QUALIFIED = rf"({_NAME}(?:\.{_NAME}){{0,2}})"
_PATTERN = r"(?:\s+(?:LIKE\s+)?'([^']*)')?"
_END = r"\s*;?\s*$"
_COMMANDS = [
    ("catalogs", re.compile(rf"^\s*SHOW\s+CATALOGS{_PATTERN}{_END}", re.I | re.S)),
    ("schemas", re.compile(rf"^\s*SHOW\s+(?:SCHEMAS|DATABASES)(?:\s+(?:IN|FROM)\s+{_QUALIFIED})?{_PATTERN}{_END}",
                           re.I | re.S)),
    ("tables", re.compile(rf"^\s*SHOW\s+TABLES(?:\s+(?:IN|FROM)\s+{_QUALIFIED})?{_PATTERN}{_END}", re.I | re.S)),
    ("columns", re.compile(rf"^\s*SHOW\s+COLUMNS\s+(?:IN|FROM)\s+{_QUALIFIED}(?:\s+(?:IN|FROM)\s+{_QUALIFIED})?{_END}",
                           re.I | re.S)),
    ("create_catalog", re.compile(rf"^\s*CREATE\s+CATALOG\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})\b.*$", re.I | re.S)),
    ("create_volume", re.compile(rf"^\s*CREATE\s+(EXTERNAL\s+)?VOLUME\s+(IF\s+NOT\s+EXISTS\s+)?{_QUALIFIED}"
                                 rf"(?:\s+LOCATION\s+'([^']*)')?(?:\s+COMMENT\s+'((?:[^'\\]|\\.)*)')?{_END}",
                                 re.I | re.S)),
    ("drop_volume", re.compile(rf"^\s*DROP\s+VOLUME\s+(IF\s+EXISTS\s+)?{_QUALIFIED}{_END}", re.I | re.S)),
    ("volumes", re.compile(rf"^\s*SHOW\s+VOLUMES(?:\s+(?:IN|FROM)\s+{_QUALIFIED})?{_PATTERN}{_END}", re.I | re.S)),
    ("maintenance", re.compile(r"^\s*(OPTIMIZE|VACUUM|ANALYZE\s+TABLE|REFRESH\s+TABLE|CACHE|UNCACHE|FSCK)\b.*$",
                               re.I | re.S)),
]


def _parts(qualified: str) -> list[str]:
    return [p.strip("`").lower() for p in re.findall(_NAME, qualified)]


def _command(text: str, scope: Scope, warehouse: Warehouse) -> plans.Plan:
    """What sqlglot leaves unparsed (SHOW ..., CREATE CATALOG, OPTIMIZE); anything else is a syntax error."""
    for name, pattern in _COMMANDS:
        match = pattern.match(text)
        if not match:
            continue
        if name == "catalogs":
            return plans.ShowCatalogsPlan(match.group(1))
        if name == "schemas":
            catalog = _parts(match.group(1))[0] if match.group(1) else scope.catalog
            return plans.ShowSchemasPlan(catalog, match.group(2))
        if name == "tables":
            parts = _parts(match.group(1)) if match.group(1) else [scope.schema]
            catalog, schema = (parts[0], parts[1]) if len(parts) == 2 else (scope.catalog, parts[0])
            return plans.ShowTablesPlan(catalog, schema, match.group(2))
        if name == "columns":
            parts = _parts(match.group(1))
            if match.group(2):
                parts = _parts(match.group(2)) + parts[-1:]
            table = exp.to_table(".".join(f"`{p}`" for p in parts), dialect=DIALECT)
            qualify(table, scope, warehouse)
            return plans.ShowColumnsPlan(table)
        if name == "create_catalog":
            return plans.CreateCatalogPlan(match.group(2).strip("`"), bool(match.group(1)))
        if name == "create_volume":
            return volume_sql.create_volume(match, scope)
        if name == "drop_volume":
            return volume_sql.drop_volume(match, scope)
        if name == "volumes":
            return volume_sql.show_volumes(match, scope)
        return plans.NoResultPlan()
    raise _first_token_error(text)
