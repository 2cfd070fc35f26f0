"""The IFS stand-in driven by clients nobody here wrote: python-odata 0.8 (entities reflected from $metadata) and a
plain `requests` OData loop as a user would write it. Every count is checked against the stand-in's own rows, read
from its SQLite store rather than through OData.

What python-odata 0.8 gets wrong on its own side (the stand-in answers as the OData spec says; docs/ifs-sandbox.md,
"Third-party clients"): enum literals are written in the Dynamics 365 namespace, Edm.Date has no typed property, and
`Query.all()` follows only server-driven paging, so a top/skip set comes back as its first page.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from urllib.parse import quote, urlencode

import pytest
import requests
from odata import ODataService
from odata.exceptions import ODataError

from mlc_sandbox.ifs import model
from mlc_sandbox.ifs.store import quote as sql_name

from ifs_standin_client import Client

ORDERS = "PurchaseOrderHandling"
UTC = dt.timezone.utc


def stored(ifs, entity_set: str) -> list[dict]:
    """The stand-in's own rows of an entity set, straight from its store (timestamps as epoch seconds, decimals as
    text)."""
    with ifs.app.store.reader() as conn:
        cursor = conn.execute(f"SELECT * FROM {sql_name(model.ENTITY_BY_SET[entity_set].table)}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor]


def through_float(text: str) -> Decimal:
    """A decimal as python-odata 0.8 reads it: requests parses the JSON number as a float, then DecimalProperty makes
    a Decimal of that float's repr (its docstring: "transmitted as a float"). The stand-in sends every digit; a client
    that parses JSON numbers as Decimal gets them all (test_requests_loop_follows_next_links_to_the_end)."""
    return Decimal(repr(float(text)))


class Responses:
    """A requests response hook: every response the client received, to check headers and count pages."""

    def __init__(self):
        self.seen: list[requests.Response] = []

    def __call__(self, response, *args, **kwargs):
        self.seen.append(response)
        return response

    def urls(self, containing: str) -> list[str]:
        return [r.url for r in self.seen if containing in r.url]


def python_odata(ifs, projection: str, responses: Responses | None = None) -> ODataService:
    """python-odata on a session carrying the bearer token and the time-zone header, entities reflected."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {Client(ifs).token}"
    session.headers["X-Ifs-Time-Zone-Aware-Request"] = "true"
    if responses is not None:
        session.hooks["response"].append(responses)
    return ODataService(ifs.service_url(projection) + "/", session=session, reflect_entities=True,
                        quiet_progress=True)


# --- python-odata --------------------------------------------------------------------------------------------------


def test_python_odata_reads_a_whole_set_through_next_links(fresh):
    ifs = fresh(page_size=37)
    responses = Responses()
    service = python_odata(ifs, ORDERS, responses)
    orders = service.entities["PurchaseOrderSet"]

    everything = service.query(orders).all()

    own = stored(ifs, "PurchaseOrderSet")
    assert sorted(o.OrderNo for o in everything) == sorted(r["OrderNo"] for r in own)
    assert len(everything) == len(own) > 37
    pages = responses.urls("PurchaseOrderSet")
    assert len(pages) == -(-len(own) // 37) and all("skiptoken=" in url for url in pages[1:])
    # $metadata, the service's answers and its pages all say which protocol version they speak
    assert responses.seen and all(r.headers["OData-Version"] == "4.0" for r in responses.seen)
    sample = everything[0]
    mine = next(r for r in own if r["OrderNo"] == sample.OrderNo)
    assert sample.TotalNetAmount == through_float(mine["TotalNetAmount"])
    assert sample.ChangedDate == dt.datetime.fromtimestamp(mine["ChangedDate"], UTC)


def test_python_odata_filters_orders_counts_and_slices(sandbox):
    service = python_odata(sandbox, ORDERS)
    orders = service.entities["PurchaseOrderSet"]
    own = stored(sandbox, "PurchaseOrderSet")
    threshold = Decimal("100000.5")
    since = dt.datetime(2026, 1, 1, tzinfo=UTC)

    query = service.query(orders).filter(orders.Company == "10").filter(orders.TotalNetAmount > threshold)
    expected = sorted((r for r in own if r["Company"] == "10" and Decimal(r["TotalNetAmount"]) > threshold),
                      key=lambda r: r["OrderNo"], reverse=True)
    assert 0 < len(expected) < len([r for r in own if r["Company"] == "10"])
    assert [o.OrderNo for o in query.order_by(orders.OrderNo.desc()).all()] == [r["OrderNo"] for r in expected]
    assert query.count() == len(expected)
    assert service.query(orders).count() == len(own)

    # a DateTimeOffset literal: python-odata writes its +00:00 offset percent-encoded, as it must
    changed = service.query(orders).filter(orders.ChangedDate >= since).all()
    assert sorted(o.OrderNo for o in changed) == sorted(r["OrderNo"] for r in own
                                                        if r["ChangedDate"] >= since.timestamp())

    # client-driven paging: $top/$skip over a stable order
    by_key = sorted(r["OrderNo"] for r in own)
    page = service.query(orders).order_by(orders.OrderNo.asc()).limit(7).offset(20).all()
    assert [o.OrderNo for o in page] == by_key[20:27]
    assert [o.OrderNo for o in service.query(orders).filter(orders.VendorNo.startswith("S1000")).all()] == \
        sorted(r["OrderNo"] for r in own if r["VendorNo"].startswith("S1000"))


def test_python_odata_pages_a_top_skip_set_itself(fresh):
    """IFS caps a page of the top/skip sets silently, without a nextLink (the fact sheet's 'A $top page came back
    WITHOUT @odata.nextLink'): `all()` then gets the first page only, and the client pages with limit/offset."""
    ifs = fresh(page_size=7)
    service = python_odata(ifs, "SupplierHandling")
    suppliers = service.entities["SupplierInfoGeneralSet"]
    own = sorted(r["SupplierId"] for r in stored(ifs, "SupplierInfoGeneralSet"))
    assert len(own) > 7

    assert len(service.query(suppliers).all()) == 7

    seen, offset = [], 0
    while True:
        page = service.query(suppliers).order_by(suppliers.SupplierId.asc()).limit(7).offset(offset).all()
        seen += [s.SupplierId for s in page]
        offset += 7
        if len(page) < 7:
            break
    assert seen == own


def test_python_odata_expands_order_lines(sandbox):
    service = python_odata(sandbox, ORDERS)
    orders = service.entities["PurchaseOrderSet"]
    expanded = service.query(orders).expand(orders.PurchaseOrderLines).filter(orders.Company == "20").all()

    own_orders = [r["OrderNo"] for r in stored(sandbox, "PurchaseOrderSet") if r["Company"] == "20"]
    own_lines: dict[str, list[tuple]] = {}
    for line in stored(sandbox, "PurchaseOrderLineNopartSet"):
        own_lines.setdefault(line["OrderNo"], []).append((line["LineNo"], line["ReleaseNo"], line["NetAmount"]))
    assert sorted(o.OrderNo for o in expanded) == sorted(own_orders)
    for order in expanded:
        got = sorted((x.LineNo, x.ReleaseNo, x.NetAmount) for x in order.PurchaseOrderLines)
        assert got == sorted((n, r, through_float(a)) for n, r, a in own_lines.get(order.OrderNo, []))
    assert sum(len(o.PurchaseOrderLines) for o in expanded) > len(expanded)


def test_python_odata_enum_literals_and_the_spec_form(sandbox):
    """python-odata 0.8 writes every enum literal in the namespace Microsoft.Dynamics.DataEntities (a Dynamics 365
    leftover in its EnumTypeProperty), so its typed enum filter names a type this service does not have: the stand-in
    refuses it as the OData URL conventions require. The literal written as the spec says (the property's own
    qualified enum type) works through the same client."""
    service = python_odata(sandbox, ORDERS)
    orders = service.entities["PurchaseOrderSet"]
    state = service.types["IfsApp.PurchaseOrderHandling.PurchaseOrderState"]
    own = [r for r in stored(sandbox, "PurchaseOrderSet") if r["Objstate"] == "Released"]

    with pytest.raises(ODataError) as refused:
        service.query(orders).filter(orders.Objstate == state.Released).all()
    assert refused.value.status_code == "HTTP 400"
    assert "Microsoft.Dynamics.DataEntities.PurchaseOrderState" in refused.value.detailed_message

    qualified = "Objstate eq IfsApp.PurchaseOrderHandling.PurchaseOrderState'Released'"
    found = service.query(orders).filter(qualified).all()
    assert sorted(o.OrderNo for o in found) == sorted(r["OrderNo"] for r in own) and own
    assert {o.Objstate for o in found} == {state.Released}
    # Edm.Date has no python-odata property type: the value comes back as text and the filter is written by hand
    since = dt.date(2025, 6, 1)
    found = service.query(orders).filter(f"OrderDate ge {since.isoformat()}").all()
    assert sorted(o.OrderNo for o in found) == sorted(r["OrderNo"] for r in stored(sandbox, "PurchaseOrderSet")
                                                      if r["OrderDate"] >= since.isoformat())


def test_python_odata_saves_only_with_a_fresh_etag(fresh):
    ifs = fresh()
    service = python_odata(ifs, ORDERS)
    orders = service.entities["PurchaseOrderSet"]
    query = service.query(orders)
    order = query.get("P1000010")
    etag = query.raw({"$filter": "OrderNo eq 'P1000010'"})[0]["@odata.etag"]

    order.NoteText = "no precondition"
    with pytest.raises(ODataError) as refused:
        service.save(order)  # python-odata sends no If-Match of its own
    assert (refused.value.status_code, refused.value.code) == ("HTTP 428", "ODP_MISSING_PRECONDITION")

    order.NoteText = "saved by python-odata"
    service.default_context.save(order, extra_headers={"If-Match": etag})
    [row] = [r for r in stored(ifs, "PurchaseOrderSet") if r["OrderNo"] == "P1000010"]
    assert row["NoteText"] == "saved by python-odata" and order.NoteText == "saved by python-odata"

    order.NoteText = "with a stale ETag"
    with pytest.raises(ODataError) as stale:
        service.default_context.save(order, extra_headers={"If-Match": etag})
    assert (stale.value.status_code, stale.value.code) == ("HTTP 412", "ODP_PRECONDITION_FAILED")
    [row] = [r for r in stored(ifs, "PurchaseOrderSet") if r["OrderNo"] == "P1000010"]
    assert row["NoteText"] == "saved by python-odata"


# --- a plain requests OData loop -----------------------------------------------------------------------------------


def odata_session(ifs) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {Client(ifs).token}", "Accept": "application/json",
                            "OData-MaxVersion": "4.0", "X-Ifs-Time-Zone-Aware-Request": "true"})
    return session


def encoded(options: dict) -> str:
    """Query options percent-encoded per RFC 3986: a space is %20, a plus sign %2B."""
    return urlencode(options, quote_via=quote, safe="$,'()")


def read(session: requests.Session, url: str) -> dict:
    response = session.get(url)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["OData-Version"] == "4.0"
    return json.loads(response.text, parse_float=Decimal)


def test_requests_loop_follows_next_links_to_the_end(fresh):
    ifs = fresh(page_size=25)
    session = odata_session(ifs)
    root = ifs.service_url(ORDERS) + "/"
    options = {"$select": "OrderNo,VendorNo,TotalNetAmount", "$filter": "Company ne '30' and NoOfLines ge 2",
               "$orderby": "VendorNo desc,OrderNo", "$count": "true"}
    url, rows, pages, counts = f"{root}PurchaseOrderSet?{encoded(options)}", [], 0, set()
    while url:
        page = read(session, url)
        rows += page["value"]
        pages += 1
        counts.add(page["@odata.count"])
        link = page.get("@odata.nextLink")
        url = requests.compat.urljoin(root, link) if link else None

    own = sorted((r for r in stored(ifs, "PurchaseOrderSet") if r["Company"] != "30" and r["NoOfLines"] >= 2),
                 key=lambda r: r["OrderNo"])
    own.sort(key=lambda r: r["VendorNo"], reverse=True)
    assert [(r["OrderNo"], r["VendorNo"], r["TotalNetAmount"]) for r in rows] == \
        [(r["OrderNo"], r["VendorNo"], Decimal(r["TotalNetAmount"])) for r in own]
    assert counts == {len(own)} and pages == -(-len(own) // 25) > 1
    assert set(rows[0]) == {"@odata.etag", "OrderNo", "VendorNo", "TotalNetAmount"} | {"luname", "keyref",
                                                                                       "Objgrants"}


def test_requests_top_skip_and_count(sandbox):
    session = odata_session(sandbox)
    root = sandbox.service_url("CustomerHandling") + "/"
    own = sorted(r["CustomerId"] for r in stored(sandbox, "CustomerInfoSet") if r["Country"] != "SE")
    seen, skip = [], 0
    while True:
        options = {"$select": "CustomerId", "$filter": "Country ne 'SE'", "$orderby": "CustomerId",
                   "$top": "4", "$skip": str(skip)}
        page = read(session, f"{root}CustomerInfoSet?{encoded(options)}")
        assert "@odata.nextLink" not in page
        seen += [r["CustomerId"] for r in page["value"]]
        skip += 4
        if len(page["value"]) < 4:
            break
    assert seen == own and len(own) > 4
    count = session.get(f"{root}CustomerInfoSet/$count?" + encoded({"$filter": "Country ne 'SE'"}))
    assert (count.status_code, count.text, count.headers["OData-Version"]) == (200, str(len(own)), "4.0")


def test_requests_default_encoding_is_refused_with_what_to_send_instead(sandbox):
    """requests' `params=` writes a space as '+'; the stand-in refuses a literal '+' and says what to send."""
    session = odata_session(sandbox)
    url = sandbox.service_url(ORDERS) + "/PurchaseOrderSet"
    refused = session.get(url, params={"$filter": "VendorNo eq 'S10003'"})
    assert "+eq+" in refused.url and refused.status_code == 400
    assert refused.headers["OData-Version"] == "4.0"
    detail = refused.json()["error"]["details"][0]["message"]
    assert "'+'" in detail and "%20" in detail and "%2B" in detail

    answered = read(session, f"{url}?" + encoded({"$filter": "VendorNo eq 'S10003'"}))
    assert sorted(r["OrderNo"] for r in answered["value"]) == \
        sorted(r["OrderNo"] for r in stored(sandbox, "PurchaseOrderSet") if r["VendorNo"] == "S10003")


def test_requests_etag_read_then_patch_with_if_match(fresh):
    ifs = fresh()
    session = odata_session(ifs)
    entity = ifs.service_url(ORDERS) + "/PurchaseOrderSet(OrderNo='P1000020')"
    read_back = session.get(entity)
    etag = read_back.headers["ETag"]
    assert etag == read_back.json()["@odata.etag"] and etag.startswith('W/"')

    changed = session.patch(entity, json={"NoteText": "changed with If-Match"}, headers={"If-Match": etag})
    assert changed.status_code == 200 and changed.headers["OData-Version"] == "4.0"
    new_etag = changed.headers["ETag"]
    assert new_etag != etag and changed.json()["@odata.etag"] == new_etag
    [row] = [r for r in stored(ifs, "PurchaseOrderSet") if r["OrderNo"] == "P1000020"]
    assert row["NoteText"] == "changed with If-Match"

    stale = session.patch(entity, json={"NoteText": "lost update"}, headers={"If-Match": etag})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "ODP_PRECONDITION_FAILED"
    assert stale.headers["OData-Version"] == "4.0"
    [row] = [r for r in stored(ifs, "PurchaseOrderSet") if r["OrderNo"] == "P1000020"]
    assert row["NoteText"] == "changed with If-Match"
    assert session.get(entity).headers["ETag"] == new_etag


# --- OData-Version negotiation (OData 4.01 Part 1 §5.1, §8.1.5, §8.2.7) ------------------------------------------


def test_every_service_answer_names_odata_version_4_0(sandbox):
    session = odata_session(sandbox)
    root = sandbox.service_url(ORDERS)
    for path, status in [("/", 200), ("/$metadata", 200), ("/PurchaseOrderSet?$top=1", 200),
                         ("/PurchaseOrderSet('P1000001')", 200), ("/PurchaseOrderSet/$count", 200),
                         ("/PurchaseOrderSet('NOPE')", 404), ("/NoSuchSet", 404), ("/PurchaseOrderSet?$nope=1", 400)]:
        response = session.get(root + path)
        assert (response.status_code, response.headers.get("OData-Version")) == (status, "4.0"), path
    unauthenticated = requests.get(root + "/PurchaseOrderSet?$top=1")
    assert (unauthenticated.status_code, unauthenticated.headers["OData-Version"]) == (401, "4.0")
    missing = session.get(sandbox.base_url + "/main/ifsapplications/projection/v1/NoSuchHandling.svc/$metadata")
    assert (missing.status_code, missing.headers["OData-Version"]) == (404, "4.0")
    # not OData: the token endpoint
    token = requests.post(sandbox.token_url, data={"grant_type": "client_credentials",
                                                   "client_id": "mlc-sandbox-client",
                                                   "client_secret": "mlc-sandbox-secret"})
    assert token.status_code == 200 and "OData-Version" not in token.headers


@pytest.mark.parametrize("headers", [{"OData-MaxVersion": "4.0"}, {"OData-MaxVersion": "4.01"},
                                     {"OData-MaxVersion": "5.0"}, {"OData-Version": "4.0"},
                                     {"OData-Version": "4.0", "OData-MaxVersion": "4.01"}, {}])
def test_versions_the_service_can_answer(sandbox, headers):
    session = odata_session(sandbox)
    session.headers.pop("OData-MaxVersion")
    response = session.get(sandbox.service_url(ORDERS) + "/PurchaseOrderSet?$top=1", headers=headers)
    assert (response.status_code, response.headers["OData-Version"]) == (200, "4.0")


@pytest.mark.parametrize("headers, named", [
    ({"OData-MaxVersion": "3.0"}, "OData-MaxVersion 3.0 is below 4.0"),
    ({"OData-MaxVersion": "four"}, "OData-MaxVersion 'four' is not a version number"),
    ({"OData-Version": "4.01"}, "OData-Version '4.01' is not supported"),
    ({"OData-Version": "2.0", "OData-MaxVersion": "2.0"}, "OData-Version '2.0' is not supported"),
])
def test_versions_the_service_cannot_answer_are_refused(sandbox, headers, named):
    session = odata_session(sandbox)
    session.headers.pop("OData-MaxVersion")
    response = session.get(sandbox.service_url(ORDERS) + "/PurchaseOrderSet?$top=1", headers=headers)
    assert (response.status_code, response.headers["OData-Version"]) == (400, "4.0")
    error = response.json()["error"]
    assert error["code"] == "ODP_BAD_REQUEST" and named in error["details"][0]["message"]
    assert "4.0" in error["details"][0]["message"]
