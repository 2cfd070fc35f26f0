from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from ifs_standin_client import Client, query

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def test_timestamps_are_utc_with_the_header_and_local_without(client):
    utc_rows = client.json(*PO, query(top=50))["value"]
    local_rows = client.json(*PO, query(top=50), utc=False)["value"]
    offsets = set()
    for utc_row, local_row in zip(utc_rows, local_rows):
        assert utc_row["ChangedDate"].endswith("Z")
        utc = datetime.fromisoformat(utc_row["ChangedDate"].replace("Z", "+00:00"))
        local = datetime.fromisoformat(local_row["ChangedDate"])
        assert local == utc and local.utcoffset() == utc.astimezone(STOCKHOLM).utcoffset()
        offsets.add(local_row["ChangedDate"][-6:])
    assert offsets == {"+01:00", "+02:00"}  # winter and summer time both occur


def test_other_tenant_zone(fresh):
    client = Client(fresh(time_zone="America/New_York"))
    row = client.json(*PO, query(top=1), utc=False)["value"][0]
    assert row["ChangedDate"][-6:] in ("-05:00", "-04:00")


def test_filter_literals_with_the_header_are_taken_as_given(client):
    row = client.json(*PO, query(top=1, skip=10))["value"][0]
    stamp = datetime.fromisoformat(row["ChangedDate"].replace("Z", "+00:00"))
    as_plus_two = stamp.astimezone(timezone(timedelta(hours=2))).isoformat()
    for literal in (row["ChangedDate"], as_plus_two):
        found = client.json(*PO, query(filter=f"ChangedDate eq {literal}"))["value"]
        assert row["OrderNo"] in [r["OrderNo"] for r in found]


def test_filter_literals_without_the_header_are_local_wall_clock(client):
    row = client.json(*PO, query(top=1, skip=10), utc=False)["value"][0]
    wall_clock = row["ChangedDate"][:19]
    for literal in (wall_clock, wall_clock + "Z"):  # the offset is ignored: IFS reads the tenant's local time
        found = client.json(*PO, query(filter=f"ChangedDate eq {literal}"), utc=False)["value"]
        assert row["OrderNo"] in [r["OrderNo"] for r in found]
    found = client.json(*PO, query(filter=f"ChangedDate eq {wall_clock}Z"), utc=True)["value"]
    assert row["OrderNo"] not in [r["OrderNo"] for r in found]
