"""tap-jaggaer against the JAGGAER stand-in over real HTTP: invoices and their lines read incrementally on lastModified
(a second run only what is new), paged, exact decimals, each invoice checked against its purchase order, receipts, and
suppliers edited in JAGGAER."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from ml_connector_core.jaggaer import client_from_config
from mlc_sandbox.jaggaer import JaggaerSandbox
from support.singer import assert_a_state_every, run_tap


@pytest.fixture
def jg():
    with JaggaerSandbox(port=0, rate_limit=0) as stand_in:
        yield stand_in


def query(request: dict) -> dict:
    return dict(parse_qsl(request["query"]))


def config_for(jg, **extra) -> dict:
    return {"base_url": jg.base_url, "client_id": jg.client_id, "client_secret": jg.client_secret,
            "start_date": "2000-01-01T00:00:00Z", **extra}


def tap(tmp_path, jg, state=None, streams=None, **extra):
    return run_tap(tmp_path, config_for(jg, **extra), state=state, streams=streams, executable="tap-jaggaer")


@pytest.fixture
def procurement(jg):
    """What IFS wrote into JAGGAER through target-jaggaer: two suppliers and an order from each."""
    api = client_from_config(config_for(jg))
    for supplier in ("S1", "S2"):
        api.request("POST", "suppliers", json={"externalId": supplier, "name": f"Supplier {supplier}", "country": "SE"})
    for order, supplier in (("P1", "S1"), ("P2", "S2")):
        api.request("POST", "purchase-orders", json={
            "externalId": order, "supplierExternalId": supplier, "companyCode": "10", "orderDate": "2026-03-01",
            "currency": "SEK", "lines": [
                {"lineNumber": 1, "description": "Bolts", "quantity": "10", "unitOfMeasure": "EA", "unitPrice": "12.50",
                 "glAccount": "4010"},
                {"lineNumber": 2, "description": "Nuts", "quantity": "4", "unitOfMeasure": "BOX", "unitPrice": "0.10",
                 "glAccount": "4010"}]})
    return api


def invoice(jg, number: str, order: str | None = "P1", supplier: str = "S1", lines=None, **extra) -> dict:
    """Lines are (lineNumber, quantity, unitPrice[, poLineNumber]); the order line is the line's number by default."""
    lines = lines if lines is not None else [(1, "10", "12.50"), (2, "4", "0.10")]
    body = {"invoiceNumber": number, "supplierExternalId": supplier, "invoiceDate": "2026-03-05",
            "companyCode": "10", "currency": "SEK", "taxAmount": "31.35",
            "lines": [{"lineNumber": n, "description": f"Line {n}", "quantity": q, "unitPrice": p, "glAccount": "4010",
                       "costCenter": "CC1", **({"poLineNumber": po_line} if po_line else {})}
                      for n, q, p, po_line in (line if len(line) == 4 else (*line, n if order else None)
                                               for line in lines for n in [line[0]])], **extra}
    if order:
        body["purchaseOrderExternalId"] = order
    return jg.submit_invoice(body)


def test_invoices_come_with_their_lines_after_each_invoice_exact_and_a_second_run_reads_only_new_ones(jg, procurement, tmp_path):
    first_ids = [invoice(jg, f"A-{n}")["id"] for n in (1, 2, 3)]
    run = tap(tmp_path, jg, streams=["invoices", "invoice_lines"])
    order = [(m["stream"], m["record"].get("id") or m["record"]["invoiceId"]) for m in run.messages if m["type"] == "RECORD"]
    expected = []
    for invoice_id in first_ids:
        expected += [("invoices", invoice_id), ("invoice_lines", invoice_id), ("invoice_lines", invoice_id)]
    assert order == expected
    first = run.records("invoices")[0]
    assert first["netAmount"] == Decimal("125.40") and first["grossAmount"] == Decimal("156.75")
    assert '"netAmount":125.40' in run.stdout.replace(" ", "")  # written digit for digit
    line = run.records("invoice_lines")[1]
    assert line == {"invoiceId": first_ids[0], "invoiceNumber": "A-1", "companyCode": "10", "supplierExternalId": "S1",
                    "lineNumber": 2, "description": "Line 2", "quantity": 4, "unitPrice": Decimal("0.10"),
                    "amount": Decimal("0.40"), "glAccount": "4010", "costCenter": "CC1", "poLineNumber": 2}
    assert run.schema("invoices")["schema"]["properties"]["netAmount"]["x-sql-datatype"] == "decimal"
    assert run.schema("invoice_lines")["key_properties"] == ["invoiceId", "lineNumber"]
    bookmark = run.bookmark("invoices")
    assert bookmark == run.records("invoices")[-1]["lastModified"] and bookmark.endswith("Z") and len(bookmark) == 24

    newer = invoice(jg, "A-4")
    second = tap(tmp_path, jg, state=run.final_state, streams=["invoices", "invoice_lines"])
    assert [r["id"] for r in second.records("invoices")] == [newer["id"]]
    assert [r["invoiceId"] for r in second.records("invoice_lines")] == [newer["id"]] * 2
    assert second.bookmark("invoices") == newer["lastModified"]
    # modifiedSince reached back a look-back before the bookmark; what it found again was skipped, not re-emitted.
    listing = [r for r in jg.requests() if r["path"] == "/api/v1/invoices"][-1]
    assert query(listing)["modifiedSince"] < bookmark

    third = tap(tmp_path, jg, state=second.final_state, streams=["invoices", "invoice_lines"])
    assert third.records("invoices") == [] and third.final_state == second.final_state


def test_a_bookmark_moved_back_by_hand_reads_again_from_there_and_never_moves_back_itself(jg, procurement, tmp_path):
    old = [invoice(jg, f"A-{n}") for n in (1, 2)]
    run = tap(tmp_path, jg, streams=["invoices"])
    state = run.final_state
    state["bookmarks"]["invoices"]["replication_key_value"] = "2000-01-01T00:00:00.000Z"
    again = tap(tmp_path, jg, state=state, streams=["invoices"])
    assert [r["id"] for r in again.records("invoices")] == [i["id"] for i in old]
    assert again.bookmark("invoices") == old[-1]["lastModified"]

    ahead = {"bookmarks": {"invoices": {"replication_key": "lastModified", "replication_key_value": "2999-01-01T00:00:00.000Z"}}}
    later = tap(tmp_path, jg, state=ahead, streams=["invoices"])
    assert later.records("invoices") == [] and later.bookmark("invoices") == "2999-01-01T00:00:00.000Z"


def test_paging_reads_every_page(jg, procurement, tmp_path):
    ids = [invoice(jg, f"A-{n}", lines=[(1, "1", "12.50")])["id"] for n in range(1, 8)]
    run = tap(tmp_path, jg, streams=["invoices"], page_size=3)
    assert [r["id"] for r in run.records("invoices")] == ids
    pages = [query(r)["page"] for r in jg.requests() if r["path"] == "/api/v1/invoices"]
    assert pages == ["1", "2", "3"]
    assert {query(r)["pageSize"] for r in jg.requests() if r["path"] == "/api/v1/invoices"} == {"3"}


def test_an_invoice_that_agrees_with_its_order_is_not_flagged(jg, procurement, tmp_path):
    invoice(jg, "A-1")  # 10 × 12.50 + 4 × 0.10 = 125.40, the order's value
    invoice(jg, "A-2", lines=[(1, "10", "12.50"), (2, "4", "0.10"), (3, "1", "0.01", None)])
    invoice(jg, "A-3", order=None, lines=[(1, "1", "5")])
    records = {r["invoiceNumber"]: r for r in tap(tmp_path, jg, streams=["invoices"]).records("invoices")}
    assert (records["A-1"]["po_matched"], records["A-1"]["po_discrepancies"]) == (True, "")
    # one cent over, within the default tolerance of 0.01 (line 3 names no order line, so only the amount counts)
    assert (records["A-2"]["po_matched"], records["A-2"]["po_discrepancies"]) == (True, "")
    assert (records["A-3"]["po_matched"], records["A-3"]["po_discrepancies"]) == (None, None)


def test_an_invoice_that_differs_from_its_order_is_flagged_saying_how(jg, procurement, tmp_path):
    invoice(jg, "A-1", lines=[(1, "12", "12.50"), (2, "4", "0.10")])  # quantity above the order's, amount too
    invoice(jg, "A-2", lines=[(1, "10", "12.55"), (2, "4", "0.10")])  # price
    invoice(jg, "A-3", lines=[(1, "10", "12.50"), (2, "4", "0.10"), (3, "1", "0.02", None)])  # amount, over the tolerance
    invoice(jg, "A-4", order="P2", supplier="S2")
    invoice(jg, "A-5", lines=[(1, "10", "12.50"), (2, "4", "0.10"), (3, "1", "0.02", 3)])  # an order line P1 lacks
    # The order of A-4 is moved to the other supplier after the invoice came in.
    order_p2 = procurement.find_by_external_id("purchase-orders", "P2")
    procurement.request("PUT", f"purchase-orders/{order_p2['id']}", json={
        **{k: order_p2[k] for k in ("externalId", "companyCode", "orderDate", "currency", "lines")},
        "supplierExternalId": "S1"})
    records = {r["invoiceNumber"]: r for r in tap(tmp_path, jg, streams=["invoices"]).records("invoices")}
    assert records["A-1"]["po_matched"] is False
    assert records["A-1"]["po_discrepancies"] == (
        "net amount 150.40 differs from the order lines' value 125.40 by +25.00 (tolerance 0.01); "
        "line 1: quantity 12 above the 10 ordered on order line 1")
    assert records["A-2"]["po_discrepancies"] == (
        "net amount 125.90 differs from the order lines' value 125.40 by +0.50 (tolerance 0.01); "
        "line 1: unit price 12.55 differs from the 12.50 of order line 1")
    assert records["A-3"]["po_discrepancies"] == ("net amount 125.42 differs from the order lines' value 125.40 by "
                                                  "+0.02 (tolerance 0.01)")
    assert records["A-4"]["po_matched"] is False
    assert records["A-4"]["po_discrepancies"] == "supplier S2 differs from the order's S1"
    assert records["A-5"]["po_discrepancies"].endswith("; line 3 refers to order line 3, which the order does not have")
    # A wider tolerance lets the two cents through.
    wider = {r["invoiceNumber"]: r for r in tap(tmp_path, jg, streams=["invoices"], amount_tolerance=0.05).records("invoices")}
    assert (wider["A-3"]["po_matched"], wider["A-3"]["po_discrepancies"]) == (True, "")
    # Each order was fetched once per run, however many invoices name it.
    order_lookups = [r for r in jg.requests() if r["path"] == "/api/v1/purchase-orders" and r["method"] == "GET"]
    assert len(order_lookups) == 2 * 2 + 1  # two runs × two orders, and the lookup before the PUT above


def test_supplier_edits_in_jaggaer_and_receipts_show_up(jg, procurement, tmp_path):
    run = tap(tmp_path, jg, streams=["suppliers", "receipts"])
    assert [s["externalId"] for s in run.records("suppliers")] == ["S1", "S2"]
    supplier_id = run.records("suppliers")[1]["id"]
    jg.edit_supplier(supplier_id, {"status": "BLOCKED", "paymentTerms": "NET60"})
    receipt = jg.receive("P1", [{"poLineNumber": 1, "quantity": "2.5"}])

    second = tap(tmp_path, jg, state=run.final_state, streams=["suppliers", "receipts"])
    [edited] = second.records("suppliers")
    assert (edited["externalId"], edited["status"], edited["paymentTerms"]) == ("S2", "BLOCKED", "NET60")
    assert second.bookmark("suppliers") == edited["lastModified"]
    [received] = second.records("receipts")
    assert received["id"] == receipt["id"] and received["purchaseOrderExternalId"] == "P1"
    assert received["lines"] == [{"poLineNumber": 1, "quantity": Decimal("2.5")}]


def test_throttling_and_a_token_refused_mid_run_are_survived(jg, procurement, tmp_path):
    ids = [invoice(jg, f"A-{n}", lines=[(1, "1", "12.50")])["id"] for n in range(1, 5)]
    jg.clear_requests()
    jg.add_fault("rate_limit", count=1, path="/api/v1/invoices", retry_after=1)
    jg.add_fault("status", count=1, status=401, path="/api/v1/purchase-orders")
    run = tap(tmp_path, jg, streams=["invoices"], page_size=2)
    assert [r["id"] for r in run.records("invoices")] == ids
    statuses = [r["status"] for r in jg.requests() if r["path"].startswith("/api/v1/invoices")]
    assert statuses == [429, 200, 200]
    assert len([r for r in jg.requests() if r["path"] == "/oauth/token"]) == 2


def test_a_state_every_state_interval_records_with_the_bookmark_of_the_record_before_it(jg, procurement, tmp_path):
    for n in range(1, 8):
        invoice(jg, f"A-{n}", lines=[(1, "1", "12.50")])
    run = tap(tmp_path, jg, streams=["invoices", "invoice_lines"], state_interval_records=2)
    assert len(run.records("invoices")) == 7
    assert assert_a_state_every(run, "invoices", 2, "lastModified") == 3
