"""target-salesforce against the Salesforce stand-in over real HTTP: Accounts, Orders and OrderItems upserted by
external id (never a duplicate), parents before children in one run, Salesforce's refusals audited and redone."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from mlc_sandbox.salesforce import SalesforceSandbox
from support.replay import replay_the_failed_run
from support.singer import record_message, run_target, schema_message

STANDARD_PRICEBOOK = "01s000000000001AAA"
STANDARD_ENTRY = "01u000000000001AAA"

TEXT = {"type": ["string", "null"]}
SCHEMAS = {
    "sf_supplier_accounts": ({name: TEXT for name in ("IFS_Supplier_Id__c", "Name", "Type", "BillingCountry",
                                                      "CurrencyIsoCode", "Payment_Terms__c", "IFS_Company__c")},
                             ["IFS_Supplier_Id__c"]),
    "sf_orders": ({"IFS_Order_No__c": TEXT, "EffectiveDate": {"type": ["string", "null"], "format": "date"},
                   "Status": TEXT, "Description": TEXT, "IFS_Status__c": TEXT, "Account.IFS_Supplier_Id__c": TEXT},
                  ["IFS_Order_No__c"]),
    "sf_order_items": ({"IFS_Line_Key__c": TEXT, "Quantity": {"type": ["number", "null"]},
                        "UnitPrice": {"type": ["number", "null"]}, "Description": TEXT,
                        "Order": {"type": ["object", "null"], "properties": {"IFS_Order_No__c": TEXT}}},
                       ["IFS_Line_Key__c"]),
}


def supplier(supplier_id: str, name: str | None = None, **extra) -> dict:
    return {"IFS_Supplier_Id__c": supplier_id, "Name": name or f"Supplier {supplier_id}", "Type": "Supplier",
            "BillingCountry": "SE", "CurrencyIsoCode": "SEK", "Payment_Terms__c": "30 days net", "IFS_Company__c": "10",
            **extra}


def order(order_no: str, supplier_id: str, **extra) -> dict:
    return {"IFS_Order_No__c": order_no, "EffectiveDate": "2026-03-01", "Status": "Draft",
            "Description": f"Purchase order {order_no}", "IFS_Status__c": "Released",
            "Account.IFS_Supplier_Id__c": supplier_id, **extra}


def item(order_no: str, line: int, quantity: str, price: str) -> dict:
    return {"IFS_Line_Key__c": f"{order_no}-{line}", "Quantity": Decimal(quantity), "UnitPrice": Decimal(price),
            "Description": f"Line {line}", "Order": {"IFS_Order_No__c": order_no}}


@pytest.fixture
def sf():
    with SalesforceSandbox(port=0) as stand_in:
        yield stand_in


def config_for(sf, tmp_path, **extra) -> dict:
    return {
        "base_url": sf.base_url, "client_id": sf.client_id, "client_secret": sf.client_secret,
        "sobjects": {
            "sf_supplier_accounts": {"sobject": "Account", "external_id_field": "IFS_Supplier_Id__c"},
            "sf_orders": {"sobject": "Order", "external_id_field": "IFS_Order_No__c",
                          "defaults": {"Pricebook2Id": STANDARD_PRICEBOOK}},
            "sf_order_items": {"sobject": "OrderItem", "external_id_field": "IFS_Line_Key__c",
                               "defaults": {"PricebookEntryId": STANDARD_ENTRY}},
        },
        "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
        "api_usage_slowdown_seconds": 0,
        **extra,
    }


def send(tmp_path, config, batches: list[tuple[str, list[dict]]], **kwargs):
    """Singer messages for (stream, records) groups in the order given, SCHEMA first for each stream."""
    messages, seen = [], set()
    for stream, records in batches:
        if stream not in seen:
            properties, keys = SCHEMAS[stream]
            messages.append(schema_message(stream, properties, keys))
            seen.add(stream)
        messages += [record_message(stream, r) for r in records]
    messages.append({"type": "STATE", "value": {"bookmarks": {"run": {"replication_key_value": "done"}}}})
    return run_target(tmp_path, config, messages, executable="target-salesforce", **kwargs)


def accounts(sf) -> dict[str, dict]:
    return {a["IFS_Supplier_Id__c"]: a for a in sf.records("Account") if a.get("IFS_Supplier_Id__c")}


def last_run(config):
    return AuditTrail(config["audit_url"]).runs()[0]


def collection_calls(sf) -> list[dict]:
    return [r for r in sf.requests() if r["method"] == "PATCH" and "/composite/sobjects/" in r["path"]]


def test_suppliers_become_accounts_and_a_rerun_creates_no_duplicate(sf, tmp_path):
    config = config_for(sf, tmp_path)
    suppliers = [supplier(f"S{n}") for n in range(1, 6)]
    run = send(tmp_path, config, [("sf_supplier_accounts", suppliers)])
    assert run.states[-1] == {"bookmarks": {"run": {"replication_key_value": "done"}}}
    first = accounts(sf)
    assert sorted(first) == ["S1", "S2", "S3", "S4", "S5"]
    assert first["S1"]["Name"] == "Supplier S1" and first["S1"]["Type"] == "Supplier"
    assert first["S1"]["Payment_Terms__c"] == "30 days net" and first["S1"]["IFS_Company__c"] == "10"
    assert last_run(config).operations == {"insert": 5}
    assert len(collection_calls(sf)) == 1  # five records, one collections call

    send(tmp_path, config, [("sf_supplier_accounts", suppliers)])
    second = accounts(sf)
    assert {k: a["Id"] for k, a in second.items()} == {k: a["Id"] for k, a in first.items()}
    assert len(sf.records("Account")) == len(first)
    assert last_run(config).operations == {"update": 5}


def test_a_changed_supplier_updates_its_one_account(sf, tmp_path):
    config = config_for(sf, tmp_path)
    send(tmp_path, config, [("sf_supplier_accounts", [supplier("S1"), supplier("S2")])])
    before = accounts(sf)
    send(tmp_path, config, [("sf_supplier_accounts", [supplier("S2", "Beta Components AB", BillingCountry="NO")])])
    after = accounts(sf)
    assert after["S2"]["Id"] == before["S2"]["Id"]
    assert after["S2"]["Name"] == "Beta Components AB" and after["S2"]["BillingCountry"] == "NO"
    assert after["S1"] == before["S1"]
    assert len(sf.records("Account")) == 2

    entry = next(AuditTrail(config["audit_url"]).entries(run_id=last_run(config).run_id))
    assert entry.operation == "update" and entry.outcome == "succeeded"
    assert entry.destination == f"Account/IFS_Supplier_Id__c/S2 ({before['S2']['Id']})"
    assert entry.payload == {"attributes": {"type": "Account"}, **supplier("S2", "Beta Components AB", BillingCountry="NO")}
    assert entry.source == supplier("S2", "Beta Components AB", BillingCountry="NO")


def test_orders_and_items_referencing_parents_by_external_id_land_in_one_run_parents_first(sf, tmp_path):
    config = config_for(sf, tmp_path)
    # Children arrive first: the target must still write Accounts, then Orders, then OrderItems.
    run = send(tmp_path, config, [
        ("sf_order_items", [item("P1", 1, "2", "100.50"), item("P1", 2, "1.5", "10.10"), item("P2", 1, "3", "7")]),
        ("sf_orders", [order("P1", "S1"), order("P2", "S2")]),
        ("sf_supplier_accounts", [supplier("S1"), supplier("S2")]),
    ])
    assert run.returncode == 0
    account_ids = {k: a["Id"] for k, a in accounts(sf).items()}
    orders = {o["IFS_Order_No__c"]: o for o in sf.records("Order")}
    assert orders["P1"]["AccountId"] == account_ids["S1"] and orders["P2"]["AccountId"] == account_ids["S2"]
    assert orders["P1"]["Pricebook2Id"] == STANDARD_PRICEBOOK  # from defaults
    assert orders["P1"]["EffectiveDate"] == "2026-03-01"
    items = {i["IFS_Line_Key__c"]: i for i in sf.records("OrderItem")}
    assert items["P1-1"]["OrderId"] == orders["P1"]["Id"] and items["P2-1"]["OrderId"] == orders["P2"]["Id"]
    assert items["P1-1"]["PricebookEntryId"] == STANDARD_ENTRY
    assert Decimal(str(orders["P1"]["TotalAmount"])) == Decimal("216.15")  # 2 × 100.50 + 1.5 × 10.10
    paths = [c["path"].rsplit("/", 2)[-2] for c in collection_calls(sf)]
    assert paths == ["Account", "Order", "OrderItem"]
    assert last_run(config).outcomes == {"succeeded": 7}

    # A rerun of the whole graph: same ids, nothing new.
    send(tmp_path, config, [("sf_supplier_accounts", [supplier("S1"), supplier("S2")]),
                            ("sf_orders", [order("P1", "S1"), order("P2", "S2")]),
                            ("sf_order_items", [item("P1", 1, "2", "100.50"), item("P1", 2, "1.5", "10.10"),
                                                item("P2", 1, "3", "7")])])
    assert len(sf.records("Order")) == 2 and len(sf.records("OrderItem")) == 3 and len(sf.records("Account")) == 2
    assert last_run(config).operations == {"update": 7}


def test_full_child_batches_wait_for_parent_streams_that_have_not_started_and_state_waits_with_them(sf, tmp_path):
    """Taps order streams by name (purchase_orders before suppliers): a child batch filling up before its parent stream
    starts is held until the end of the input, and no STATE covering it is emitted before it is written."""
    config = config_for(sf, tmp_path, batch_size=2)
    orders = [order(f"P{n}", f"S{n % 2}") for n in range(5)]
    state = {"type": "STATE", "value": {"bookmarks": {"sf_orders": {"replication_key_value": "2026-11-25"}}}}
    closing = {"type": "STATE", "value": {"bookmarks": {"sf_orders": {"replication_key_value": "2026-11-25"},
                                                        "sf_supplier_accounts": {"replication_key_value": "2026-11-24"}}}}
    messages = [schema_message("sf_orders", *SCHEMAS["sf_orders"]),
                *[record_message("sf_orders", o) for o in orders], state,
                schema_message("sf_supplier_accounts", *SCHEMAS["sf_supplier_accounts"]),
                record_message("sf_supplier_accounts", supplier("S0")),
                record_message("sf_supplier_accounts", supplier("S1")), closing]  # a tap ends its sync on STATE
    run = run_target(tmp_path, config, messages, executable="target-salesforce")
    assert run.returncode == 0, run.stderr
    assert "Holding 2 'sf_orders' record(s) until the end of the input" in run.stderr
    account_ids = {k: a["Id"] for k, a in accounts(sf).items()}
    stored = {o["IFS_Order_No__c"]: o["AccountId"] for o in sf.records("Order")}
    assert stored == {f"P{n}": account_ids[f"S{n % 2}"] for n in range(5)}
    assert [c["path"].rsplit("/", 2)[-2] for c in collection_calls(sf)][0] == "Account"
    assert last_run(config).outcomes == {"succeeded": 7}
    assert run.stdout.strip().splitlines() == [json.dumps(closing["value"])]  # once, after everything was written


def test_a_child_batch_waits_for_a_parent_stream_whose_own_batches_are_held(sf, tmp_path):
    """tap-ifscloud's order: purchase_order_lines, purchase_orders, suppliers. The lines' last partial batch is
    written when the orders' full batch is (a full sink drains the others); the orders are held for their suppliers,
    so the lines must be held with them, not sent to a Salesforce that has no such Order yet."""
    config = config_for(sf, tmp_path, batch_size=2)
    lines = [item("P0", 1, "1", "10"), item("P0", 2, "2", "20"), item("P1", 1, "3", "30")]  # a batch of 2, then 1
    orders = [order("P0", "S0"), order("P1", "S1")]
    run = send(tmp_path, config, [("sf_order_items", lines), ("sf_orders", orders),
                                  ("sf_supplier_accounts", [supplier("S0"), supplier("S1")])], check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Holding 1 'sf_order_items' record(s) until the end of the input: the streams they reference (sf_orders)" \
        in run.stderr
    assert sorted(i["IFS_Line_Key__c"] for i in sf.records("OrderItem")) == ["P0-1", "P0-2", "P1-1"]
    assert last_run(config).outcomes == {"succeeded": 7}


def test_refused_records_are_audited_with_salesforces_message_the_rest_is_kept_and_redone_when_fixed(sf, tmp_path):
    config = config_for(sf, tmp_path)
    run = send(tmp_path, config, [
        ("sf_supplier_accounts", [supplier("S1"), supplier("S2", Type="Vendor"), supplier("S3")]),
        ("sf_orders", [order("P1", "S1"), order("P9", "S99")]),
    ], expected_exit=EXIT_UNDELIVERED)
    assert run.states  # refusals do not hold the bookmark back: they are in the audit trail (and exit 3 says so)
    assert sorted(accounts(sf)) == ["S1", "S3"]
    assert [o["IFS_Order_No__c"] for o in sf.records("Order")] == ["P1"]
    trail = AuditTrail(config["audit_url"])
    failures = {f.key[next(iter(f.key))]: f for f in trail.failures()}
    assert sorted(failures) == ["P9", "S2"]
    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in failures["S2"].error and "Vendor" in failures["S2"].error
    assert "(fields: Type)" in failures["S2"].error
    assert "INVALID_FIELD: Foreign key external ID: S99 not found for field IFS_Supplier_Id__c in entity Account" \
        in failures["P9"].error
    assert failures["P9"].source == order("P9", "S99")
    assert failures["P9"].payload["Account"] == {"IFS_Supplier_Id__c": "S99"}  # the nested reference as sent
    assert "Traceback" not in run.stderr
    assert "2 record(s) were refused by Salesforce" in run.stderr

    # The next run gets the supplier fixed in IFS and the missing supplier S99: both failures are settled.
    send(tmp_path, config, [("sf_supplier_accounts", [supplier("S2", Type="Supplier"), supplier("S99")])])
    assert sorted(accounts(sf)) == ["S1", "S2", "S3", "S99"]
    orders = {o["IFS_Order_No__c"]: o for o in sf.records("Order")}
    assert orders["P9"]["AccountId"] == accounts(sf)["S99"]["Id"]  # redone after this run's suppliers
    assert list(trail.failures()) == []
    assert len(sf.records("Account")) == 4


def test_the_latest_version_wins_when_one_external_id_comes_twice_in_a_batch(sf, tmp_path):
    config = config_for(sf, tmp_path)
    send(tmp_path, config, [("sf_supplier_accounts", [supplier("S1", "Old name"), supplier("s1", "New name")])])
    assert [a["Name"] for a in sf.records("Account")] == ["New name"]
    assert last_run(config).operations == {"insert": 1, "skipped_duplicate": 1}


def test_flat_references_defaults_and_bad_mapping(sf, tmp_path):
    config = config_for(sf, tmp_path)
    config["sobjects"]["sf_orders"]["defaults"]["Description"] = "From IFS"
    send(tmp_path, config, [("sf_supplier_accounts", [supplier("S1")]),
                            ("sf_orders", [order("P1", "S1", Description=None)])])
    assert sf.records("Order")[0]["Description"] == "From IFS"

    bad = send(tmp_path, config, [("sf_supplier_accounts", [{"IFS_Supplier_Id__c": None, "Name": "No key"}])], check=False)
    assert bad.returncode != 0
    assert "record 1 of stream 'sf_supplier_accounts' (no key): missing key property IFS_Supplier_Id__c" in bad.stderr
    assert bad.states == []

    unrouted = config_for(sf, tmp_path)
    del unrouted["sobjects"]["sf_orders"]
    refused = send(tmp_path, unrouted, [("sf_orders", [order("P2", "S1")])], check=False)
    assert refused.returncode != 0 and "stream 'sf_orders' is not in the sobjects setting" in refused.stderr


def test_stream_maps_write_references_as_flat_properties_and_dropped_source_streams_are_fine(sf, tmp_path):
    """The shapes mappers/ produce: IFS records mapped by singer-sdk stream maps (here the target's own), the reference
    to the supplier as "Account.IFS_Supplier_Id__c", the IFS source streams dropped with __NULL__."""
    config = config_for(sf, tmp_path, stream_maps={
        "sf_supplier_accounts": {"__source__": "suppliers", "__key_properties__": ["IFS_Supplier_Id__c"],
                                 "IFS_Supplier_Id__c": "SupplierId", "Name": "Name", "Type": "'Supplier'",
                                 "__else__": "__NULL__"},
        "sf_orders": {"__source__": "purchase_orders", "__key_properties__": ["IFS_Order_No__c"],
                      "IFS_Order_No__c": "OrderNo", "EffectiveDate": "OrderDate", "Status": "'Draft'",
                      "Account.IFS_Supplier_Id__c": "VendorNo", "__else__": "__NULL__"},
        "suppliers": "__NULL__", "purchase_orders": "__NULL__"})
    messages = [
        schema_message("purchase_orders", {"OrderNo": {"type": "string"}, "VendorNo": {"type": "string"},
                                           "OrderDate": {"type": ["string", "null"], "format": "date"}}, ["OrderNo"]),
        record_message("purchase_orders", {"OrderNo": "P1", "OrderDate": "2026-01-02", "VendorNo": "S1"}),
        schema_message("suppliers", {"SupplierId": {"type": "string"}, "Name": {"type": "string"}}, ["SupplierId"]),
        record_message("suppliers", {"SupplierId": "S1", "Name": "Acme Tools AB"}),
        {"type": "STATE", "value": {"bookmarks": {"suppliers": {"replication_key_value": "x"}}}},
    ]
    run = run_target(tmp_path, config, messages, executable="target-salesforce")
    assert run.states[-1] == {"bookmarks": {"suppliers": {"replication_key_value": "x"}}}
    account = accounts(sf)["S1"]
    assert account["Name"] == "Acme Tools AB"
    [written] = sf.records("Order")
    assert written["AccountId"] == account["Id"] and written["EffectiveDate"] == "2026-01-02"


def test_a_replay_of_a_run_salesforce_refused_upserts_each_record_once(sf, tmp_path):
    config = config_for(sf, tmp_path, max_tries=2)
    sf.add_fault("status", count=1000, status=503, method="PATCH")
    batches = [("sf_supplier_accounts", [supplier("S1"), supplier("S2")]), ("sf_orders", [order("P1", "S1")])]
    failed = send(tmp_path, config, batches, check=False)
    assert failed.returncode != 0 and accounts(sf) == {}
    replay_the_failed_run(tmp_path, "target-salesforce", config, sf, failed=3)
    assert sorted(accounts(sf)) == ["S1", "S2"] and len(sf.records("Account")) == 2
    assert [o["IFS_Order_No__c"] for o in sf.records("Order")] == ["P1"]
    send(tmp_path, config, batches)
    assert len(sf.records("Account")) == 2 and len(sf.records("Order")) == 1
