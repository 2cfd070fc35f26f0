"""Volumes in SQL on the Databricks stand-in: CREATE/DROP/SHOW VOLUMES, and read_files over staged Parquet files in
SELECT and MERGE ... USING, with exact types and Databricks' own errors."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from databricks.sdk.service.sql import StatementState

from databricks_standin_client import execute, parameters, query, succeeded

ROOT = "/Volumes/main/staging/landing"
BATCH = pa.table({
    "id": pa.array([1, 2, 3], pa.int64()),
    "amount": pa.array([Decimal("12345678901234.123456789012345678901234"), Decimal("-0.000000000000000000000001"),
                        None], pa.decimal128(38, 24)),
    "changed_at": pa.array([dt.datetime(2026, 3, 29, 0, 30, 0, 123456, tzinfo=dt.timezone.utc), None, None],
                           pa.timestamp("us", tz="UTC")),
    "due": pa.array([dt.date(2024, 2, 29), None, None], pa.date32()),
    "note": ["O'Brien \\ ünïcode", None, "c"],
    "paid": [True, False, None],
})


def parquet(table: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    return buffer


def failed(response, error_class: str) -> str:
    assert response.status.state == StatementState.FAILED, response.status
    assert response.status.error.message.startswith(f"[{error_class}]"), response.status.error.message
    return response.status.error.message


@pytest.fixture
def run(databricks, workspace):
    def run_statement(statement: str, **options):
        return execute(workspace, databricks.warehouse_id, statement, **options)

    return run_statement


@pytest.fixture
def landing(databricks, workspace, run):
    assert run("CREATE SCHEMA main.staging").status.state == StatementState.SUCCEEDED
    assert run("CREATE VOLUME IF NOT EXISTS main.staging.landing COMMENT 'staged batches'").status.state == \
        StatementState.SUCCEEDED
    workspace.files.upload(f"{ROOT}/orders/batch-1.parquet", parquet(BATCH))
    return workspace


def test_volumes_are_created_listed_and_dropped_as_unity_catalog_objects(databricks, workspace, run, landing):
    assert run("CREATE VOLUME IF NOT EXISTS main.staging.landing").status.state == StatementState.SUCCEEDED
    message = failed(run("CREATE VOLUME main.staging.landing"), "VOLUME_ALREADY_EXISTS")
    assert "Cannot create volume `main`.`staging`.`landing` because it already exists" in message
    failed(run("CREATE VOLUME main.nowhere.landing"), "SCHEMA_NOT_FOUND")
    failed(run("CREATE EXTERNAL VOLUME main.staging.ext LOCATION 's3://bucket/x'"), "UNSUPPORTED_FEATURE.MLC_SANDBOX")
    succeeded(workspace, databricks.warehouse_id, "CREATE VOLUME main.staging.archive")
    assert query(workspace, databricks.warehouse_id, "SHOW VOLUMES IN main.staging") == [
        ["staging", "archive"], ["staging", "landing"]]
    assert query(workspace, databricks.warehouse_id, "SHOW VOLUMES IN main.staging LIKE 'land*'") == [
        ["staging", "landing"]]

    failed(run("DROP SCHEMA main.staging"), "SCHEMA_NOT_EMPTY")  # its volumes count as its objects
    succeeded(workspace, databricks.warehouse_id, "DROP VOLUME main.staging.landing")
    assert [v["full_name"] for v in databricks.volumes()] == ["main.staging.archive"]
    message = failed(run("DROP VOLUME main.staging.landing"), "UC_VOLUME_NOT_FOUND")
    assert "Volume `main`.`staging`.`landing` does not exist. Please use 'SHOW VOLUMES'" in message
    succeeded(workspace, databricks.warehouse_id, "DROP VOLUME IF EXISTS main.staging.landing")
    succeeded(workspace, databricks.warehouse_id, "DROP SCHEMA main.staging CASCADE")
    assert databricks.volumes() == []


def test_read_files_reads_parquet_exactly_with_its_own_types(databricks, landing, run):
    response = run(f"SELECT * FROM read_files('{ROOT}/orders/batch-1.parquet', format => 'parquet') ORDER BY id")
    assert response.status.state == StatementState.SUCCEEDED, response.status
    assert [(c.name, c.type_text) for c in response.manifest.schema.columns] == [
        ("id", "BIGINT"), ("amount", "DECIMAL(38,24)"), ("changed_at", "TIMESTAMP"), ("due", "DATE"),
        ("note", "STRING"), ("paid", "BOOLEAN"), ("_rescued_data", "STRING")]
    assert response.result.data_array == [
        ["1", "12345678901234.123456789012345678901234", "2026-03-29T00:30:00.123456Z", "2024-02-29",
         "O'Brien \\ ünïcode", "true", None],
        ["2", "-0.000000000000000000000001", None, None, None, "false", None],
        ["3", None, None, None, "c", None, None]]


def test_read_files_reads_a_folder_recursively_leaves_hidden_files_out_and_filters_globs(landing, run):
    landing.files.upload(f"{ROOT}/orders/2026/batch-2.parquet", parquet(BATCH.slice(0, 2)))
    landing.files.upload(f"{ROOT}/orders/_SUCCESS", io.BytesIO(b""))
    landing.files.upload(f"{ROOT}/orders/.batch-1.parquet.crc", io.BytesIO(b"not parquet"))
    assert run(f"SELECT count(*) FROM read_files('{ROOT}/orders')").result.data_array == [["5"]]  # format detected
    assert run(f"SELECT count(*) FROM read_files('{ROOT}/orders/*.parquet', format => 'parquet')"
               ).result.data_array == [["3"]]  # a * stays within one folder
    assert run(f"SELECT count(*) FROM read_files('{ROOT}/orders/{{batch-1,2026/batch-?}}.parquet')"
               ).result.data_array == [["5"]]
    assert run("SELECT count(*) FROM read_files(:folder, format => 'parquet')",
               parameters=parameters(folder=(f"{ROOT}/orders/2026/", "STRING"))).result.data_array == [["2"]]


def test_read_files_fails_as_databricks_fails_it(databricks, landing, run):
    message = failed(run("SELECT * FROM read_files('/Volumes/main/staging/nope/x.parquet')"), "UC_VOLUME_NOT_FOUND")
    assert "Volume `main`.`staging`.`nope` does not exist" in message
    assert "Path does not exist: /Volumes/main/staging/landing/missing" in failed(
        run(f"SELECT * FROM read_files('{ROOT}/missing', format => 'parquet')"), "PATH_NOT_FOUND")
    landing.files.create_directory(f"{ROOT}/empty")
    failed(run(f"SELECT * FROM read_files('{ROOT}/empty', format => 'parquet')"), "CF_EMPTY_DIR_FOR_SCHEMA_INFERENCE")
    landing.files.upload(f"{ROOT}/broken/b.parquet", io.BytesIO(b"PAR1 cut short"))
    assert f"Error while reading file {ROOT}/broken/b.parquet." in failed(
        run(f"SELECT * FROM read_files('{ROOT}/broken/b.parquet', format => 'parquet')"), "FAILED_READ_FILE.NO_HINT")
    failed(run(f"SELECT * FROM read_files('{ROOT}/orders', format => 'csv')"), "UNSUPPORTED_FEATURE.MLC_SANDBOX")
    failed(run(f"SELECT * FROM read_files('{ROOT}/orders', schemaHints => 'id INT')"),
           "UNSUPPORTED_FEATURE.MLC_SANDBOX")
    failed(run("SELECT * FROM read_csv('/etc/passwd')"), "UNRESOLVED_ROUTINE")  # DuckDB's readers stay out of reach
    databricks.grant_volume("main.staging.landing", "WRITE VOLUME")
    assert "User does not have READ VOLUME on Volume 'main.staging.landing'" in failed(
        run(f"SELECT * FROM read_files('{ROOT}/orders')"), "INSUFFICIENT_PERMISSIONS")


def test_merge_from_read_files_updates_and_inserts_by_key(databricks, landing, run):
    run("CREATE TABLE main.staging.orders (id BIGINT, amount DECIMAL(38,24), changed_at TIMESTAMP, due DATE, "
        "note STRING, paid BOOLEAN) USING DELTA")
    merge = (f"MERGE INTO main.staging.orders AS t USING (SELECT id, amount, changed_at, due, note, paid FROM "
             f"read_files('{ROOT}/orders/batch-1.parquet', format => 'parquet')) AS s ON t.id = s.id "
             "WHEN MATCHED AND NOT (t.note <=> s.note) THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    assert run(merge).result.data_array == [["3", "0", "0", "3"]]
    assert run(merge).result.data_array == [["0", "0", "0", "0"]]  # the same file again: nothing to do
    changed = BATCH.set_column(4, "note", pa.array(["changed", None, "c"]))
    landing.files.upload(f"{ROOT}/orders/batch-2.parquet", parquet(changed))
    second = merge.replace("batch-1", "batch-2")
    assert run(second).result.data_array == [["1", "1", "0", "0"]]
    assert databricks.sql("SELECT id, amount, note FROM main.staging.orders ORDER BY id", dialect="databricks") == [
        ["1", "12345678901234.123456789012345678901234", "changed"], ["2", "-0.000000000000000000000001", None],
        ["3", None, "c"]]

    landing.files.upload(f"{ROOT}/twice/a.parquet", parquet(changed))
    landing.files.upload(f"{ROOT}/twice/b.parquet", parquet(BATCH))  # the same keys twice in one source
    failed(run(f"MERGE INTO main.staging.orders USING read_files('{ROOT}/twice/') AS s ON orders.id = s.id "
               "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"),
           "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE")


def test_copy_into_is_refused_as_not_modelled(landing, run):
    failed(run(f"COPY INTO main.staging.orders FROM '{ROOT}/orders' FILEFORMAT = PARQUET"),
           "UNSUPPORTED_FEATURE.MLC_SANDBOX")
