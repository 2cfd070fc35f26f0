import time

import pytest

from ifs_standin_client import Client, query

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")


def patch(client, path, body, if_match=None):
    headers = {"Authorization": f"Bearer {client.token}", "X-Ifs-Time-Zone-Aware-Request": "true"}
    if if_match is not None:
        headers["If-Match"] = if_match
    if isinstance(body, str):  # raw JSON text, so numbers reach the server with every digit
        headers["Content-Type"] = "application/json"
        return client.http.patch(client.url("PurchaseOrderHandling", path), data=body, headers=headers)
    return client.http.patch(client.url("PurchaseOrderHandling", path), json=body, headers=headers)


def test_patch_needs_if_match_and_a_fresh_etag(fresh):
    client = Client(fresh())
    path = "PurchaseOrderSet(OrderNo='P1000010')"
    before = client.get("PurchaseOrderHandling", path)
    etag = before.headers["ETag"]

    response = patch(client, path, {"NoteText": "no precondition"})
    assert response.status_code == 428 and response.json()["error"]["code"] == "ODP_MISSING_PRECONDITION"

    response = patch(client, path, {"NoteText": "first"}, etag)
    assert response.status_code == 200
    after = response.json()
    assert after["NoteText"] == "first" and response.headers["ETag"] == after["@odata.etag"] != etag
    assert after["ChangedDate"] > before.json()["ChangedDate"]

    stale = patch(client, path, {"NoteText": "second"}, etag)
    assert stale.status_code == 412
    star = patch(client, path, {"NoteText": "third"}, "*")
    assert star.status_code == 200 and star.json()["NoteText"] == "third"
    # two changes in the same second still give different ETags
    assert star.headers["ETag"] != response.headers["ETag"]
    assert client.get("PurchaseOrderHandling", path).headers["ETag"] == star.headers["ETag"]


def test_patch_validates_fields(fresh):
    client = Client(fresh())
    path = "PurchaseOrderSet(OrderNo='P1000010')"
    for body in ({"Nope": 1}, {"OrderNo": "P9"}, {"Objstate": "Flying"}, {"TotalNetAmount": "abc"},
                 {"B2bOrder": "yes"}, {"Company": None}):
        response = patch(client, path, body, "*")
        assert response.status_code == 400, body
    response = patch(client, path, '{"TotalNetAmount": 12345678901234567890.123456789, "NoteText": "exact"}', "*")
    assert response.status_code == 200
    assert '"TotalNetAmount":12345678901234567890.123456789' in response.text


def test_admin_create_change_delete(fresh):
    ifs = fresh()
    client = Client(ifs)
    created = ifs.create("PurchaseOrderSet", {"VendorNo": "S10002", "NoteText": "made by a test"})
    assert created["OrderNo"] == "P1000200" and created["Objstate"] == "Planned"
    assert created["Company"] == "10" and created["ChangedDate"].endswith("Z")
    fetched = client.json(*PO[:1], f"PurchaseOrderSet('{created['OrderNo']}')")
    assert fetched["NoteText"] == "made by a test" and fetched["@odata.etag"] == created["@odata.etag"]

    changed = ifs.change("PurchaseOrderSet", {"OrderNo": "P1000200"}, {"Objstate": "Released"},
                         changed_at="2030-01-02T03:04:05Z")
    assert changed["Objstate"] == "Released" and changed["ChangedDate"] == "2030-01-02T03:04:05Z"
    assert changed["@odata.etag"] != created["@odata.etag"]
    newest = client.json(*PO, query(filter="ChangedDate ge 2030-01-01T00:00:00Z"))["value"]
    assert [r["OrderNo"] for r in newest] == ["P1000200"]

    lines_before = client.json("PurchaseOrderHandling", "PurchaseOrderSet('P1000001')/PurchaseOrderLines")["value"]
    assert lines_before
    assert ifs.delete("PurchaseOrderSet", {"OrderNo": "P1000001"})["deleted"] == 1 + len(lines_before)
    status, _ = client.error("PurchaseOrderHandling", "PurchaseOrderSet('P1000001')")
    assert status == 404
    assert client.json("PurchaseOrderHandling", "PurchaseOrderLineNopartSet",
                       query(filter="OrderNo eq 'P1000001'"))["value"] == []


def test_admin_change_defaults_to_now(fresh):
    ifs = fresh()
    before = time.time()
    changed = ifs.change("CustomerInfoSet", {"CustomerId": "C10003"}, {"Name": "Renamed AB"})
    stamp = time.mktime(time.strptime(changed["ChangedDate"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 1 <= stamp <= time.time() + 1


def test_admin_bulk_create_and_errors(fresh):
    ifs = fresh()
    body = ifs.create_many("AccountSet", [{"Company": "20", "Account": f"9{n:03d}", "Description": "bulk"}
                                          for n in range(50)])
    assert body["count"] == 50 and body["records"][0]["keyref"] == "COMPANY=20^ACCOUNT=9000^"
    with pytest.raises(RuntimeError, match="409"):
        ifs.create("AccountSet", {"Company": "20", "Account": "9000"})
    with pytest.raises(RuntimeError, match="400"):
        ifs.create("AccountSet", {"Company": "20"})  # composite keys are not invented
    with pytest.raises(RuntimeError, match="400"):
        ifs.create("AccountSet", {"Company": "20", "Account": "9999", "Bogus": 1})
    with pytest.raises(RuntimeError, match="404"):
        ifs.change("AccountSet", {"Company": "20", "Account": "nope"}, {"Description": "x"})
    with pytest.raises(RuntimeError, match="404"):
        ifs.delete("NoSuchSet", {"X": 1})
    work_order = ifs.create("ActiveSeparateSet", {"ErrDescr": "New fault"})
    assert work_order["WoNo"] == 100000 + 20 and work_order["Objstate"] == "Prepared"


def test_admin_health_info_and_request_log(fresh):
    ifs = fresh()
    assert ifs.admin("GET", "health") == {"status": "ok"}
    client = Client(ifs)
    client.get(*PO, "$top=1")
    log = ifs.requests()
    assert [e["kind"] for e in log] == ["token", "data"]
    assert log[1]["path"].endswith("PurchaseOrderSet?$top=1") and log[1]["status"] == 200
    assert client.token not in str(log)
    ifs.clear_requests()
    assert ifs.requests() == []
