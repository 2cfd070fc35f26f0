from datetime import datetime, timezone
from decimal import Decimal

import pytest

from ifs_standin_client import encode, query

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")


@pytest.fixture(scope="module")
def orders(client):
    return client.all_rows(*PO)


def keys_matching(client, expression, extra=""):
    rows = client.all_rows(*PO, query(filter=expression) + extra)
    return [r["OrderNo"] for r in rows]


def expected(orders, predicate):
    return [o["OrderNo"] for o in orders if predicate(o)]


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


CASES = [
    ("VendorNo eq 'S10003'", lambda o: o["VendorNo"] == "S10003"),
    ("VendorNo ne 'S10003'", lambda o: o["VendorNo"] != "S10003"),
    ("RevisionNo gt 1", lambda o: o["RevisionNo"] > 1),
    ("NoOfLines ge 4", lambda o: o["NoOfLines"] >= 4),
    ("NoOfLines lt 2", lambda o: o["NoOfLines"] < 2),
    ("NoOfLines le 2 and Company eq '10'", lambda o: o["NoOfLines"] <= 2 and o["Company"] == "10"),
    ("Company eq '20' or Company eq '30'", lambda o: o["Company"] in ("20", "30")),
    ("not (Company eq '10')", lambda o: o["Company"] != "10"),
    ("(Company eq '10' or Company eq '20') and B2bOrder eq true", lambda o: o["Company"] != "30" and o["B2bOrder"]),
    ("B2bOrder", lambda o: o["B2bOrder"]),
    ("Printed eq false", lambda o: not o["Printed"]),
    ("CustomerPoNo eq null", lambda o: o["CustomerPoNo"] is None),
    ("CustomerPoNo ne null", lambda o: o["CustomerPoNo"] is not None),
    ("contains(NoteText,'Brien')", lambda o: "Brien" in (o["NoteText"] or "")),
    ("contains(NoteText,'brien')", lambda o: "brien" in (o["NoteText"] or "")),  # case-sensitive, as IFS
    ("startswith(BuyerCode,'ER')", lambda o: o["BuyerCode"].startswith("ER")),
    ("endswith(VendorNo,'7')", lambda o: o["VendorNo"].endswith("7")),
    ("tolower(BuyerCode) eq 'hanna'", lambda o: o["BuyerCode"].lower() == "hanna"),
    ("contains(toupper(NoteText),'URGENT')", lambda o: "URGENT" in (o["NoteText"] or "").upper()),
    ("NoteText eq 'O''Brien''s order'", lambda o: o["NoteText"] == "O'Brien's order"),
    ("OrderDate ge 2026-01-01", lambda o: o["OrderDate"] >= "2026-01-01"),
    ("OrderDate lt 2025-06-15 and OrderDate gt 2025-01-01",
     lambda o: "2025-01-01" < o["OrderDate"] < "2025-06-15"),
    ("ChangedDate ge 2026-03-01T00:00:00Z", lambda o: ts(o["ChangedDate"]) >= ts("2026-03-01T00:00:00Z")),
    ("ChangedDate lt 2026-03-01T05:00:00+05:00",
     lambda o: ts(o["ChangedDate"]) < datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)),
    ("Objstate eq IfsApp.PurchaseOrderHandling.PurchaseOrderState'Released'", lambda o: o["Objstate"] == "Released"),
    ("Objstate ne IfsApp.PurchaseOrderHandling.PurchaseOrderState'Closed' and Objstate ne "
     "IfsApp.PurchaseOrderHandling.PurchaseOrderState'Cancelled'",
     lambda o: o["Objstate"] not in ("Closed", "Cancelled")),
    ("Objstate eq 'Planned'", lambda o: o["Objstate"] == "Planned"),
    ("TotalNetAmount gt 5000000.5", lambda o: o["TotalNetAmount"] > Decimal("5000000.5")),
    ("TotalNetAmount le 100000", lambda o: o["TotalNetAmount"] <= 100000),
    ("Company in ('10','30')", lambda o: o["Company"] in ("10", "30")),
]


@pytest.mark.parametrize("expression,predicate", CASES, ids=[c[0][:60] for c in CASES])
def test_filter_matches_python_evaluation(client, orders, expression, predicate):
    want = expected(orders, predicate)
    assert keys_matching(client, expression) == want
    if "Brien" not in expression and "null" not in expression:
        assert 0 < len(want) < len(orders) or expression.startswith("contains(NoteText,'brien')")


def test_filter_keeps_order_and_paging(client, orders):
    got = keys_matching(client, "Company eq '10'", "&$orderby=ChangedDate%20desc,OrderNo&$top=1000")
    want = sorted((o for o in orders if o["Company"] == "10"), key=lambda o: o["OrderNo"])
    want = [o["OrderNo"] for o in sorted(want, key=lambda o: ts(o["ChangedDate"]), reverse=True)]
    assert got == want


MALFORMED = [
    ("Foo eq 1", "Foo"),
    ("VendorNo eq", "Syntax"),
    ("VendorNo eq 'unterminated", ""),
    ("VendorNo eq 5", "VendorNo"),
    ("OrderDate ge 2026-01-01T00:00:00Z", "OrderDate"),
    ("Objstate eq IfsApp.PurchaseOrderHandling.PurchaseOrderLineState'Released'", "PurchaseOrderLineState"),
    ("Objstate eq IfsApp.PurchaseOrderHandling.PurchaseOrderState'Flying'", "Flying"),
    ("Objstate eq IfsApp.Other.PurchaseOrderState'Released'", "IfsApp.Other"),
    ("Objstate eq 'Flying'", "Flying"),
    ("NoOfLines add 1 gt 2", "Arithmetic"),
    ("length(VendorNo) gt 1 and substring(VendorNo,1) eq 'x'", "substring"),
]


@pytest.mark.parametrize("expression,named", MALFORMED, ids=[m[0][:50] for m in MALFORMED])
def test_bad_filters_are_malformed_requests(client, expression, named):
    status, body = client.error(*PO, query(filter=expression))
    assert status == 400, body
    assert body["error"]["message"] == "Malformed Request."
    assert named in body["error"]["details"][0]["message"]


def test_unknown_property_in_select_and_orderby(client):
    for options in (query(select="OrderNo,Nope"), query(orderby="Nope desc")):
        status, body = client.error(*PO, options)
        assert status == 400 and "'Nope'" in body["error"]["details"][0]["message"]


def test_a_literal_plus_in_the_query_string_is_rejected(client):
    status, body = client.error(*PO, "$filter=VendorNo+eq+'S10003'")
    assert status == 400 and "+" in body["error"]["details"][0]["message"]
    status, _ = client.error(*PO, "$filter=ChangedDate%20ge%202026-01-01T00:00:00+01:00")
    assert status == 400
    response = client.get(*PO, "$filter=" + encode("ChangedDate ge 2026-01-01T00:00:00+01:00"))
    assert response.status_code == 200


def test_percent_encoded_option_names_are_understood(client):
    page = client.json(*PO, "%24top=2&%24select=OrderNo")
    assert len(page["value"]) == 2 and "VendorNo" not in page["value"][0]
