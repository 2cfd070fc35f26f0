from ifs_standin_client import Client, query

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")


def test_expand_lines_with_nested_select(client):
    orders = client.json(*PO, query(top=30, expand="PurchaseOrderLines($select=NetAmount,BuyQtyDue)"))["value"]
    lines = client.all_rows("PurchaseOrderHandling", "PurchaseOrderLineNopartSet")
    for order in orders:
        mine = [line for line in lines if line["OrderNo"] == order["OrderNo"]]
        got = order["PurchaseOrderLines"]
        assert [(line["LineNo"], line["NetAmount"]) for line in got] == [(m["LineNo"], m["NetAmount"]) for m in mine]
        assert set(got[0]) == {"@odata.etag", "luname", "keyref", "Objgrants", "OrderNo", "LineNo", "ReleaseNo",
                               "BuyQtyDue", "NetAmount"}
        assert len(got) == order["NoOfLines"]


def test_expand_on_every_parent_set(client):
    heads = client.json("ManSuppInvoiceHandling", "PostingProposalHeadSet", query(top=5, expand="PostingProposalLines"))
    assert all(h["PostingProposalLines"] for h in heads["value"])
    vouchers = client.json("VoucherHandling", "VoucherSet", query(top=5, expand="VoucherRows"))
    for voucher in vouchers["value"]:
        rows = voucher["VoucherRows"]
        assert rows and sum(r["Amount"] for r in rows) == 0  # vouchers balance exactly
    single = client.json("VoucherHandling", "VoucherRowSet", query(top=2, expand="VoucherRef($select=VoucherDate)"))
    assert all(r["VoucherRef"]["VoucherNo"] == r["VoucherNo"] for r in single["value"])


def test_expand_of_a_single_entity(client):
    order = client.json(*PO[:1], "PurchaseOrderSet('P1000002')", query(expand="PurchaseOrderLines"))
    assert order["OrderNo"] == "P1000002" and len(order["PurchaseOrderLines"]) == order["NoOfLines"]


def test_unknown_navigation_and_nested_option(client):
    for options in (query(expand="Nope"), query(expand="PurchaseOrderLines($filter=LineNo eq '1')"),
                    query(expand="PurchaseOrderLines($select=Nope)")):
        status, body = client.error(*PO, options)
        assert status == 400 and body["error"]["message"] == "Malformed Request."


def test_responses_over_5000_elements_fail_whole(fresh):
    ifs = fresh()
    client = Client(ifs)
    order = ifs.create("PurchaseOrderSet", {"VendorNo": "S10001"})
    ifs.create_many("PurchaseOrderLineNopartSet", [
        {"OrderNo": order["OrderNo"], "LineNo": str(n), "ReleaseNo": "1", "Description": f"line {n}",
         "BuyQtyDue": 1, "BuyUnitPrice": "1.5", "FbuyUnitPrice": "1.5", "NetAmount": "1.5",
         "WantedDeliveryDate": "2026-12-01"} for n in range(1, 5000)])
    path = f"PurchaseOrderSet('{order['OrderNo']}')"
    ok = client.json("PurchaseOrderHandling", path, query(expand="PurchaseOrderLines"))
    assert len(ok["PurchaseOrderLines"]) == 4999  # 1 + 4999 = 5000 elements: still allowed
    ifs.create("PurchaseOrderLineNopartSet", {"OrderNo": order["OrderNo"], "LineNo": "5000", "ReleaseNo": "1",
                                              "WantedDeliveryDate": "2026-12-01"})
    status, body = client.error("PurchaseOrderHandling", "PurchaseOrderSet",
                                query(filter=f"OrderNo ge '{order['OrderNo']}'", expand="PurchaseOrderLines"))
    assert status == 500
    assert body == {"error": {"code": "ODP_ELEMENT_LIMIT",
                              "message": "The response exceeds the maximum of 5000 elements."}}
    status, body = client.error("PurchaseOrderHandling", path, query(expand="PurchaseOrderLines"))
    assert status == 500 and body["error"]["code"] == "ODP_ELEMENT_LIMIT"
    assert client.json("PurchaseOrderHandling", "PurchaseOrderSet", query(top=5, expand="PurchaseOrderLines"))
