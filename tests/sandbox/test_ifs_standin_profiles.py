"""Tenant profiles: each variant of IFS Cloud the stand-in can play, proven over real HTTP with plain requests, and
the built-in `restricted` and `integration-host` tenants end to end (the second through the tests' IfsStandIn)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests
from lxml import etree

from ifs_standin_client import SCALE, SEED, Client, query
from mlc_sandbox.ifs import IfsSandboxProcess
from mlc_sandbox.ifs.profile import ProfileError, builtin_names, load

ORDERS = "PurchaseOrderHandling"
PO = (ORDERS, "PurchaseOrderSet")
LINES = (ORDERS, "PurchaseOrderLineNopartSet")
INVOICES = "ManSuppInvoiceHandling"
NS = {"edmx": "http://docs.oasis-open.org/odata/ns/edmx", "edm": "http://docs.oasis-open.org/odata/ns/edm"}
STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.fixture
def tenant(fresh, tmp_path):
    """A stand-in of one's own playing the profile given as keyword arguments (written to a JSON file, as a user
    would), and a client for it."""

    def start(**keys) -> Client:
        path = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(keys))
        return Client(fresh(profile=path))

    return start


def metadata(client: Client, projection: str) -> etree._Element:
    response = client.get(projection, "$metadata")
    assert response.status_code == 200, response.text[:300]
    return etree.fromstring(response.content)


def objversion(etag: str) -> str:
    """`W/"<base64 of W/"<objid>:<objversion>">"` → objversion."""
    inner = base64.b64decode(etag[3:-1]).decode()
    return inner[3:-1].rsplit(":", 1)[1]


def first(client: Client, projection: str, entity_set: str, filter_: str) -> dict:
    rows = client.json(projection, entity_set, query(filter=filter_, top=1))["value"]
    assert rows, f"no {entity_set} row where {filter_}"
    return rows[0]


def send(client: Client, method: str, projection: str, path: str, body: dict | None = None,
         if_match: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {client.token}", "X-Ifs-Time-Zone-Aware-Request": "true"}
    if if_match is not None:
        headers["If-Match"] = if_match
    return client.http.request(method, client.url(projection, path), json=body if body is not None else {},
                               headers=headers)


# --- projections: missing, forbidden, renamed -----------------------------------------------------------------------


def test_a_missing_projection_answers_as_an_unknown_service(tenant):
    client = tenant(missing_projections=["CodePartValuesHandling"])
    unknown = client.get("NoSuchHandling", "$metadata")
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "Metadata not found."
    for path in ("$metadata", "", "CodePartValueSet", "CodePartValueSet/$count"):
        response = client.get("CodePartValuesHandling", path)
        assert (response.status_code, response.json()) == (404, unknown.json()), path
    assert client.json("AccountsHandling", "AccountSet", query(top=1))["value"]  # the others are still there


def test_a_forbidden_projection_exists_but_answers_403_everywhere(tenant):
    client = tenant(forbidden_projections=["VoucherHandling"])
    for path in ("$metadata", "", "VoucherSet", "VoucherRowSet?$top=1",
                 "VoucherSet(Company='10',VoucherType='A',AccountingYear=2025,VoucherNo=1)", "VoucherSet/$count"):
        response = client.get("VoucherHandling", path)
        assert response.status_code == 403, path
        error = response.json()["error"]
        assert error["code"] == "ODP_FORBIDDEN" and "VoucherHandling" in error["message"], path
    # authentication still comes first, and other projections are granted
    anonymous = requests.get(client.url("VoucherHandling", "VoucherSet"))
    assert anonymous.status_code == 401
    assert client.json(*PO, query(top=1))["value"]


def test_a_renamed_projection_is_served_under_its_new_name_only(tenant):
    client = tenant(renamed_projections={"SupplierHandling": "SuppliersHandling"})
    old = client.get("SupplierHandling", "SupplierInfoGeneralSet")
    assert old.status_code == 404 and old.json()["error"]["message"] == "Metadata not found."

    root = metadata(client, "SuppliersHandling")
    assert root.find(".//edm:Schema", NS).get("Namespace") == "IfsApp.SuppliersHandling"
    state = root.find(".//edm:EntityType[@Name='SupplierInfoGeneral']/edm:Property[@Name='Objstate']", NS)
    assert state.get("Type") == "IfsApp.SuppliersHandling.SupplierInfoGeneralState"
    action = root.find(".//edm:Action[@Name='SupplierInfoGeneral_Block']/edm:Parameter", NS)
    assert action.get("Type") == "IfsApp.SuppliersHandling.SupplierInfoGeneral"

    page = client.json("SuppliersHandling", "SupplierInfoGeneralSet",
                       query(filter="Objstate eq IfsApp.SuppliersHandling.SupplierInfoGeneralState'Active'", top=5))
    assert page["@odata.context"].endswith("/SuppliersHandling.svc/$metadata#SupplierInfoGeneralSet")
    assert page["value"] and {r["Objstate"] for r in page["value"]} == {"Active"}
    status, error = client.error("SuppliersHandling", "SupplierInfoGeneralSet",
                                 query(filter="Objstate eq IfsApp.SupplierHandling.SupplierInfoGeneralState'Active'"))
    detail = error["error"]["details"][0]["message"]
    assert status == 400 and "IfsApp.SupplierHandling.SupplierInfoGeneralState" in detail

    supplier = page["value"][0]
    path = f"SupplierInfoGeneralSet(SupplierId='{supplier['SupplierId']}')"
    stale_name = send(client, "POST", "SuppliersHandling", f"{path}/IfsApp.SupplierHandling.SupplierInfoGeneral_Block",
                      if_match=supplier["@odata.etag"])
    assert stale_name.status_code == 404
    blocked = send(client, "POST", "SuppliersHandling", f"{path}/IfsApp.SuppliersHandling.SupplierInfoGeneral_Block",
                   if_match=supplier["@odata.etag"])
    assert blocked.status_code == 204
    assert client.json("SuppliersHandling", path)["Objstate"] == "Blocked"


# --- entity sets and $expand ----------------------------------------------------------------------------------------


def test_a_missing_entity_set_is_gone_and_its_navigations_lose_their_binding(tenant):
    client = tenant(missing_entity_sets=["PurchaseOrderHandling.PurchaseOrderLineNopartSet"])
    status, error = client.error(*LINES)
    assert status == 404 and error["error"]["code"] == "ODP_RESOURCE_NOTFOUND"

    root = metadata(client, ORDERS)
    assert [s.get("Name") for s in root.findall(".//edm:EntitySet", NS)] == ["PurchaseOrderSet"]
    assert root.findall(".//edm:NavigationPropertyBinding", NS) == []
    navigation = root.find(".//edm:EntityType[@Name='PurchaseOrder']/edm:NavigationProperty", NS)
    assert navigation.get("Name") == "PurchaseOrderLines"  # the type still says the navigation exists
    type_names = {t.get("Name") for t in root.findall(".//edm:EntityType", NS)}
    assert "PurchaseOrderLineNopart" in type_names  # its type stays, so the navigation's Type resolves
    assert [s["name"] for s in client.json(ORDERS, "")["value"]] == ["PurchaseOrderSet"]

    status, error = client.error(*PO, query(expand="PurchaseOrderLines", top=2))
    assert status == 400 and "PurchaseOrderLines" in error["error"]["details"][0]["message"]
    order = client.json(*PO, query(top=1))["value"][0]
    status, error = client.error(ORDERS, f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')/PurchaseOrderLines")
    assert status == 404 and error["error"]["code"] == "ODP_RESOURCE_NOTFOUND"


def test_expand_refused_as_not_implemented_and_as_bad_request(tenant, client):
    refused = tenant(expand_refused={"PurchaseOrderSet": "not_implemented", "PostingProposalHeadSet": "bad_request"})
    order = client.json(*PO, query(filter="NoOfLines gt 1", top=1))["value"][0]
    key = f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')"

    for path, options in (("PurchaseOrderSet", query(expand="PurchaseOrderLines", top=3)),
                          (key, query(expand="PurchaseOrderLines($select=LineNo)"))):
        status, error = refused.error(ORDERS, path, options)
        assert status == 501 and error["error"]["code"] == "ODP_NOT_IMPLEMENTED", path
        assert "PurchaseOrderLines" in error["error"]["message"]
    status, error = refused.error(INVOICES, "PostingProposalHeadSet", query(expand="PostingProposalLines", top=3))
    assert status == 400 and error["error"]["message"] == "Malformed Request."
    assert "$expand" in error["error"]["details"][0]["message"]

    # the metadata still says the navigation exists; the child set filtered by the parent's keys still answers
    root = metadata(refused, ORDERS)
    assert root.find(".//edm:EntitySet[@Name='PurchaseOrderSet']/edm:NavigationPropertyBinding", NS) is not None
    lines = refused.json(*LINES, query(filter=f"OrderNo eq '{order['OrderNo']}'"))["value"]
    assert len(lines) == order["NoOfLines"]
    # single-valued navigations, and sets not named, expand as before
    line = refused.json(*LINES, query(expand="OrderRef", top=1))["value"][0]
    assert line["OrderRef"]["OrderNo"] == line["OrderNo"]
    voucher = refused.json("VoucherHandling", "VoucherSet", query(expand="VoucherRows", top=1))["value"][0]
    assert "VoucherRows" in voucher


# --- $count, nextLink and the page size -----------------------------------------------------------------------------


def test_count_absent_ignores_count_true(tenant):
    client = tenant(count="absent")
    page = client.json(*PO, query(count="true", top=5))
    assert "@odata.count" not in page and len(page["value"]) == 5
    status, error = client.error(*PO[:1], "PurchaseOrderSet/$count")
    assert status == 501 and error["error"]["code"] == "ODP_NOT_IMPLEMENTED"


def test_count_wrong_counts_the_page_only(tenant, client):
    total = client.json(*PO, query(count="true", top=0))["@odata.count"]
    wrong = tenant(count="wrong", page_size=50)
    assert total > 50
    assert wrong.json(*PO, query(count="true"))["@odata.count"] == 50
    assert wrong.json(*PO, query(count="true", top=7))["@odata.count"] == 7
    assert wrong.get(*PO[:1], "PurchaseOrderSet/$count").text == "50"  # capped at one page


def test_page_size_from_the_profile_and_an_explicit_setting_wins(fresh, tmp_path):
    path = tmp_path / "small-pages.json"
    path.write_text(json.dumps({"page_size": 40}))
    client = Client(fresh(profile=path))
    page = client.json(*PO)
    assert len(page["value"]) == 40 and "@odata.nextLink" in page
    accounts = client.json("AccountsHandling", "AccountSet")  # a top/skip set: capped silently
    assert len(accounts["value"]) == 40 and "@odata.nextLink" not in accounts
    explicit = Client(fresh(profile=path, page_size=25))
    assert len(explicit.json(*PO)["value"]) == 25


def test_next_link_never_caps_pages_silently(tenant, client):
    every = client.all_rows(*PO, query(orderby="OrderNo"))
    capped = tenant(next_link="never", page_size=64)
    page = capped.json(*PO, query(orderby="OrderNo"))
    assert len(page["value"]) == 64 and "@odata.nextLink" not in page
    status, _ = capped.error(*PO, "$skiptoken=abc")
    assert status == 400
    rows, skip = [], 0
    while True:
        page = capped.json(*PO, query(orderby="OrderNo", top=100, skip=skip))
        assert len(page["value"]) <= 64 and "@odata.nextLink" not in page
        if not page["value"]:
            break
        rows += page["value"]
        skip += len(page["value"])
    assert [r["OrderNo"] for r in rows] == [r["OrderNo"] for r in every]


# --- time zones and ETags -------------------------------------------------------------------------------------------


def test_time_zone_header_ignored(tenant):
    client = tenant(time_zone_header="ignored")
    with_header = client.json(*PO, query(top=50, skip=10))["value"]
    without = client.json(*PO, query(top=50, skip=10), utc=False)["value"]
    assert [r["ChangedDate"] for r in with_header] == [r["ChangedDate"] for r in without]
    offsets = {r["ChangedDate"][-6:] for r in with_header}
    assert offsets <= {"+01:00", "+02:00"} and offsets
    for row in with_header:
        local = datetime.fromisoformat(row["ChangedDate"])
        assert local.utcoffset() == local.astimezone(STOCKHOLM).utcoffset()
    # filter literals follow the no-header rule even with the header: the wall-clock time counts, the offset not
    row = with_header[0]
    wall_clock = row["ChangedDate"][:19]
    for literal in (wall_clock, wall_clock + "Z", wall_clock + "+05:00"):
        found = client.json(*PO, query(filter=f"ChangedDate eq {literal}"))["value"]
        assert row["OrderNo"] in [r["OrderNo"] for r in found], literal


def test_counter_etags_count_changes_and_if_match_still_guards(tenant):
    client = tenant(etag_objversion="counter")
    order = first(client, *PO, "Objstate eq 'Planned'")
    path = f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')"
    etag = order["@odata.etag"]
    assert objversion(etag) == "1"
    assert client.get(ORDERS, path).headers["ETag"] == etag

    changed = send(client, "PATCH", ORDERS, path, {"NoteText": "counted"}, if_match=etag)
    assert changed.status_code == 200 and objversion(changed.headers["ETag"]) == "2"
    assert objversion(changed.json()["@odata.etag"]) == "2"
    stale = send(client, "PATCH", ORDERS, path, {"NoteText": "stale"}, if_match=etag)
    assert stale.status_code == 412
    released = send(client, "POST", ORDERS, f"{path}/IfsApp.PurchaseOrderHandling.PurchaseOrder_Release",
                    if_match=changed.headers["ETag"])
    assert released.status_code == 204 and objversion(released.headers["ETag"]) == "3"
    admin = client.sandbox.change("PurchaseOrderSet", {"OrderNo": order["OrderNo"]}, {"NoteText": "by the admin"})
    assert objversion(admin["@odata.etag"]) == "4"
    assert objversion(client.get(ORDERS, path).headers["ETag"]) == "4"
    # a record nobody changed, and a new one, start at 1
    other = first(client, *PO, f"OrderNo ne '{order['OrderNo']}'")
    assert objversion(other["@odata.etag"]) == "1"
    created = send(client, "POST", ORDERS, "PurchaseOrderSet", {"VendorNo": order["VendorNo"]})
    assert created.status_code == 201 and objversion(created.headers["ETag"]) == "1"


# --- allowed companies ----------------------------------------------------------------------------------------------


def test_allowed_companies_hide_other_companies_everywhere(tenant, client):
    limited = tenant(allowed_companies=["10"])
    everything = client.all_rows(*PO)
    tens = [r["OrderNo"] for r in everything if r["Company"] == "10"]
    assert 0 < len(tens) < len(everything)
    assert [r["OrderNo"] for r in limited.all_rows(*PO)] == tens
    assert limited.json(*PO, query(count="true", top=0))["@odata.count"] == len(tens)
    assert limited.get(*PO[:1], "PurchaseOrderSet/$count").text == str(len(tens))
    assert limited.json(*PO, query(filter="Company eq '20'"))["value"] == []
    assert {r["Company"] for r in limited.all_rows("AccountsHandling", "AccountSet")} == {"10"}

    other = first(client, *PO, "Company eq '20' and NoOfLines gt 0 and Objstate eq 'Planned'")
    path = f"PurchaseOrderSet(OrderNo='{other['OrderNo']}')"
    for hidden in (path, f"{path}/PurchaseOrderLines"):
        status, error = limited.error(ORDERS, hidden)
        assert status == 404 and error["error"]["code"] == "ODP_RESOURCE_NOTFOUND", hidden
    account = first(client, "AccountsHandling", "AccountSet", "Company eq '30'")
    status, _ = limited.error("AccountsHandling", f"AccountSet(Company='30',Account='{account['Account']}')")
    assert status == 404
    line = first(client, *LINES, f"OrderNo eq '{other['OrderNo']}'")
    status, _ = limited.error(ORDERS, f"PurchaseOrderLineNopartSet(OrderNo='{line['OrderNo']}',"
                                      f"LineNo='{line['LineNo']}',ReleaseNo='{line['ReleaseNo']}')/OrderRef")
    assert status == 404
    expanded = limited.json(*PO, query(expand="PurchaseOrderLines", top=20))["value"]
    assert {c["Company"] for r in expanded for c in r["PurchaseOrderLines"]} <= {"10"}

    # writes treat the other company's records as not there
    assert send(limited, "PATCH", ORDERS, path, {"NoteText": "x"}, if_match="*").status_code == 404
    action = f"{path}/IfsApp.PurchaseOrderHandling.PurchaseOrder_Release"
    assert send(limited, "POST", ORDERS, action, if_match=other["@odata.etag"]).status_code == 404
    refused = send(limited, "POST", ORDERS, "PurchaseOrderSet", {"VendorNo": other["VendorNo"], "Company": "20"})
    assert refused.status_code == 400 and "company 20" in refused.json()["error"]["details"][0]["message"]
    line_body = {"LineNo": "99", "Description": "x", "BuyQtyDue": 1, "BuyUnitPrice": 1,
                 "WantedDeliveryDate": "2026-01-01", "VendorNo": other["VendorNo"], "Contract": "SE01"}
    orphan = send(limited, "POST", ORDERS, f"{path}/PurchaseOrderLines", line_body)
    nowhere = send(limited, "POST", ORDERS, "PurchaseOrderSet(OrderNo='P999999')/PurchaseOrderLines", line_body)
    assert orphan.status_code == nowhere.status_code == 400  # as if the order did not exist
    assert f"has no record with OrderNo={other['OrderNo']}:" in orphan.json()["error"]["details"][0]["message"]
    assert client.json(ORDERS, path)["Objstate"] == "Planned"  # nothing happened to it


# --- API roots ------------------------------------------------------------------------------------------------------


def test_api_paths_limit_the_roots_served(fresh):
    ifs = fresh(profile="integration-host")
    assert ifs.service_url(ORDERS).endswith("/int/ifsapplications/projection/v1/PurchaseOrderHandling.svc")
    client = Client(ifs)
    assert client.json(*PO, query(top=1))["value"]
    main = requests.get(f"{ifs.base_url}/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/PurchaseOrderSet",
                        headers={"Authorization": f"Bearer {client.token}"})
    assert main.status_code == 404 and main.json()["error"]["message"] == "Metadata not found."


# --- loading profiles -----------------------------------------------------------------------------------------------


def test_the_default_profile_is_today_s_tenant(sandbox):
    assert sandbox.active_profile()["name"] == "default"
    assert {"default", "restricted", "integration-host"} <= set(builtin_names())
    effective = load("default").describe()["effective"]
    assert effective["count"] == "exact" and effective["allowed_companies"] is None
    assert effective["api_paths"] == ["/main/ifsapplications/projection/v1", "/int/ifsapplications/projection/v1"]


@pytest.mark.parametrize("document, key", [
    ({"expand_refusd": {}}, "expand_refusd"),
    ({"missing_projections": ["NoSuchHandling"]}, "missing_projections"),
    ({"missing_entity_sets": ["PurchaseOrderHandling.NoSuchSet"]}, "missing_entity_sets"),
    ({"missing_entity_sets": ["SupplierHandling.PurchaseOrderSet"]}, "missing_entity_sets"),
    ({"expand_refused": {"PurchaseOrderSet": "sometimes"}}, "expand_refused.PurchaseOrderSet"),
    ({"expand_refused": {"AccountSet": "bad_request"}}, "expand_refused"),
    ({"count": "approximate"}, "count"),
    ({"allowed_companies": ["99"]}, "allowed_companies"),
    ({"page_size": 0}, "page_size"),
    ({"next_link": False}, "next_link"),
    ({"api_paths": ["/other/v1"]}, "api_paths"),
    ({"renamed_projections": {"SupplierHandling": "CustomerHandling"}}, "renamed_projections"),
    ({"missing_projections": ["VoucherHandling"], "forbidden_projections": ["VoucherHandling"]},
     "forbidden_projections"),
])
def test_a_bad_profile_names_the_key_and_the_file(tmp_path, document, key):
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ProfileError) as raised:
        load(path)
    message = str(raised.value)
    assert f"key '{key}'" in message and str(path) in message and "\n" not in message


def test_the_command_stops_at_start_on_a_bad_profile(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"time_zone_header": "ignore"}))
    result = subprocess.run([sys.executable, "-m", "mlc_sandbox", "serve", "ifs", "--port", "0", "--scale", "20",
                             "--data-dir", str(tmp_path), "--profile", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "time_zone_header" in lines[0] and str(path) in lines[0]
    assert not list(tmp_path.glob("*.sqlite"))  # stopped before building any data
    result = subprocess.run([sys.executable, "-m", "mlc_sandbox", "serve", "ifs", "--port", "0", "--profile", "nope"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "restricted" in result.stderr  # lists the built-in profiles


def test_the_profile_may_come_from_the_environment(data_dir, monkeypatch):
    monkeypatch.setenv("MLC_SANDBOX_IFS_PROFILE", "integration-host")
    shown = subprocess.run([sys.executable, "-m", "mlc_sandbox", "serve", "ifs", "--help"],
                           capture_output=True, text=True)
    assert "MLC_SANDBOX_IFS_PROFILE" in shown.stdout
    with IfsSandboxProcess(scale=SCALE, seed=SEED, port=0, data_dir=data_dir) as ifs:
        assert ifs.active_profile()["name"] == "integration-host"
        assert ifs.service_url(ORDERS).startswith(f"{ifs.base_url}/int/")


# --- the built-in tenants end to end, through the tests' IfsStandIn (a real `mlc-sandbox serve ifs` process) --------


def test_the_restricted_tenant_end_to_end(start_ifs, client):
    ifs = start_ifs(profile="restricted")
    assert ifs.profile["name"] == "restricted" and ifs.api == "/main/ifsapplications/projection/v1"
    token = {"Authorization": f"Bearer {ifs.token()}", "X-Ifs-Time-Zone-Aware-Request": "true"}

    def get(projection: str, path: str, params: str = "") -> requests.Response:
        return requests.get(f"{ifs.base_url}{ifs.api}/{projection}.svc/{path}" + (f"?{params}" if params else ""),
                            headers=token)

    # orders are readable: company 10 only, local times despite the header, counter ETags, $count=true ignored
    orders = get(*PO, "$count=true").json()
    assert "@odata.count" not in orders and "@odata.nextLink" not in orders
    assert {r["Company"] for r in orders["value"]} == {"10"}
    assert {r["ChangedDate"][-6:] for r in orders["value"]} <= {"+01:00", "+02:00"}
    assert {objversion(r["@odata.etag"]) for r in orders["value"]} == {"1"}
    ten_orders = client.json(*PO, query(filter="Company eq '10'", count="true", top=0))["@odata.count"]
    assert len(orders["value"]) == ten_orders

    # lines: pages of 300 without a nextLink; $top/$skip reaches every line of company 10
    first_page = get(*LINES).json()
    assert len(first_page["value"]) == 300 and "@odata.nextLink" not in first_page
    lines = ifs.all_rows(*LINES, ["OrderNo", "LineNo", "ReleaseNo"])
    assert len(lines) == client.json(*LINES, query(filter="Company eq '10'", count="true", top=0))["@odata.count"]
    assert len(lines) > 300 and {r["Company"] for r in lines} == {"10"}

    # $expand of the order lines is not implemented; reading them by the order's key works
    refused = get(*PO, "$expand=PurchaseOrderLines&$top=2")
    assert refused.status_code == 501 and refused.json()["error"]["code"] == "ODP_NOT_IMPLEMENTED"
    order = next(r for r in orders["value"] if r["NoOfLines"] > 0)
    by_order = get(*LINES, f"$filter=OrderNo%20eq%20'{order['OrderNo']}'").json()["value"]
    assert len(by_order) == order["NoOfLines"]
    bad = get(INVOICES, "PostingProposalHeadSet", "$expand=PostingProposalLines&$top=2")
    assert bad.status_code == 400 and "$expand" in bad.json()["error"]["details"][0]["message"]

    # this release: no code part values, suppliers renamed, vouchers not granted
    assert get("CodePartValuesHandling", "CodePartValueSet").status_code == 404
    assert get("SupplierHandling", "SupplierInfoGeneralSet").status_code == 404
    suppliers = get("SuppliersHandling", "SupplierInfoGeneralSet").json()["value"]
    assert suppliers and {s["Company"] for s in suppliers} == {"10"}
    voucher = get("VoucherHandling", "VoucherSet")
    assert voucher.status_code == 403 and voucher.json()["error"]["code"] == "ODP_FORBIDDEN"
    # /main and /int both serve it
    assert requests.get(f"{ifs.base_url}/int/ifsapplications/projection/v1/AccountsHandling.svc/AccountSet?$top=1",
                        headers=token).status_code == 200


def test_the_integration_host_tenant_through_the_tests_stand_in(start_ifs):
    ifs = start_ifs(profile="integration-host")
    assert ifs.api == "/int/ifsapplications/projection/v1"
    assert ifs.get(*PO, "$top=1")["value"]
    main = requests.get(f"{ifs.base_url}/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/$metadata")
    assert main.status_code == 404
