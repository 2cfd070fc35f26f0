"""Generated data: deterministic per seed, proportional to the scale, exact decimals."""

import hashlib
import json
import re
import sqlite3
from decimal import Decimal

from mlc_sandbox.ifs import cache, generate, model

from ifs_standin_client import query

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")


def fingerprint(path) -> dict:
    conn = sqlite3.connect(path)
    digest = {}
    for entity in model.ENTITIES:
        keys = ", ".join(f'"{k}"' for k in entity.keys)
        h = hashlib.sha256()
        for row in conn.execute(f'SELECT * FROM "{entity.table}" ORDER BY {keys}'):
            h.update(repr(row).encode())
        digest[entity.entity_set] = h.hexdigest()
    conn.close()
    return digest


def test_same_seed_same_data_with_one_or_two_workers(tmp_path):
    one, two, other = tmp_path / "one.sqlite", tmp_path / "two.sqlite", tmp_path / "other.sqlite"
    cache.build(one, seed=11, scale=300, workers=1)
    cache.build(two, seed=11, scale=300, workers=2)
    cache.build(other, seed=12, scale=300, workers=1)
    assert fingerprint(one) == fingerprint(two)
    assert all(a != b for a, b in zip(fingerprint(one).values(), fingerprint(other).values()))


def test_cache_is_reused_and_runs_get_private_copies(tmp_path):
    cached = cache.ensure_cache(tmp_path, seed=5, scale=50)
    modified = cached.stat().st_mtime_ns
    assert cache.ensure_cache(tmp_path, seed=5, scale=50) == cached and cached.stat().st_mtime_ns == modified
    first, second = cache.open_store(tmp_path, 5, 50), cache.open_store(tmp_path, 5, 50)
    assert len({first.path, second.path, cached}) == 3
    first.close(), second.close()
    assert not first.path.exists() and cached.exists()


def test_change_timestamps_tie_and_span_two_years(client):
    rows = client.all_rows(*PO, query(select="ChangedDate"))
    stamps = [r["ChangedDate"] for r in rows]
    assert len(stamps) - len(set(stamps)) >= 20
    assert min(stamps) < "2025-03-01" and max(stamps) > "2026-06-01"


def test_decimals_round_trip_to_the_last_digit(client):
    response = client.get("VoucherHandling", "VoucherRowSet", query(top=1000, select="Amount"))
    long_numbers = re.findall(r'"Amount":(-?\d+\.\d+)', response.text)
    wide = [n for n in long_numbers if len(n.replace("-", "").replace(".", "").lstrip("0")) >= 20]
    assert wide, "some amounts carry 20+ significant digits"
    for number in wide[:5]:
        found = client.json("VoucherHandling", "VoucherRowSet", query(filter=f"Amount eq {number}"))["value"]
        assert found and all(r["Amount"] == Decimal(number) for r in found)
        assert f'"Amount":{number}' in client.get("VoucherHandling", "VoucherRowSet",
                                                  query(filter=f"Amount eq {number}")).text
        # one unit in the last place away is a different number, though a double cannot tell them apart
        nudged = str(Decimal(number) + Decimal(1).scaleb(Decimal(number).as_tuple().exponent))
        assert float(nudged) == float(number)
        assert client.json("VoucherHandling", "VoucherRowSet",
                           query(filter=f"Amount eq {nudged}"))["value"] == []
        above = client.json("VoucherHandling", "VoucherRowSet", query(filter=f"Amount gt {number}", count="true"))
        expected = sum(1 for n in long_numbers if Decimal(n) > Decimal(number))
        assert above["@odata.count"] >= expected


def test_order_totals_are_exact_sums_of_their_lines(client):
    orders = client.all_rows(*PO, query(select="TotalNetAmount,TotalTaxAmount,TotalGrossAmount"))
    lines = client.all_rows("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", query(select="NetAmount"))
    totals: dict[str, Decimal] = {}
    for line in lines:
        totals[line["OrderNo"]] = totals.get(line["OrderNo"], Decimal(0)) + line["NetAmount"]
    for order in orders:
        assert totals[order["OrderNo"]] == order["TotalNetAmount"]
        assert order["TotalNetAmount"] + order["TotalTaxAmount"] == order["TotalGrossAmount"]
    assert any(len(str(o["TotalNetAmount"]).replace(".", "")) >= 20 for o in orders)


def test_decimal_comparison_is_numeric_not_textual(client):
    rows = client.all_rows(*PO, query(select="TotalNetAmount", filter="TotalNetAmount lt 999999.99"))
    everything = client.all_rows(*PO, query(select="TotalNetAmount"))
    assert [r["OrderNo"] for r in rows] == [r["OrderNo"] for r in everything
                                            if r["TotalNetAmount"] < Decimal("999999.99")]
    assert any(len(str(r["TotalNetAmount"]).split(".")[0]) < 6 for r in rows)  # '99.5' < '999999.99' numerically


def test_generated_values_fit_the_model(tmp_path):
    volumes = generate.Volumes.for_scale(500)
    for family, chunk in generate.chunk_plan(volumes):
        for entity_set, row in generate.FAMILY_BY_NAME[family].generate(3, volumes, chunk):
            entity = model.ENTITY_BY_SET[entity_set]
            for f in entity.fields:
                value = row[f.name]
                if value is None:
                    assert f.nullable, (entity_set, f.name)
                elif f.edm == model.STRING:
                    assert isinstance(value, str) and len(value) <= f.max_length, (entity_set, f.name, value)
                elif f.edm == model.DECIMAL:
                    assert re.fullmatch(r"-?\d+(\.\d+)?", value) and len(value.replace("-", "").replace(".", "")) <= 38
                elif f.edm == model.ENUM:
                    assert value in f.enum.members
            json.dumps(row)
