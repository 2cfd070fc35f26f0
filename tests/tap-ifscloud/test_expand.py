"""Lines travel with their headers while every response stays under IFS's 5,000-element limit."""

from __future__ import annotations

from collections import Counter

from support.singer import run_tap

PROJECTION, HEADERS, LINES = "PurchaseOrderHandling", "PurchaseOrderSet", "PurchaseOrderLineNopartSet"


def _line_counts(ifs) -> Counter:
    return Counter(r["OrderNo"] for r in ifs.all_rows(PROJECTION, LINES, ["OrderNo", "LineNo", "ReleaseNo"]))


def _make_big_order(ifs, order_no: str, lines: int) -> None:
    header = ifs.all_rows(PROJECTION, HEADERS, ["OrderNo"])[0]
    ifs.create(HEADERS, {**{k: v for k, v in header.items() if not k.startswith("@") and k not in ("luname", "keyref", "Objgrants")},
                         "OrderNo": order_no})
    template = ifs.all_rows(PROJECTION, LINES, ["OrderNo", "LineNo", "ReleaseNo"])[0]
    base = {k: v for k, v in template.items() if not k.startswith("@") and k not in ("luname", "keyref", "Objgrants")}
    ifs.create_many(LINES, [{**base, "OrderNo": order_no, "LineNo": str(n), "ReleaseNo": "1"} for n in range(1, lines + 1)])


def test_every_order_arrives_with_all_its_lines(ifs, tmp_path):
    run = run_tap(tmp_path, ifs.tap_config(), streams=["purchase_orders"])
    expected = _line_counts(ifs)
    orders = run.records("purchase_orders")
    assert len(orders) == ifs.count(PROJECTION, HEADERS)
    assert {o["OrderNo"]: len(o["PurchaseOrderLines"]) for o in orders} == {
        o["OrderNo"]: expected.get(o["OrderNo"], 0) for o in orders
    }
    line = orders[0]["PurchaseOrderLines"][0]
    assert line["etag"].startswith('W/"') and "@odata.etag" not in line


def test_pages_that_would_exceed_the_limit_are_split_never_truncated(ifs, tmp_path):
    for n in range(4):
        _make_big_order(ifs, f"BIG-{n}", 1500)  # any two of them together exceed 5,000 elements
    ifs.clear_requests()
    run = run_tap(tmp_path, ifs.tap_config(page_size=500), streams=["purchase_orders"])
    by_order = {o["OrderNo"]: o for o in run.records("purchase_orders")}
    for n in range(4):
        assert len(by_order[f"BIG-{n}"]["PurchaseOrderLines"]) == 1500
    assert sum(len(o["PurchaseOrderLines"]) for o in by_order.values()) == sum(_line_counts(ifs).values())
    statuses = [r["status"] for r in ifs.requests_log() if HEADERS in r["path"]]
    assert 500 in statuses  # the limit was hit and the page split, not silently cut


def test_one_order_with_more_than_5000_lines_reads_them_from_the_line_set(ifs, tmp_path):
    _make_big_order(ifs, "JUMBO-1", 6200)
    ifs.clear_requests()
    run = run_tap(tmp_path, ifs.tap_config(page_size=200), streams=["purchase_orders"])
    jumbo = next(o for o in run.records("purchase_orders") if o["OrderNo"] == "JUMBO-1")
    assert sorted(int(l["LineNo"]) for l in jumbo["PurchaseOrderLines"]) == list(range(1, 6201))
    line_requests = [r["path"] for r in ifs.requests_log() if LINES in r["path"]]
    assert line_requests and all("JUMBO-1" in p for p in line_requests)
