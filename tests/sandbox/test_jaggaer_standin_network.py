"""What flows back from the JAGGAER stand-in: invoices submitted by suppliers and goods receipts (both made through the
admin interface), read through the API by id and by modifiedSince paging, with exact amounts; their checks (unknown
order, supplier mismatch, duplicate invoice number, unknown order line) and read-only paths."""

from __future__ import annotations

from decimal import Decimal

import pytest

import jaggaer_standin_client as standin
from jaggaer_standin_client import exact, order_line

api, jaggaer = standin.api, standin.jaggaer  # fixtures


def invoice(number: str = "INV-A-1", supplier: str = "S1", order: str | None = "P1", **fields) -> dict:
    body = {"invoiceNumber": number, "supplierExternalId": supplier, "invoiceDate": "2026-03-10",
            "dueDate": "2026-04-09", "taxAmount": "6.25",
            "lines": [{"lineNumber": 1, "description": "Item 1", "quantity": "2", "unitPrice": "12.50",
                       "glAccount": "4010", "poLineNumber": 1}], **fields}
    if order is not None:
        body["purchaseOrderExternalId"] = order
    return body


@pytest.fixture
def ordered(api):
    supplier = api.supplier("S1")
    order = api.order("P1", "S1", [order_line(1, quantity="2", unit_price="12.50"), order_line(2)])
    return supplier, order


def test_submitted_invoice_is_listed_with_exact_amounts(api, ordered):
    supplier, order = ordered
    stored = api.jg.submit_invoice(invoice(lines=[
        {"lineNumber": 2, "description": "Freight", "quantity": "1", "unitPrice": Decimal("0.10"), "glAccount": "6100",
         "costCenter": "CC-1"},
        {"lineNumber": 1, "description": "Item 1", "quantity": "2", "unitPrice": "12.55", "glAccount": "4010",
         "poLineNumber": 1}]))
    assert stored["id"] == "INV-000001"
    listed = api.listing("invoices", modifiedSince="2000-01-01T00:00:00Z")
    assert listed["totalItems"] == 1
    item = listed["items"][0]
    assert item == exact(api.call("GET", f"invoices/{stored['id']}"))
    assert (item["invoiceNumber"], item["supplierId"], item["supplierExternalId"]) == ("INV-A-1", supplier["id"], "S1")
    assert (item["purchaseOrderId"], item["purchaseOrderExternalId"]) == (order["id"], "P1")
    assert (item["companyCode"], item["currency"], item["status"]) == ("10", "SEK", "SUBMITTED")  # from the order
    assert (item["invoiceDate"], item["dueDate"]) == ("2026-03-10", "2026-04-09")
    assert [line["lineNumber"] for line in item["lines"]] == [1, 2]
    assert [line["amount"] for line in item["lines"]] == [Decimal("25.10"), Decimal("0.10")]
    assert item["lines"][1]["poLineNumber"] is None and item["lines"][1]["costCenter"] == "CC-1"
    assert (item["netAmount"], item["taxAmount"], item["grossAmount"]) == (Decimal("25.20"), Decimal("6.25"),
                                                                          Decimal("31.45"))
    assert item["createdAt"] == item["lastModified"]
    assert api.jg.invoices() == api.call("GET", "invoices").json()["items"]


def test_invoice_without_order_needs_company_and_currency(api, ordered):
    with pytest.raises(RuntimeError) as missing:
        api.jg.submit_invoice(invoice("N-1", order=None))
    assert "companyCode" in str(missing.value) and "currency" in str(missing.value)
    free = api.jg.submit_invoice(invoice("N-1", order=None, companyCode="20", currency="EUR"))
    assert free["purchaseOrderId"] is None and free["companyCode"] == "20"
    assert api.call("GET", f"invoices/{free['id']}").status_code == 200


def test_invoice_checks(api, ordered):
    api.supplier("S2")
    for body, expected in ((invoice(order="P404"), "UNKNOWN_PURCHASE_ORDER"),
                           (invoice(supplier="S2"), "PURCHASE_ORDER_SUPPLIER_MISMATCH"),
                           (invoice(supplier="S404"), "UNKNOWN_SUPPLIER"),
                           (invoice(lines=[]), "lines"),
                           (invoice(lines=[{"lineNumber": 1, "quantity": "1", "unitPrice": "1"}]),
                            "lines[0].glAccount")):
        with pytest.raises(RuntimeError) as refused:
            api.jg.submit_invoice(body)
        assert "422" in str(refused.value) and expected in str(refused.value)
    api.jg.submit_invoice(invoice("DUP"))
    with pytest.raises(RuntimeError) as duplicate:
        api.jg.submit_invoice(invoice("DUP"))
    assert "409" in str(duplicate.value) and "DUPLICATE_INVOICE_NUMBER" in str(duplicate.value)
    api.jg.submit_invoice(invoice("DUP", supplier="S2", order=None, companyCode="10", currency="SEK"))
    assert [i["invoiceNumber"] for i in api.jg.invoices()] == ["DUP", "DUP"]


def test_invoice_may_disagree_with_its_order(api, ordered):
    disagreeing = api.jg.submit_invoice(invoice(lines=[
        {"lineNumber": 1, "description": "Too many", "quantity": "5", "unitPrice": "13", "glAccount": "4010",
         "poLineNumber": 9}]))
    assert disagreeing["lines"][0]["poLineNumber"] == 9 and disagreeing["netAmount"] == 65


def test_status_change_moves_last_modified(api, ordered):
    first = api.jg.submit_invoice(invoice("A"))
    second = api.jg.submit_invoice(invoice("B"))
    approved = api.jg.set_invoice_status(first["id"], "APPROVED")
    assert approved["lastModified"] > first["lastModified"] and approved["createdAt"] == first["createdAt"]
    assert approved["lastModified"] >= second["lastModified"]
    listed = api.listing("invoices")["items"]  # (lastModified, id): the approved one last unless stamped alike
    assert [(i["lastModified"], i["id"]) for i in listed] == sorted((i["lastModified"], i["id"]) for i in listed)
    assert [i["status"] for i in listed if i["id"] == first["id"]] == ["APPROVED"]
    assert api.listing("invoices", modifiedSince=approved["lastModified"])["items"][0]["status"] == "APPROVED"
    with pytest.raises(RuntimeError):
        api.jg.set_invoice_status(first["id"], "PAID")


def test_receipts_are_listed(api, ordered):
    _, order = ordered
    first = api.jg.receive("P1", [{"poLineNumber": 1, "quantity": "1.5"}], received_at="2026-03-05T08:00:00+01:00")
    second = api.jg.receive("P1", [{"poLineNumber": 2, "quantity": 7}, {"poLineNumber": 1, "quantity": "0.5"}])
    assert first["id"] == "REC-000001" and first["receivedAt"] == "2026-03-05T07:00:00.000Z"
    listed = api.listing("receipts", modifiedSince="2000-01-01T00:00:00Z", pageSize=1)
    assert listed["hasMore"] is True and listed["totalItems"] == 2
    item = listed["items"][0]
    assert item == exact(api.call("GET", f"receipts/{first['id']}"))
    assert set(item) == {"id", "purchaseOrderId", "purchaseOrderExternalId", "receivedAt", "lines", "lastModified"}
    assert (item["purchaseOrderId"], item["purchaseOrderExternalId"]) == (order["id"], "P1")
    assert item["lines"] == [{"poLineNumber": 1, "quantity": Decimal("1.5")}]
    assert api.listing("receipts", page=2, pageSize=1)["items"][0]["id"] == second["id"]
    assert [r["id"] for r in api.jg.receipts()] == [first["id"], second["id"]]


def test_receipt_checks(api, ordered):
    for po, lines, expected in (("P404", [{"poLineNumber": 1, "quantity": 1}], "UNKNOWN_PURCHASE_ORDER"),
                                ("P1", [{"poLineNumber": 3, "quantity": 1}], "UNKNOWN_PO_LINE"),
                                ("P1", [{"poLineNumber": 1, "quantity": 0}], "lines[0].quantity"),
                                ("P1", [], "lines")):
        with pytest.raises(RuntimeError) as refused:
            api.jg.receive(po, lines)
        assert "422" in str(refused.value) and expected in str(refused.value)
    assert api.jg.receipts() == []


def test_invoices_and_receipts_are_read_only(api, ordered):
    for path in ("invoices", "receipts"):
        assert api.call("POST", path, {}).status_code == 405
        assert api.call("PUT", f"{path}/X-1", {}).status_code == 405
        assert api.call("GET", f"{path}/X-1").status_code == 404
