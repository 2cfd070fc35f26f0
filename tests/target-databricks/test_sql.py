"""The warehouse path's statements, built without a connection, parse as Databricks SQL, stay within bounds and carry
every value as a typed parameter, never in their text."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import sqlglot
from sqlglot import exp

from target_databricks import sql

SCHEMA = pa.schema([
    pa.field("OrderNo", pa.string()), pa.field("Amount", pa.decimal128(38, 12)),
    pa.field("ChangedDate", pa.timestamp("us", tz="UTC")), pa.field("OrderDate", pa.date32()),
    pa.field("Lines", pa.int64()), pa.field("_mlc_fingerprint", pa.string()),
])
ROWS = pa.Table.from_pylist([
    {"OrderNo": f"P{n}'x", "Amount": Decimal("12345.678901234567"), "ChangedDate": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
     "OrderDate": dt.date(2026, 1, 1), "Lines": n if n % 7 else None, "_mlc_fingerprint": "ab"} for n in range(200)
], schema=SCHEMA)
NAME = sql.table_name("main", "ifscloud", "purchase_orders")


def parses(statement: str) -> exp.Expression:
    return sqlglot.parse_one(statement, read="databricks")


def markers(statement: str) -> list[str]:
    return [p.name for p in parses(statement).find_all(exp.Placeholder)]


def request_size(statement: str, parameters: list[dict]) -> int:
    """What the statement and its parameters take in the request's JSON."""
    return len(json.dumps(statement)) - 2 + len(json.dumps(parameters)) - 2


def test_ddl_parses_as_databricks_sql():
    parses(sql.create_schema("main", "ifscloud"))
    parses(sql.create_table(NAME, SCHEMA))
    parses(sql.add_columns(NAME, [pa.field("Cf_New", pa.string()), pa.field("Qty", pa.decimal128(38, 4))]))
    assert "USING DELTA" in sql.create_table(NAME, SCHEMA)


def test_merge_statements_are_bounded_cover_every_row_and_carry_values_as_parameters():
    statements = list(sql.merge_statements(NAME, ROWS, ["OrderNo"], "ChangedDate", max_bytes=8_000))
    assert len(statements) > 1
    assert all(request_size(text, parameters) <= 8_000 for text, parameters in statements)
    sent = [p for _, parameters in statements for p in parameters]
    assert len(sent) == ROWS.num_rows * len(SCHEMA)
    assert sorted(p["value"] for p in sent if p["type"] == "STRING" and p["value"].startswith("P")) == sorted(
        ROWS.column("OrderNo").to_pylist())  # every row once, the quote in P0'x as it is: no escaping needed
    for text, parameters in statements:
        assert "'P" not in text and "12345.678901234567" not in text  # no value in the text
        assert markers(text) == [p["name"] for p in parameters]  # each marker bound, in order
        assert "WHEN MATCHED AND" in text and "s.`ChangedDate` >= t.`ChangedDate`" in text
    first = {p["name"]: p for p in statements[0][1]}
    assert first["p1"] == {"name": "p1", "value": "12345.678901234567", "type": "DECIMAL(38,12)"}
    assert first["p2"] == {"name": "p2", "value": "2026-01-01T00:00:00+00:00", "type": "TIMESTAMP"}
    assert first["p3"] == {"name": "p3", "value": "2026-01-01", "type": "DATE"}
    assert first["p4"] == {"name": "p4", "type": "BIGINT"}  # NULL: a parameter without a value


def test_parameter_values_keep_decimals_exact_and_timestamps_in_utc():
    assert sql.parameter_text(Decimal("1E-12")) == "0.000000000001"  # never an exponent
    assert sql.parameter_text(Decimal("12345678901234567890123456.123456789012")) == \
        "12345678901234567890123456.123456789012"
    assert sql.parameter_text(dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == \
        "2026-01-01T10:00:00+00:00"
    assert sql.parameter("k0", None, pa.string()) == {"name": "k0", "type": "STRING"}
    assert sql.string_literal("/Volumes/a/b/c/it's") == "'/Volumes/a/b/c/it\\'s'"


def test_lookup_of_stored_versions_for_composite_keys():
    statement, parameters = sql.select_stored(NAME, ["Company", "InvoiceNo"], "Rowversion", [("10", "A"), ("20", "B")],
                                              [pa.string(), pa.string()])
    parses(statement)
    assert "(`Company` = :k0 AND `InvoiceNo` = :k1) OR (`Company` = :k2 AND `InvoiceNo` = :k3)" in statement
    assert [p["value"] for p in parameters] == ["10", "A", "20", "B"]


def test_volume_statements_read_the_staged_file_and_cast_to_the_table_types():
    path = "/Volumes/main/staging/mlc/ifs-to-databricks/main.ifscloud.purchase_orders/r1-000001-rows.parquet"
    merge = sql.merge_from_file(NAME, path, SCHEMA, ["OrderNo"], "ChangedDate")
    tree = parses(merge)
    assert isinstance(tree, exp.Merge) and not markers(merge)
    assert f"read_files('{path}', format => 'parquet')" in merge
    assert "CAST(`Amount` AS DECIMAL(38,12)) AS `Amount`" in merge
    assert "WHEN MATCHED AND NOT (t.`_mlc_fingerprint` <=> s.`_mlc_fingerprint`)" in merge
    lookup = sql.select_stored_from_file(NAME, ["Company", "InvoiceNo"], None, path,
                                         pa.schema([("Company", pa.string()), ("InvoiceNo", pa.string())]))
    parses(lookup)
    assert lookup.startswith("SELECT t.`Company`, t.`InvoiceNo`, t.`_mlc_fingerprint` FROM")
    assert "ON t.`Company` = s.`Company` AND t.`InvoiceNo` = s.`InvoiceNo`" in lookup
