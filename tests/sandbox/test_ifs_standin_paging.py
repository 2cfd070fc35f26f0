from urllib.parse import unquote

from ifs_standin_client import Client, query

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")


def follow(client, projection, entity_set, query_string):
    pages = []
    page = client.json(projection, entity_set, query_string)
    while True:
        pages.append(page)
        link = page.get("@odata.nextLink")
        if not link:
            return pages
        assert not link.startswith("http"), "nextLink is relative to the service root"
        path, _, rest = link.partition("?")
        page = client.json(projection, path, rest)


def test_next_link_pages_cover_every_row_once_in_key_order(fresh):
    ifs = fresh(page_size=37)
    client = Client(ifs)
    pages = follow(client, *PO, query(select="OrderNo,VendorNo", filter="Company ne '30'"))
    assert all(len(p["value"]) == 37 for p in pages[:-1]) and 0 < len(pages[-1]["value"]) <= 37
    link = pages[0]["@odata.nextLink"]
    assert link.startswith("PurchaseOrderSet?")
    assert "$select=OrderNo,VendorNo" in unquote(link) and "$filter=Company ne '30'" in unquote(link)
    got = [r["OrderNo"] for p in pages for r in p["value"]]
    assert len(got) == len(set(got))
    everything = Client(fresh()).all_rows(*PO)
    assert got == [r["OrderNo"] for r in everything if r["Company"] != "30"]


def test_next_link_with_ties_on_the_order_column(fresh):
    ifs = fresh(page_size=25)
    client = Client(ifs)
    everything = client.all_rows("PurchaseOrderHandling", "PurchaseOrderLineNopartSet")
    pages = follow(client, "PurchaseOrderHandling", "PurchaseOrderLineNopartSet",
                   query(orderby="LastActivityDate,Objstate desc", select="LastActivityDate,Objstate"))
    got = [(r["OrderNo"], r["LineNo"], r["ReleaseNo"]) for p in pages for r in p["value"]]
    assert len(got) == len(set(got)) == len(everything)
    stamps = [r["LastActivityDate"] for p in pages for r in p["value"]]
    assert stamps == sorted(stamps)
    assert len(stamps) - len(set(stamps)) > 50, "generated data has many rows sharing one second"


def test_next_link_respects_top_and_skip_and_count(fresh):
    ifs = fresh(page_size=30)
    client = Client(ifs)
    pages = follow(client, *PO, query(top=70, skip=5, count="true"))
    assert [len(p["value"]) for p in pages] == [30, 30, 10]
    assert all(p["@odata.count"] == 200 for p in pages)
    got = [r["OrderNo"] for p in pages for r in p["value"]]
    assert got == [f"P{1000000 + i}" for i in range(5, 75)]


def test_decimal_order_pages_by_offset(fresh):
    ifs = fresh(page_size=40)
    client = Client(ifs)
    pages = follow(client, *PO, query(orderby="TotalNetAmount desc", select="TotalNetAmount"))
    amounts = [r["TotalNetAmount"] for p in pages for r in p["value"]]
    assert len(amounts) == 200 and amounts == sorted(amounts, reverse=True)


def test_top_skip_sets_cap_silently_without_next_link(fresh):
    ifs = fresh(page_size=15)
    client = Client(ifs)
    page = client.json("SupplierHandling", "SupplierInfoGeneralSet", query(top=100, count="true"))
    assert len(page["value"]) == 15 and "@odata.nextLink" not in page and page["@odata.count"] == 20
    rest = client.json("SupplierHandling", "SupplierInfoGeneralSet", query(top=100, skip=15))
    assert len(rest["value"]) == 5 and "@odata.nextLink" not in rest
    ids = [r["SupplierId"] for r in page["value"] + rest["value"]]
    assert ids == sorted(ids) and len(set(ids)) == 20
    status, body = client.error("SupplierHandling", "SupplierInfoGeneralSet", "$skiptoken=abc")
    assert status == 400


def test_deep_skip_on_a_next_link_set(client):
    page = client.json(*PO, query(skip=195, select="OrderNo"))
    assert [r["OrderNo"] for r in page["value"]] == [f"P{1000000 + i}" for i in range(195, 200)]
    assert "@odata.nextLink" not in page


def test_page_size_setting_is_live(fresh):
    ifs = fresh()
    client = Client(ifs)
    assert len(client.json(*PO)["value"]) == 200
    ifs.change_settings(page_size=50)
    page = client.json(*PO)
    assert len(page["value"]) == 50 and "@odata.nextLink" in page


def test_invalid_paging_options(client):
    for options in ("$top=-1", "$skip=x", "$count=yes", "$skiptoken=%%%", "$top=1&$top=2", "$search=x"):
        status, body = client.error(*PO, options)
        assert status == 400, options
        assert body["error"]["message"] == "Malformed Request."
