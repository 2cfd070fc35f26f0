"""Paging in the JAGGAER stand-in over real HTTP: modifiedSince (inclusive, with a time zone), page/pageSize with
hasMore and totalItems, the (lastModified, id) order stable across pages, a rewritten record moving to the end, and
bad parameters refused with 400 naming the parameter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import jaggaer_standin_client as standin
from jaggaer_standin_client import errors_of

api, jaggaer = standin.api, standin.jaggaer  # fixtures


def walk(api, path: str, page_size: int, **params) -> list[dict]:
    items, page = [], 1
    while True:
        answer = api.listing(path, page=page, pageSize=page_size, **params)
        assert answer["page"] == page and answer["pageSize"] == page_size
        items += answer["items"]
        if not answer["hasMore"]:
            return items
        page += 1


def test_pages_walk_every_supplier_once_in_stamp_order(api):
    created = [api.supplier(f"S{n}") for n in range(23)]
    first = api.listing("suppliers", pageSize=10)
    assert (first["totalItems"], first["hasMore"], len(first["items"])) == (23, True, 10)
    last = api.listing("suppliers", page=3, pageSize=10)
    assert (len(last["items"]), last["hasMore"]) == (3, False)
    assert api.listing("suppliers", page=4, pageSize=10)["items"] == []
    walked = walk(api, "suppliers", 10)
    assert [s["id"] for s in walked] == [s["id"] for s in created]
    keys = [(s["lastModified"], s["id"]) for s in walked]
    assert keys == sorted(keys)
    assert walk(api, "suppliers", 7) == walked  # the same order whatever the page size


def test_modified_since_is_inclusive_and_follows_rewrites(api):
    early = [api.supplier(f"S{n}") for n in range(5)]
    boundary = early[2]["lastModified"]
    since = api.listing("suppliers", modifiedSince=boundary)
    expected = [s["id"] for s in early if s["lastModified"] >= boundary]
    assert early[2]["id"] in expected and [s["id"] for s in since["items"]] == expected
    rewritten = api.jg.edit_supplier(early[0]["id"], {"name": "Changed"})
    after = api.listing("suppliers", modifiedSince=rewritten["lastModified"])
    assert [s["id"] for s in after["items"]] == [early[0]["id"]]
    everything = walk(api, "suppliers", 2, modifiedSince="2000-01-01T00:00:00Z")
    assert len(everything) == 5 and everything[-1]["lastModified"] == rewritten["lastModified"]
    assert all(s["lastModified"] <= rewritten["lastModified"] for s in everything)
    keys = [(s["lastModified"], s["id"]) for s in everything]
    assert keys == sorted(keys)
    assert api.listing("suppliers", modifiedSince="2999-01-01T00:00:00+02:00")["items"] == []


def test_modified_since_accepts_offsets_and_sub_millisecond_instants(api):
    created = api.supplier("S1")
    stamp = created["lastModified"]  # 2026-11-25T20:15:03.123Z
    just_after = stamp[:-1] + "4Z"  # 0.1 ms later: the supplier is not modified at or after it
    assert api.listing("suppliers", modifiedSince=just_after)["items"] == []
    moment = datetime.fromisoformat(stamp)
    in_helsinki_winter = moment.astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")
    assert in_helsinki_winter.endswith("+02:00")
    assert [s["id"] for s in api.listing("suppliers", modifiedSince=in_helsinki_winter)["items"]] == [created["id"]]
    later = (moment + timedelta(milliseconds=1)).astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert api.listing("suppliers", modifiedSince=later)["items"] == []


def test_order_lookup_and_paging_combine(api):
    api.supplier("S1")
    orders = [api.order(f"P{n}", "S1") for n in range(4)]
    assert api.listing("purchase-orders", externalId="P2")["items"] == [orders[2]]
    assert api.listing("purchase-orders", externalId="P2", modifiedSince="2999-01-01T00:00:00Z")["items"] == []
    assert [o["id"] for o in walk(api, "purchase-orders", 3)] == [o["id"] for o in orders]


def test_bad_paging_parameters_are_400(api):
    for params, field in (({"pageSize": "501"}, "pageSize"), ({"pageSize": "0"}, "pageSize"),
                          ({"page": "0"}, "page"), ({"page": "two"}, "page"),
                          ({"modifiedSince": "2026-01-01T00:00:00"}, "modifiedSince"),
                          ({"modifiedSince": "yesterday"}, "modifiedSince")):
        answer = api.call("GET", "suppliers", **params)
        assert answer.status_code == 400, params
        assert errors_of(answer) == [("INVALID_PARAMETER", field)]
    assert api.listing("suppliers", pageSize="500")["pageSize"] == 500
    receipts_by_external = api.call("GET", "receipts", externalId="R1")
    assert receipts_by_external.status_code == 400 and errors_of(receipts_by_external)[0][1] == "externalId"
