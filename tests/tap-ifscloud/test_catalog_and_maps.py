"""Catalog property selection and singer-sdk stream maps work on the tap's records."""

from __future__ import annotations

import json

from support.singer import BIN, discover, run_tap, select_streams
import subprocess


def test_deselected_properties_are_not_emitted(ifs, tmp_path):
    catalog = select_streams(discover(tmp_path, ifs.tap_config()), ["suppliers"])
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "suppliers")
    for metadata in entry["metadata"]:
        if metadata["breadcrumb"] == ["properties", "CreditLimit"]:
            metadata["metadata"]["selected"] = False
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    (tmp_path / "config.json").write_text(json.dumps(ifs.tap_config()))
    completed = subprocess.run(
        [str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--catalog", str(tmp_path / "catalog.json")],
        capture_output=True, text=True, check=True,
    )
    records = [json.loads(l)["record"] for l in completed.stdout.splitlines() if l.startswith('{"type":"RECORD"')]
    assert records and all("CreditLimit" not in r and "Name" in r for r in records)


def test_stream_maps_rename_filter_and_hash(ifs, tmp_path):
    config = ifs.tap_config(
        stream_maps={
            "suppliers": {
                "__filter__": "Country == 'SE'",
                "supplier_name": "Name",
                "Name": "__NULL__",
                "AssociationNo": "md5(AssociationNo) if AssociationNo else None",
            }
        }
    )
    run = run_tap(tmp_path, config, streams=["suppliers"])
    records = run.records("suppliers")
    assert records and all(r["Country"] == "SE" for r in records)
    assert all("Name" not in r and r["supplier_name"] for r in records)
    assert all(r["AssociationNo"] is None or len(r["AssociationNo"]) == 32 for r in records)


def test_flattening_of_expanded_lines_is_available(ifs, tmp_path):
    config = ifs.tap_config(flattening_enabled=True, flattening_max_depth=1)
    run = run_tap(tmp_path, config, streams=["purchase_orders"])
    assert run.records("purchase_orders")
    assert isinstance(run.records("purchase_orders")[0]["PurchaseOrderLines"], str)  # arrays become JSON text


def test_a_custom_stream_without_change_column_reads_the_whole_set(ifs, tmp_path):
    config = ifs.tap_config(custom_streams=[
        {"name": "all_order_lines", "projection": "PurchaseOrderHandling", "entity_set": "PurchaseOrderLineNopartSet"}
    ])
    catalog = discover(tmp_path, config)
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == "all_order_lines")
    assert entry["key_properties"] == ["OrderNo", "LineNo", "ReleaseNo"]  # from $metadata
    assert entry["schema"]["properties"]["BuyUnitPrice"]["x-sql-datatype"] == "decimal"  # exact, never float
    first = run_tap(tmp_path, config, streams=["all_order_lines"])
    second = run_tap(tmp_path, config, streams=["all_order_lines"], state=first.final_state)
    expected = ifs.count("PurchaseOrderHandling", "PurchaseOrderLineNopartSet")
    assert len(first.records("all_order_lines")) == len(second.records("all_order_lines")) == expected


def test_connection_test_flag(ifs, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(ifs.tap_config()))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--test"],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert '"type":"RECORD"' in completed.stdout
