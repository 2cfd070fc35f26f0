"""SQL through the Statement Execution API on the Databricks stand-in: the warehouse load path of a target
(CREATE SCHEMA/TABLE ... USING DELTA, ALTER TABLE ADD COLUMNS, MERGE with UPDATE SET * / INSERT *, DESCRIBE,
SELECT), exact decimals, UTC timestamps, typed parameters, and failures reported the way Databricks reports them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from databricks.sdk.errors import InvalidParameterValue, NotFound
from databricks.sdk.service.sql import ColumnInfoTypeName, ServiceErrorCode, StatementState

from databricks_standin_client import execute, parameters, query, succeeded

TABLE = "main.sales.orders"
MERGE = """
MERGE INTO main.sales.orders AS t
USING (SELECT * FROM VALUES {rows} AS s(id, amount, ordered_at, due, note, paid)) AS s
ON t.id = s.id
WHEN MATCHED THEN UPDATE SET *
WHEN NOT MATCHED THEN INSERT *
"""


def failed(response, error_class: str) -> str:
    assert response.status.state == StatementState.FAILED, response.status
    assert response.status.error.error_code == ServiceErrorCode.BAD_REQUEST
    assert response.status.error.message.startswith(f"[{error_class}]"), response.status.error.message
    assert response.manifest is None and response.result is None
    return response.status.error.message


@pytest.fixture
def orders(databricks, workspace):
    def run(statement: str, **options):
        return succeeded(workspace, databricks.warehouse_id, statement, **options)

    run("CREATE SCHEMA IF NOT EXISTS main.sales")
    run(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT, amount DECIMAL(38, 18), ordered_at TIMESTAMP, "
        "due DATE, note STRING, paid BOOLEAN) USING DELTA TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')")
    return run


def test_create_merge_select_round_trip_with_exact_decimals_and_utc_timestamps(databricks, workspace, orders):
    first = orders(MERGE.format(rows=", ".join([
        "(1, 12345678901234567890.123456789012345678, TIMESTAMP '2024-03-31 23:59:59.123456', DATE '2024-02-29', "
        "'O\\'Brien ünïcode', true)",
        "(2, 0.000000000000000001, TIMESTAMP '2024-01-01T10:00:00+02:00', NULL, NULL, false)"])))
    assert [c.name for c in first.manifest.schema.columns] == [
        "num_affected_rows", "num_updated_rows", "num_deleted_rows", "num_inserted_rows"]
    assert first.result.data_array == [["2", "0", "0", "2"]]

    second = orders(MERGE.format(rows="(2, -7.5, NULL, DATE '2024-12-31', 'changed', NULL), "
                                      "(3, 99999999999999999999.999999999999999999, NULL, NULL, NULL, NULL)"))
    assert second.result.data_array == [["2", "1", "0", "1"]]

    response = orders(f"SELECT id, amount, ordered_at, due, note, paid FROM {TABLE} ORDER BY id")
    assert response.result.data_array == [
        ["1", "12345678901234567890.123456789012345678", "2024-03-31T23:59:59.123456Z", "2024-02-29",
         "O'Brien ünïcode", "true"],
        ["2", "-7.500000000000000000", None, "2024-12-31", "changed", None],
        ["3", "99999999999999999999.999999999999999999", None, None, None, None],
    ]
    columns = response.manifest.schema.columns
    assert [(c.type_name, c.type_text) for c in columns] == [
        (ColumnInfoTypeName.LONG, "BIGINT"), (ColumnInfoTypeName.DECIMAL, "DECIMAL(38,18)"),
        (ColumnInfoTypeName.TIMESTAMP, "TIMESTAMP"), (ColumnInfoTypeName.DATE, "DATE"),
        (ColumnInfoTypeName.STRING, "STRING"), (ColumnInfoTypeName.BOOLEAN, "BOOLEAN")]
    assert (columns[1].type_precision, columns[1].type_scale) == (38, 18)
    assert [c.position for c in columns] == list(range(6))

    utc = orders(f"SELECT ordered_at FROM {TABLE} WHERE id = 1")  # stored as an instant, read back in UTC
    assert utc.result.data_array == [["2024-03-31T23:59:59.123456Z"]]
    assert databricks.sql('SELECT CAST(amount AS VARCHAR) FROM "uc_main"."sales"."orders" WHERE id = 3') == [
        ["99999999999999999999.999999999999999999"]]


def test_alter_table_add_columns_then_merge_and_describe(databricks, workspace, orders):
    orders(f"ALTER TABLE {TABLE} ADD COLUMNS (channel STRING COMMENT 'where from', discount DECIMAL(38, 2))")
    described = orders(f"DESCRIBE TABLE {TABLE}")
    assert [c.name for c in described.manifest.schema.columns] == ["col_name", "data_type", "comment"]
    assert [row[:2] for row in described.result.data_array] == [
        ["id", "bigint"], ["amount", "decimal(38,18)"], ["ordered_at", "timestamp"], ["due", "date"],
        ["note", "string"], ["paid", "boolean"], ["channel", "string"], ["discount", "decimal(38,2)"]]

    merge = ("MERGE INTO main.sales.orders AS t USING (SELECT * FROM VALUES (5, 1.5, NULL, NULL, 'n', true, 'web', "
             "0.10) AS s(id, amount, ordered_at, due, note, paid, channel, discount)) AS s ON t.id = s.id "
             "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    orders(merge)
    assert query(workspace, databricks.warehouse_id, f"SELECT channel, discount FROM {TABLE}") == [["web", "0.10"]]
    tables = {t["table"]: t for t in databricks.tables()}
    assert tables["orders"]["rows"] == 1 and tables["orders"]["catalog"] == "main"
    assert tables["orders"]["columns"][-1] == {"name": "discount", "type": "decimal(38,2)"}


def test_typed_parameters_bind_to_named_markers(databricks, workspace, orders):
    orders(f"INSERT INTO {TABLE} (id, amount, ordered_at, due, note, paid) VALUES "
           "(:id, :amount, :at, :due, :note, :paid)",
           parameters=parameters(id=("7", "BIGINT"), amount=("0.1", "DECIMAL(38,18)"),
                                 at=("2024-06-01T12:00:00.5+02:00", "TIMESTAMP"), due=("2024-06-30", "DATE"),
                                 note=("it's :not_a_marker", "STRING"), paid=(None, "BOOLEAN")))
    rows = query(workspace, databricks.warehouse_id,
                 f"SELECT id, amount, ordered_at, due, note, paid FROM {TABLE} WHERE id = :id AND note = :note",
                 parameters=parameters(id=("7", "BIGINT"), note=("it's :not_a_marker", "STRING")))
    assert rows == [["7", "0.100000000000000000", "2024-06-01T10:00:00.500Z", "2024-06-30", "it's :not_a_marker",
                     None]]
    log = databricks.statements()[-1]
    assert log["parameters"] == [{"name": "id", "value": "7", "type": "BIGINT"},
                                 {"name": "note", "value": "it's :not_a_marker", "type": "STRING"}]
    assert log["state"] == "SUCCEEDED" and "WHERE id = :id" in log["statement"]

    unbound = execute(workspace, databricks.warehouse_id, "SELECT :missing")
    failed(unbound, "UNBOUND_SQL_PARAMETER")
    malformed = execute(workspace, databricks.warehouse_id, "SELECT :n",
                        parameters=parameters(n=("twelve", "INT")))
    failed(malformed, "CAST_INVALID_INPUT")
    with pytest.raises(InvalidParameterValue, match="parameter type"):
        workspace.statement_execution.execute_statement("SELECT :n", databricks.warehouse_id,
                                                        parameters=parameters(n=("1", "NO_SUCH_TYPE")))


def test_failed_merges_change_nothing(databricks, workspace, orders):
    orders(MERGE.format(rows="(1, 1, NULL, NULL, 'a', NULL)"))
    duplicate = execute(workspace, databricks.warehouse_id,
                        MERGE.format(rows="(1, 2, NULL, NULL, 'b', NULL), (1, 3, NULL, NULL, 'c', NULL)"))
    failed(duplicate, "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE")
    assert query(workspace, databricks.warehouse_id, f"SELECT amount, note FROM {TABLE}") == [
        ["1.000000000000000000", "a"]]

    overflow = execute(workspace, databricks.warehouse_id,  # 23 integer digits do not fit DECIMAL(38, 18)
                       MERGE.format(rows="(8, 1, NULL, NULL, 'x', NULL), "
                                         "(9, 12345678901234567890123.5, NULL, NULL, 'y', NULL)"))
    failed(overflow, "NUMERIC_VALUE_OUT_OF_RANGE")
    assert query(workspace, databricks.warehouse_id, f"SELECT count(*) FROM {TABLE}") == [["1"]]  # all or nothing

    missing = execute(workspace, databricks.warehouse_id,
                      "MERGE INTO main.sales.orders AS t USING (SELECT 1 AS id, 2.5 AS amount) AS s "
                      "ON t.id = s.id WHEN MATCHED THEN UPDATE SET *")
    assert "s.ordered_at" in failed(missing, "DELTA_MERGE_UNRESOLVED_EXPRESSION")


def test_syntax_errors_fail_as_parse_syntax_error(databricks, workspace):
    for statement in ("SELEC 1", "SELECT * FROM", "SELECT 1; SELECT 2", "CREATE TABEL t (a INT)", "FOO BAR"):
        response = execute(workspace, databricks.warehouse_id, statement)
        message = failed(response, "PARSE_SYNTAX_ERROR")
        assert "SQLSTATE: 42601" in message
    failed(execute(workspace, databricks.warehouse_id, "  "), "PARSE_EMPTY_STATEMENT")
    log = databricks.statements()
    assert [e["state"] for e in log] == ["FAILED"] * 6
    assert log[0]["statement"] == "SELEC 1" and "[PARSE_SYNTAX_ERROR]" in log[0]["error"]["message"]


def test_missing_objects_fail_with_databricks_error_classes(databricks, workspace, orders):
    run = lambda s: execute(workspace, databricks.warehouse_id, s)  # noqa: E731
    failed(run("SELECT * FROM main.sales.nothing"), "TABLE_OR_VIEW_NOT_FOUND")
    failed(run("CREATE TABLE main.nowhere.t (a INT)"), "SCHEMA_NOT_FOUND")
    failed(run("SELECT * FROM elsewhere.sales.orders"), "NO_SUCH_CATALOG_EXCEPTION")
    failed(run(f"SELECT no_such_column FROM {TABLE}"), "UNRESOLVED_COLUMN.WITH_SUGGESTION")
    failed(run(f"CREATE TABLE {TABLE} (a INT)"), "TABLE_OR_VIEW_ALREADY_EXISTS")
    failed(run(f"ALTER TABLE {TABLE} ADD COLUMNS (note STRING)"), "FIELDS_ALREADY_EXISTS")
    failed(run("DROP SCHEMA main.sales"), "SCHEMA_NOT_EMPTY")
    failed(run("SELECT * FROM read_csv('/etc/hostname')"), "UNRESOLVED_ROUTINE")  # DuckDB's, not Databricks'
    failed(run("SELECT * FROM generate_series(1, 3)"), "UNRESOLVED_ROUTINE")
    assert query(workspace, databricks.warehouse_id, "SHOW TABLES IN main.sales") == [["sales", "orders", "false"]]


def test_catalog_and_schema_of_the_request_resolve_unqualified_names(databricks, workspace, orders):
    orders(f"INSERT INTO {TABLE} (id, note) VALUES (1, 'here')")
    rows = query(workspace, databricks.warehouse_id, "SELECT note, current_catalog(), current_schema() FROM orders",
                 catalog="main", schema="sales")
    assert rows == [["here", "main", "sales"]]
    failed(execute(workspace, databricks.warehouse_id, "SELECT * FROM orders"), "TABLE_OR_VIEW_NOT_FOUND")
    succeeded(workspace, databricks.warehouse_id, "CREATE CATALOG IF NOT EXISTS bronze")
    succeeded(workspace, databricks.warehouse_id, "CREATE SCHEMA bronze.raw")
    assert query(workspace, databricks.warehouse_id, "SHOW CATALOGS") == [["bronze"], ["main"]]
    assert query(workspace, databricks.warehouse_id, "SHOW SCHEMAS IN bronze") == [["default"], ["raw"]]


def test_oversize_statement_is_refused_before_it_runs(databricks, workspace):
    padding = "-- " + "x" * (16 * 1024 * 1024) + "\n"
    with pytest.raises(InvalidParameterValue, match="maximum query text size"):
        workspace.statement_execution.execute_statement(padding + "SELECT 1", databricks.warehouse_id)
    assert databricks.statements() == []
    just_fits = "SELECT 1 -- " + "x" * (16 * 1024 * 1024 - 20)
    assert query(workspace, databricks.warehouse_id, just_fits) == [["1"]]


def test_request_errors(databricks, workspace):
    with pytest.raises(NotFound, match="Warehouse nope does not exist"):
        workspace.statement_execution.execute_statement("SELECT 1", "nope")
    with pytest.raises(InvalidParameterValue, match="wait_timeout"):
        workspace.statement_execution.execute_statement("SELECT 1", databricks.warehouse_id, wait_timeout="3s")
    with pytest.raises(NotFound):
        workspace.statement_execution.get_statement("no-such-statement")


def test_statements_run_side_by_side(databricks, workspace, orders):
    def insert(n: int):
        return execute(workspace, databricks.warehouse_id, f"INSERT INTO {TABLE} (id, note) VALUES ({n}, 'parallel')")

    with ThreadPoolExecutor(8) as pool:
        states = [r.status.state for r in pool.map(insert, range(16))]
    assert states == [StatementState.SUCCEEDED] * 16  # blind appends never conflict, as in Delta
    assert query(workspace, databricks.warehouse_id, f"SELECT count(DISTINCT id) FROM {TABLE}") == [["16"]]
