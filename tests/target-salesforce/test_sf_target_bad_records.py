"""Records target-salesforce cannot write (bad_records) against the Salesforce stand-in over real HTTP: Orders with a
date that is none, OrderItems with a value of the wrong type, one deep in a reference, and a NaN price (Python's JSON
takes it from a tap, JSON has no such number). With quarantine Salesforce gets the others and never the bad ones, each
named by stream, key and field in the audit trail; with stop the run stops at the first before its batch is sent. A
schema that is not JSON Schema stops the run naming its stream."""

from __future__ import annotations

import json

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from support.singer import run_target, schema_message
from test_sf_target_upserts import SCHEMAS, collection_calls, config_for, order, sf, supplier  # noqa: F401 (sf)

STATE = {"type": "STATE", "value": {"bookmarks": {"run": {"replication_key_value": "done"}}}}


def item(line: int, quantity, price, order_no="P1") -> dict:
    return {"IFS_Line_Key__c": f"P1-{line}", "Quantity": quantity, "UnitPrice": price, "Description": f"Line {line}",
            "Order": {"IFS_Order_No__c": order_no}}


GOOD, WORDS, REFERENCE = item(1, 2, 10.5), item(2, "two", 10.5), item(3, 1, 4, order_no=17)
NAN = item(4, 1, float("nan"))
# Dates are parsed as singer-sdk parses them, for a record with a field its schema lacks too (singer-sdk warns).
NO_DAY = order("P2", "S1", EffectiveDate="2026-02-30")
UNMAPPED = {"Unmapped": "x", **order("P3", "S1", EffectiveDate="soon")}


def input_lines() -> str:
    """The input as a Python tap writes it with json.dumps: the NaN price as the bare NaN that JSON has not."""
    messages = []
    for stream, records in (("sf_supplier_accounts", [supplier("S1")]),
                            ("sf_orders", [order("P1", "S1"), NO_DAY, UNMAPPED]),
                            ("sf_order_items", [GOOD, WORDS, REFERENCE, NAN])):
        properties, keys = SCHEMAS[stream]
        messages.append(schema_message(stream, properties, keys))
        messages += [{"type": "RECORD", "stream": stream, "record": r} for r in records]
    return "".join(json.dumps(m) + "\n" for m in [*messages, STATE])


def item_calls(sf) -> list[dict]:
    return [call for call in collection_calls(sf) if "/OrderItem/" in call["path"]]


def test_quarantine_upserts_the_others_and_names_each_bad_record_by_stream_key_and_field(sf, tmp_path):
    config = config_for(sf, tmp_path, bad_records="quarantine")

    run = run_target(tmp_path, config, input_lines(), executable="target-salesforce", expected_exit=EXIT_UNDELIVERED)

    assert [o["IFS_Order_No__c"] for o in sf.records("Order")] == ["P1"]
    assert [i["IFS_Line_Key__c"] for i in sf.records("OrderItem")] == ["P1-1"]
    assert len(item_calls(sf)) == 1
    assert json.loads(run.stdout.splitlines()[-1]) == STATE["value"]
    failures = list(AuditTrail(config["audit_url"]).failures())
    assert [(f.stream, f.key, f.error) for f in failures] == [
        ("sf_orders", {"IFS_Order_No__c": "P2"}, "bad record: record 2 of stream 'sf_orders' (key "
         "IFS_Order_No__c='P2'): '2026-02-30' is not a date or timestamp at EffectiveDate"),
        ("sf_orders", {"IFS_Order_No__c": "P3"}, "bad record: record 3 of stream 'sf_orders' (key "
         "IFS_Order_No__c='P3'): 'soon' is not a date or timestamp at EffectiveDate"),
        ("sf_order_items", {"IFS_Line_Key__c": "P1-2"}, "bad record: record 2 of stream 'sf_order_items' (key "
         "IFS_Line_Key__c='P1-2'): \"two\" is not of types \"null\", \"number\" at Quantity"),
        ("sf_order_items", {"IFS_Line_Key__c": "P1-3"}, "bad record: record 3 of stream 'sf_order_items' (key "
         "IFS_Line_Key__c='P1-3'): 17 is not of types \"null\", \"string\" at Order.IFS_Order_No__c"),
        ("sf_order_items", {"IFS_Line_Key__c": "P1-4"}, "bad record: record 4 of stream 'sf_order_items' (key "
         "IFS_Line_Key__c='P1-4'): nan is not a number JSON can hold at UnitPrice"),
    ]
    # Set aside before sending ("bad record: ", not Salesforce's refusal), each as received, for a replay.
    assert [f.source for f in failures[:4]] == [NO_DAY, UNMAPPED, WORDS, REFERENCE]
    assert AuditTrail(config["audit_url"]).runs()[0].outcomes == {"succeeded": 3, "failed": 5}
    assert "No schema for record field 'Unmapped'" in run.stderr


def test_stop_stops_at_the_first_bad_record_naming_it_before_its_batch_is_sent(sf, tmp_path):
    config = config_for(sf, tmp_path)  # bad_records: stop, the default

    run = run_target(tmp_path, config, input_lines(), executable="target-salesforce", check=False)

    assert run.returncode == 1
    assert ("record 2 of stream 'sf_orders' (key IFS_Order_No__c='P2'): '2026-02-30' is not a date or timestamp at "
            "EffectiveDate") in run.stderr
    assert [call for call in collection_calls(sf) if "/Account/" not in call["path"]] == []


def test_a_schema_that_is_not_json_schema_stops_the_run_naming_its_stream(sf, tmp_path):
    config = config_for(sf, tmp_path)
    properties, keys = SCHEMAS["sf_supplier_accounts"]
    messages = [schema_message("sf_supplier_accounts", {**properties, "Name": {"type": "text"}}, keys),
                {"type": "RECORD", "stream": "sf_supplier_accounts", "record": supplier("S1")}, STATE]

    run = run_target(tmp_path, config, messages, executable="target-salesforce", check=False)

    assert run.returncode == 1
    assert "the schema of stream 'sf_supplier_accounts' is not valid JSON Schema" in run.stderr
    assert "at properties.Name.type" in run.stderr
    assert collection_calls(sf) == []
