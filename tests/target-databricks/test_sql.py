"""The warehouse path's statements, built without a connection, parse as Databricks SQL and stay within bounds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import sqlglot

from target_databricks import sql

SCHEMA = pa.schema([
    pa.field("OrderNo", pa.string()), pa.field("Amount", pa.decimal128(38, 12)),
    pa.field("ChangedDate", pa.timestamp("us", tz="UTC")), pa.field("OrderDate", pa.date32()),
    pa.field("Lines", pa.int64()), pa.field("_mlc_fingerprint", pa.string()),
])
ROWS = pa.Table.from_pylist([
    {"OrderNo": f"P{n}'x", "Amount": Decimal("12345.678901234567"), "ChangedDate": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
     "OrderDate": dt.date(2026, 1, 1), "Lines": n, "_mlc_fingerprint": "ab"} for n in range(200)
], schema=SCHEMA)
NAME = sql.table_name("main", "ifscloud", "purchase_orders")


def parses(statement: str) -> None:
    sqlglot.parse_one(statement, read="databricks")


def test_ddl_parses_as_databricks_sql():
    parses(sql.create_schema("main", "ifscloud"))
    parses(sql.create_table(NAME, SCHEMA))
    parses(sql.add_columns(NAME, [pa.field("Cf_New", pa.string()), pa.field("Qty", pa.decimal128(38, 4))]))
    assert "USING DELTA" in sql.create_table(NAME, SCHEMA)


def test_merge_statements_are_bounded_and_cover_every_row():
    statements = list(sql.merge_statements(NAME, ROWS, ["OrderNo"], "ChangedDate", max_bytes=8_000))
    assert len(statements) > 1
    assert all(len(s) <= 8_000 for s in statements)
    assert sum(s.count("'P") for s in statements) == ROWS.num_rows
    for statement in statements:
        parses(statement)
        assert "WHEN MATCHED AND" in statement and "s.`ChangedDate` >= t.`ChangedDate`" in statement


def test_literals_escape_quotes_and_keep_decimals_exact():
    assert sql.literal("O'Brien", pa.string()) == "'O\\'Brien'"
    assert sql.literal(Decimal("1E-12"), pa.decimal128(38, 12)) == "0.000000000001"  # never a DOUBLE literal
    assert sql.literal(Decimal("12345678901234567890123456.123456789012"), pa.decimal128(38, 12)) == \
        "12345678901234567890123456.123456789012"
    assert sql.literal(dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))), SCHEMA.field(2).type) == \
        "TIMESTAMP '2026-01-01 10:00:00'"


def test_lookup_of_stored_versions_for_composite_keys():
    statement = sql.select_stored(NAME, ["Company", "InvoiceNo"], "Rowversion", [("10", "A"), ("20", "B")],
                                  [pa.string(), pa.string()])
    parses(statement)
    assert "(`Company` = '10' AND `InvoiceNo` = 'A') OR (`Company` = '20' AND `InvoiceNo` = 'B')" in statement
