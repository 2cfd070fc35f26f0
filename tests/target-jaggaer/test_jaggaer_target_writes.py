"""target-jaggaer against the JAGGAER stand-in over real HTTP: suppliers and purchase orders created once by their IFS
key (externalId), replaced only when a field differs, suppliers before the orders naming them, refusals audited with
JAGGAER's messages and redone, every request and answer in the audit trail."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from mlc_sandbox.jaggaer import JaggaerSandbox
from support.replay import replay_the_failed_run
from support.singer import record_message, run_target, schema_message

TEXT = {"type": ["string", "null"]}
SCHEMAS = {
    "jaggaer_suppliers": ({n: TEXT for n in ("externalId", "name", "country", "currency", "status", "taxId", "category")},
                          ["externalId"]),
    # As the stream maps produce them: lines as JSON text.
    "jaggaer_purchase_orders": ({n: TEXT for n in ("externalId", "supplierExternalId", "companyCode", "orderDate",
                                                   "currency", "buyer", "status", "lines")}, ["externalId"]),
}


def supplier(external_id: str, name: str | None = None, **extra) -> dict:
    return {"externalId": external_id, "name": name or f"Supplier {external_id}", "country": "SE", "currency": "SEK",
            "status": "ACTIVE", "taxId": f"SE55{external_id}", "category": "Components", **extra}


def po_line(number: int, quantity: str = "10", price: str = "12.50", **extra) -> dict:
    return {"lineNumber": number, "description": f"Item {number}", "quantity": quantity, "unitOfMeasure": "EA",
            "unitPrice": price, "glAccount": "4010", "costCenter": "CC1", "deliveryDate": "2026-03-20T00:00:00Z",
            **extra}


def order(external_id: str, supplier_id: str, lines: list[dict] | None = None, **extra) -> dict:
    return {"externalId": external_id, "supplierExternalId": supplier_id, "companyCode": "10",
            "orderDate": "2026-03-01T00:00:00Z", "currency": "SEK", "buyer": "ANNA", "status": "OPEN",
            "lines": json.dumps(lines if lines is not None else [po_line(1), po_line(2, "3", "7.05")]), **extra}


@pytest.fixture
def jg():
    with JaggaerSandbox(port=0, rate_limit=0) as stand_in:
        yield stand_in


def config_for(jg, tmp_path, **extra) -> dict:
    return {
        "base_url": jg.base_url, "client_id": jg.client_id, "client_secret": jg.client_secret,
        "streams": {"jaggaer_suppliers": {"object": "supplier"},
                    "jaggaer_purchase_orders": {"object": "purchase_order"}},
        "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
        **extra,
    }


def messages(batches: list[tuple[str, list[dict]]]) -> list[dict]:
    """Singer messages for (stream, records) groups in the order given, SCHEMA first for each stream, one STATE last."""
    out, seen = [], set()
    for stream, records in batches:
        if stream not in seen:
            properties, keys = SCHEMAS[stream]
            out.append(schema_message(stream, properties, keys))
            seen.add(stream)
        out += [record_message(stream, r) for r in records]
    out.append({"type": "STATE", "value": {"bookmarks": {"run": {"replication_key_value": "done"}}}})
    return out


def send(tmp_path, config, batches, **kwargs):
    return run_target(tmp_path, config, messages(batches), executable="target-jaggaer", **kwargs)


def writes(jg) -> list[tuple[str, str, int]]:
    return [(r["method"], r["path"], r["status"]) for r in jg.requests() if r["method"] in ("POST", "PUT")
            and r["path"].startswith("/api/")]


def last_run(config):
    return AuditTrail(config["audit_url"]).runs()[0]


def run_entries(config) -> list:
    trail = AuditTrail(config["audit_url"])
    return list(trail.entries(run_id=trail.runs()[0].run_id))


def test_suppliers_are_written_before_the_orders_naming_them_even_when_the_orders_come_first(jg, tmp_path):
    config = config_for(jg, tmp_path, batch_size=1)
    run = send(tmp_path, config, [
        ("jaggaer_purchase_orders", [order("P1", "S1"), order("P2", "S2")]),
        ("jaggaer_suppliers", [supplier("S1"), supplier("S2")]),
    ])
    assert "Holding 1 'jaggaer_purchase_orders' record(s)" in run.stderr
    assert run.states == [{"bookmarks": {"run": {"replication_key_value": "done"}}}]
    assert [(m, p) for m, p, _ in writes(jg)] == [("POST", "/api/v1/suppliers")] * 2 + [("POST", "/api/v1/purchase-orders")] * 2
    assert all(status == 201 for _, _, status in writes(jg))
    suppliers = {s["externalId"]: s for s in jg.suppliers()}
    orders = {o["externalId"]: o for o in jg.purchase_orders()}
    assert orders["P1"]["supplierId"] == suppliers["S1"]["id"] and orders["P2"]["supplierId"] == suppliers["S2"]["id"]
    assert orders["P1"]["orderDate"] == "2026-03-01"  # the IFS midnight timestamp sent as the date it is
    line_2 = orders["P1"]["lines"][1]
    # (the admin listing is read as plain JSON: compare the digits JAGGAER wrote)
    assert [str(line_2[f]) for f in ("quantity", "unitPrice", "amount")] == ["3", "7.05", "21.15"]
    assert line_2["deliveryDate"] == "2026-03-20"
    assert str(orders["P1"]["totalAmount"]) == "146.15"
    assert last_run(config).operations == {"insert": 4}


def test_the_audit_trail_holds_the_record_the_request_and_the_answer(jg, tmp_path):
    config = config_for(jg, tmp_path)
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S1")]), ("jaggaer_purchase_orders", [order("P1", "S1")])])
    entries = {e.stream: e for e in run_entries(config)}
    po = entries["jaggaer_purchase_orders"]
    stored = jg.purchase_orders()[0]
    assert po.operation == "insert" and po.outcome == "succeeded"
    assert po.key == {"externalId": "P1"}
    assert po.destination == f"purchase-orders/{stored['id']}"
    assert po.source == order("P1", "S1")  # the record as received, lines still as text
    request, response = po.payload["request"], po.payload["response"]
    assert request["method"] == "POST" and request["path"] == "/api/v1/purchase-orders"
    assert request["body"]["lines"][1] == {**po_line(2, "3", "7.05"), "deliveryDate": "2026-03-20"}
    assert request["body"]["orderDate"] == "2026-03-01"
    assert response["status"] == 201 and response["body"]["id"] == stored["id"]
    assert response["body"]["totalAmount"] == Decimal("146.15")
    assert entries["jaggaer_suppliers"].destination == f"suppliers/{jg.suppliers()[0]['id']}"


def test_a_rerun_writes_nothing_and_creates_no_duplicate(jg, tmp_path):
    config = config_for(jg, tmp_path)
    batches = [("jaggaer_suppliers", [supplier("S1"), supplier("S2")]),
               ("jaggaer_purchase_orders", [order("P1", "S1"), order("P2", "S2", [po_line(1, "1.000", "0.10")])])]
    send(tmp_path, config, batches)
    before = (jg.suppliers(), jg.purchase_orders())
    jg.clear_requests()

    send(tmp_path, config, batches)
    assert writes(jg) == []  # lookups only: nothing differs, so nothing is written (no lastModified moved)
    assert (jg.suppliers(), jg.purchase_orders()) == before
    assert last_run(config).operations == {"unchanged": 4}
    unchanged = next(e for e in run_entries(config) if e.key == {"externalId": "P2"})
    assert unchanged.payload["request"] == {"method": "GET", "path": "/api/v1/purchase-orders?externalId=P2",
                                            "body": None}
    assert unchanged.payload["response"]["body"]["items"][0]["externalId"] == "P2"


def test_a_changed_order_is_replaced_once_and_fields_set_in_jaggaer_are_kept(jg, tmp_path):
    config = config_for(jg, tmp_path)
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S1")]), ("jaggaer_purchase_orders", [order("P1", "S1")])])
    supplier_id = jg.suppliers()[0]["id"]
    jg.edit_supplier(supplier_id, {"paymentTerms": "NET30"})  # procurement's own field, not mapped from IFS
    order_id = jg.purchase_orders()[0]["id"]
    jg.clear_requests()

    changed = order("P1", "S1", [po_line(1), po_line(2, "3", "7.10")])
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S1", "Acme Components AB")]),
                            ("jaggaer_purchase_orders", [changed])])
    assert writes(jg) == [("PUT", f"/api/v1/suppliers/{supplier_id}", 200),
                          ("PUT", f"/api/v1/purchase-orders/{order_id}", 200)]
    stored_supplier = jg.suppliers()[0]
    assert stored_supplier["name"] == "Acme Components AB" and stored_supplier["paymentTerms"] == "NET30"
    stored = jg.purchase_orders()[0]
    assert str(stored["lines"][1]["unitPrice"]) == "7.1" and str(stored["totalAmount"]) == "146.3"
    assert len(jg.purchase_orders()) == 1
    entry = next(e for e in run_entries(config) if e.stream == "jaggaer_purchase_orders")
    assert entry.operation == "update" and entry.destination == f"purchase-orders/{order_id}"
    assert entry.payload["differences"] == ["lines[2].unitPrice"]
    assert entry.payload["request"]["method"] == "PUT" and entry.payload["response"]["status"] == 200
    assert last_run(config).operations == {"update": 2}


def test_an_order_for_an_unknown_supplier_fails_with_jaggaers_message_and_is_redone_when_the_supplier_arrives(jg, tmp_path):
    config = config_for(jg, tmp_path)
    run = send(tmp_path, config, [("jaggaer_purchase_orders", [order("P9", "S9"), order("P1", "S1")]),
                                  ("jaggaer_suppliers", [supplier("S1")])], expected_exit=EXIT_UNDELIVERED)
    assert run.states  # the refused record is in the audit trail, not lost; the STATE went out
    assert [o["externalId"] for o in jg.purchase_orders()] == ["P1"]
    trail = AuditTrail(config["audit_url"])
    [failed] = list(trail.failures())
    assert failed.key == {"externalId": "P9"} and failed.source == order("P9", "S9")
    assert failed.error == ("JAGGAER refused purchase_order externalId=P9 (POST /api/v1/purchase-orders, HTTP 422): "
                            "UNKNOWN_SUPPLIER supplierExternalId: No supplier with externalId 'S9'")
    assert failed.payload["response"]["status"] == 422
    assert failed.destination == "purchase-orders/?externalId=P9"
    assert last_run(config).status == "partial"  # the input was read to the end; one record was not delivered
    assert last_run(config).reason == f"1 record(s) not delivered (mlc-audit failures --run {last_run(config).run_id})"

    # The next run brings the supplier; the order waiting for it is redone after the run's input.
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S9")])])
    assert sorted(o["externalId"] for o in jg.purchase_orders()) == ["P1", "P9"]
    assert list(trail.failures()) == []
    written = [(e.key["externalId"], e.operation, e.payload["response"]["status"]) for e in run_entries(config)
               if e.replay_of is None]
    assert written == [("S9", "insert", 201), ("P9", "insert", 201)]
    assert last_run(config).status == "succeeded"


def test_a_refused_record_fails_alone_quoting_every_problem(jg, tmp_path):
    config = config_for(jg, tmp_path)
    bad = order("P2", "S1", [po_line(1), po_line(2, "0", glAccount="")])
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S1")]),
                            ("jaggaer_purchase_orders", [bad, order("P3", "S1"), order("P4", "S1", lines=None) | {"lines": "[{"}])],
         expected_exit=EXIT_UNDELIVERED)
    assert [o["externalId"] for o in jg.purchase_orders()] == ["P3"]
    failures = {f.key["externalId"]: f for f in AuditTrail(config["audit_url"]).failures()}
    assert sorted(failures) == ["P2", "P4"]
    assert "HTTP 422): VALIDATION_FAILED lines[1].quantity: " in failures["P2"].error
    assert "VALIDATION_FAILED lines[1].glAccount: " in failures["P2"].error
    assert "lines is text that is not JSON" in failures["P4"].error


def test_a_stream_map_sending_a_field_jaggaer_does_not_have_stops_the_run_naming_it(jg, tmp_path):
    config = config_for(jg, tmp_path)
    run = run_target(tmp_path, config, [schema_message("jaggaer_suppliers", {"externalId": TEXT, "nmae": TEXT}, ["externalId"]),
                                        record_message("jaggaer_suppliers", {"externalId": "S1", "nmae": "Acme"})],
                     executable="target-jaggaer", check=False)
    assert run.returncode == 1
    assert "nmae are not fields of a JAGGAER supplier" in run.stderr
    assert jg.suppliers() == []


def test_a_replay_of_a_run_jaggaer_refused_creates_each_object_once(jg, tmp_path):
    config = config_for(jg, tmp_path, max_tries=2)
    jg.add_fault("status", count=1000, status=500, method="POST")
    batches = [("jaggaer_suppliers", [supplier("S1"), supplier("S2")]), ("jaggaer_purchase_orders", [order("P1", "S1")])]
    failed = send(tmp_path, config, batches, check=False)
    # JAGGAER down stops the run at the suppliers: they are failed in the audit trail, the order was never read
    # (no STATE went out, so the tap sends it again).
    assert failed.returncode == 1 and failed.states == [] and jg.suppliers() == []
    replay_the_failed_run(tmp_path, "target-jaggaer", config, jg, failed=2)
    assert sorted(s["externalId"] for s in jg.suppliers()) == ["S1", "S2"]
    send(tmp_path, config, batches)  # the tap's rerun from the old bookmark
    assert len(jg.suppliers()) == 2 and [o["externalId"] for o in jg.purchase_orders()] == ["P1"]
