import base64
import re

import pytest

from mlc_sandbox.ifs import model

from ifs_standin_client import query

SETS = [(e.projection, e) for e in model.ENTITIES]


def decode_etag(etag: str) -> tuple[str, str]:
    match = re.fullmatch(r'W/"([A-Za-z0-9+/=]+)"', etag)
    assert match, etag
    inner = base64.b64decode(match.group(1)).decode()
    objid, objversion = re.fullmatch(r'W/"([A-Za-z0-9+/]{18}):(\d{14})"', inner).groups()
    return objid, objversion


@pytest.mark.parametrize("projection,entity", SETS, ids=[e.entity_set for _, e in SETS])
def test_each_set_serves_ifs_records(client, projection, entity):
    page = client.json(projection, entity.entity_set, query(top=20))
    assert page["@odata.context"].endswith(f"{projection}.svc/$metadata#{entity.entity_set}")
    rows = page["value"]
    assert len(rows) == 20
    for row in rows:
        objid, objversion = decode_etag(row["@odata.etag"])
        assert row["luname"] == entity.luname and row["Objgrants"] is None
        expected_keyref = "".join(f"{n}={row[k]}^" for n, k in zip(entity.keyref_names, entity.keys))
        assert row["keyref"] == expected_keyref
        assert row["Company"] in ("10", "20", "30")
        assert row["Objstate"] in entity.state_enum.members
        assert set(row) == {"@odata.etag", "luname", "keyref", "Objgrants", *entity.field_by_name}
        change = row[entity.change_column]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", change)
        assert objversion == re.sub(r"\D", "", change)  # objversion is the last change, YYYYMMDDHHMMSS


@pytest.mark.parametrize("projection,entity", SETS, ids=[e.entity_set for _, e in SETS])
def test_get_by_key_returns_the_record_with_its_etag(client, projection, entity):
    row = client.json(projection, entity.entity_set, query(top=1, skip=3))["value"][0]
    predicate = ",".join(f"{k}='{row[k]}'" if isinstance(row[k], str) else f"{k}={row[k]}" for k in entity.keys)
    response = client.get(projection, f"{entity.entity_set}({predicate})")
    assert response.status_code == 200
    assert response.headers["ETag"] == row["@odata.etag"]
    single = response.json()
    assert single["@odata.context"].endswith(f"$metadata#{entity.entity_set}/$entity")
    assert {k: single[k] for k in entity.keys} == {k: row[k] for k in entity.keys}


def test_single_key_shorthand_and_missing_key(client):
    response = client.get("PurchaseOrderHandling", "PurchaseOrderSet('P1000003')")
    assert response.status_code == 200 and response.json()["OrderNo"] == "P1000003"
    status, body = client.error("PurchaseOrderHandling", "PurchaseOrderSet('NOPE')")
    assert status == 404 and body["error"]["code"] == "ODP_RESOURCE_NOTFOUND"


def test_unknown_service_and_set(client):
    status, body = client.error("NoSuchHandling", "Foo")
    assert status == 404 and body["error"]["message"] == "Metadata not found."
    status, body = client.error("PurchaseOrderHandling", "NoSuchSet")
    assert status == 404 and body["error"]["code"] == "ODP_RESOURCE_NOTFOUND"


def test_service_document_lists_the_sets(client):
    body = client.json("ManSuppInvoiceHandling", "")
    assert [v["name"] for v in body["value"]] == ["PostingProposalHeadSet", "PostingProposalLineSet"]


def test_navigation_from_an_entity(client):
    lines = client.json("PurchaseOrderHandling", "PurchaseOrderSet(OrderNo='P1000005')/PurchaseOrderLines")["value"]
    assert lines and {line["OrderNo"] for line in lines} == {"P1000005"}
    order = client.json("PurchaseOrderHandling",
                        "PurchaseOrderLineNopartSet(OrderNo='P1000005',LineNo='1',ReleaseNo='1')/OrderRef")
    assert order["OrderNo"] == "P1000005" and order["@odata.context"].endswith("#PurchaseOrderSet/$entity")


def test_select_keeps_keys_and_housekeeping(client):
    page = client.json("VoucherHandling", "VoucherRowSet", query(select="Amount", top=3))
    assert page["@odata.context"].endswith("#VoucherRowSet(Company,VoucherType,AccountingYear,VoucherNo,RowNo,Amount)")
    assert set(page["value"][0]) == {"@odata.etag", "luname", "keyref", "Objgrants", "Company", "VoucherType",
                                     "AccountingYear", "VoucherNo", "RowNo", "Amount"}


def test_count_segment(client):
    response = client.get("PurchaseOrderHandling", "PurchaseOrderSet/$count")
    assert response.status_code == 200 and response.text == "200"


def test_volumes_follow_the_scale(sandbox):
    counts = sandbox.admin("GET", "info")["counts"]
    assert counts["PurchaseOrderSet"] == 200
    assert 2.5 <= counts["PurchaseOrderLineNopartSet"] / 200 <= 5
    assert counts["SupplierInfoGeneralSet"] == 20
    assert counts["CodePartValueSet"] == 3 * 9 * 10
    assert all(count > 0 for count in counts.values())
