"""Purchase orders in the JAGGAER stand-in over real HTTP: lines with exact decimals and totals, supplier by
externalId or id, unknown (422 UNKNOWN_SUPPLIER) and blocked (422 SUPPLIER_BLOCKED) suppliers, validation with field
paths, 409 on a taken externalId, full replace by PUT, lookups."""

from __future__ import annotations

from decimal import Decimal

import jaggaer_standin_client as standin
from jaggaer_standin_client import errors_of, exact, order_body, order_line

api, jaggaer = standin.api, standin.jaggaer  # fixtures


def test_order_with_lines_keeps_amounts_exact(api):
    supplier = api.supplier("S1")
    lines = [order_line(2, quantity="0.1", unit_price="0.2", costCenter="CC-7", deliveryDate="2026-04-01"),
             order_line(1, quantity=3, unit_price="12.50", unitOfMeasure="KG"),
             order_line(3, quantity="1234567.891", unit_price="0.0001", unitOfMeasure="BOX")]
    created = api.order("PO-IFS-1", "S1", lines, buyer="Alice")
    assert created["id"] == "PO-000001"
    assert created["supplierId"] == supplier["id"] and created["supplierExternalId"] == "S1"
    assert created["status"] == "OPEN" and created["buyer"] == "Alice"
    assert [line["lineNumber"] for line in created["lines"]] == [1, 2, 3]
    amounts = [line["amount"] for line in created["lines"]]
    assert amounts == [Decimal("37.50"), Decimal("0.02"), Decimal("123.4567891")]
    assert created["totalAmount"] == Decimal("160.9767891")
    assert created["lines"][1]["quantity"] == Decimal("0.1") and created["lines"][1]["costCenter"] == "CC-7"
    assert created["lines"][1]["deliveryDate"] == "2026-04-01" and created["lines"][0]["deliveryDate"] is None
    assert '"unitPrice":12.50' in api.call("GET", "purchase-orders/PO-000001").text  # the digits as sent
    assert exact(api.call("GET", "purchase-orders/PO-000001")) == created


def test_json_number_amounts_are_exact_too(api):
    api.supplier("S1")
    body = ('{"externalId": "P-N", "supplierExternalId": "S1", "companyCode": "10", "orderDate": "2026-03-01", '
            '"currency": "SEK", "lines": [{"lineNumber": 1, "description": "d", "quantity": 3, "unitOfMeasure": "EA", '
            '"unitPrice": 0.1, "glAccount": "4010"}, {"lineNumber": 2, "description": "d", "quantity": 1E+2, '
            '"unitOfMeasure": "EA", "unitPrice": 0.2, "glAccount": "4010"}]}')
    created = exact(api.call("POST", "purchase-orders", body))
    assert created["lines"][0]["amount"] == Decimal("0.3") and created["lines"][1]["quantity"] == 100
    assert created["totalAmount"] == Decimal("20.3")


def test_supplier_by_id_and_mismatch(api):
    first, second = api.supplier("S1"), api.supplier("S2")
    by_id = api.created("purchase-orders", order_body("P1", supplier=None) | {"supplierId": second["id"]})
    assert by_id["supplierExternalId"] == "S2"
    mismatch = api.call("POST", "purchase-orders", order_body("P2", "S1") | {"supplierId": second["id"]})
    assert mismatch.status_code == 422 and errors_of(mismatch) == [("VALIDATION_FAILED", "supplierId")]
    neither = api.call("POST", "purchase-orders", order_body("P3", supplier=None))
    assert neither.status_code == 422 and errors_of(neither) == [("VALIDATION_FAILED", "supplierExternalId")]
    assert first["id"] != second["id"]


def test_unknown_supplier_is_422(api):
    answer = api.call("POST", "purchase-orders", order_body("P1", "S99"))
    assert answer.status_code == 422
    assert answer.json() == {"errors": [{"code": "UNKNOWN_SUPPLIER", "field": "supplierExternalId",
                                         "message": "No supplier with externalId 'S99'"}]}
    by_id = api.call("POST", "purchase-orders", order_body("P1", supplier=None) | {"supplierId": "SUP-000404"})
    assert errors_of(by_id) == [("UNKNOWN_SUPPLIER", "supplierId")]
    assert api.jg.purchase_orders() == []


def test_blocked_supplier_is_422_but_its_orders_can_still_be_closed(api):
    supplier = api.supplier("S1")
    order = api.order("P1", "S1")
    api.jg.edit_supplier(supplier["id"], {"status": "BLOCKED"})
    refused = api.call("POST", "purchase-orders", order_body("P2", "S1"))
    assert refused.status_code == 422 and errors_of(refused) == [("SUPPLIER_BLOCKED", "supplierExternalId")]
    changed = api.call("PUT", f"purchase-orders/{order['id']}", order_body("P1", "S1", buyer="Bob"))
    assert changed.status_code == 422 and errors_of(changed) == [("SUPPLIER_BLOCKED", "supplierExternalId")]
    cancelled = api.call("PUT", f"purchase-orders/{order['id']}", order_body("P1", "S1", status="CANCELLED"))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    api.supplier("S2", status="INACTIVE")
    assert api.order("P3", "S2")["supplierExternalId"] == "S2"


def test_validation_errors_carry_field_paths(api):
    api.supplier("S1")
    lines = [order_line(1), order_line(2, quantity="0"), order_line(2, glAccount=None, unitOfMeasure="PCS"),
             order_line(4, unit_price="-1", deliveryDate="2026-02-30"), "not a line",
             order_line(0, quantity="1.5e3", unit_price=True)]
    answer = api.call("POST", "purchase-orders", order_body("P1", "S1", lines, orderDate="03/01/2026", currency="SEKR",
                                                            status="DRAFT", companyCode=None))
    assert answer.status_code == 422
    assert sorted(errors_of(answer)) == sorted([
        ("VALIDATION_FAILED", "companyCode"), ("VALIDATION_FAILED", "orderDate"), ("VALIDATION_FAILED", "currency"),
        ("VALIDATION_FAILED", "status"), ("VALIDATION_FAILED", "lines[1].quantity"),
        ("VALIDATION_FAILED", "lines[2].glAccount"), ("VALIDATION_FAILED", "lines[2].unitOfMeasure"),
        ("VALIDATION_FAILED", "lines[2].lineNumber"), ("VALIDATION_FAILED", "lines[3].unitPrice"),
        ("VALIDATION_FAILED", "lines[3].deliveryDate"), ("VALIDATION_FAILED", "lines[4]"),
        ("VALIDATION_FAILED", "lines[5].lineNumber"), ("VALIDATION_FAILED", "lines[5].quantity"),
        ("VALIDATION_FAILED", "lines[5].unitPrice")])
    messages = {e["field"]: e["message"] for e in answer.json()["errors"]}
    assert "required" in messages["lines[2].glAccount"] and "appears more than once" in messages["lines[2].lineNumber"]
    assert "EA" in messages["lines[2].unitOfMeasure"] and "greater than 0" in messages["lines[1].quantity"]
    assert api.jg.purchase_orders() == []


def test_taken_external_id_is_409(api):
    api.supplier("S1")
    api.order("P1", "S1")
    again = api.call("POST", "purchase-orders", order_body("P1", "S1"))
    assert again.status_code == 409 and errors_of(again) == [("DUPLICATE_EXTERNAL_ID", "externalId")]
    assert len(api.jg.purchase_orders()) == 1


def test_put_replaces_the_order_and_its_lines(api):
    api.supplier("S1")
    api.supplier("S2")
    created = api.order("P1", "S1", [order_line(1), order_line(2)])
    answer = api.call("PUT", f"purchase-orders/{created['id']}",
                      order_body("P1", "S2", [order_line(3, quantity="5", unit_price="1.10")], status="CLOSED"))
    assert answer.status_code == 200, answer.text
    replaced = exact(answer)
    assert replaced["id"] == created["id"] and replaced["createdAt"] == created["createdAt"]
    assert replaced["supplierExternalId"] == "S2" and replaced["status"] == "CLOSED"
    assert [line["lineNumber"] for line in replaced["lines"]] == [3] and replaced["totalAmount"] == Decimal("5.50")
    assert replaced["lastModified"] > created["lastModified"]
    assert api.jg.purchase_orders() == [answer.json()]
    assert api.listing("purchase-orders", externalId="P1")["items"] == [replaced]
    missing = api.call("PUT", "purchase-orders/PO-000099", order_body("P9", "S1"))
    assert missing.status_code == 404


def test_order_without_lines_totals_zero(api):
    api.supplier("S1")
    created = api.created("purchase-orders", {k: v for k, v in order_body("P1", "S1").items() if k != "lines"})
    assert created["lines"] == [] and created["totalAmount"] == 0
