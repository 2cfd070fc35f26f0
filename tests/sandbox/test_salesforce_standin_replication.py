"""sObject Get Updated / Get Deleted on the Salesforce stand-in: the ids changed or deleted in a window whose seconds
are ignored, latestDateCovered, the one-minute and 30/15-day rules, and the refusal of a date it cannot read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import salesforce_standin_client as standin

api, sf = standin.api, standin.sf  # fixtures

DAY = 24 * 3600


def moment(rendered: str) -> datetime:
    """A datetime as the API renders it (2026-11-25T20:15:03.000+0000)."""
    return datetime.strptime(rendered, "%Y-%m-%dT%H:%M:%S.%f%z")


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def window(sf, api, kind, sobject, start: datetime, end: datetime):
    return api.get(f"{sf.api_url}/sobjects/{sobject}/{kind}", params={"start": iso(start), "end": iso(end)})


def test_updated_lists_changes_in_the_window_by_minute(sf, api):
    first = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "First"}).json()["id"]
    stamp = moment(sf.record("Account", first)["SystemModstamp"])
    sf.advance_clock(600)
    second = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "Second"}).json()["id"]
    sf.advance_clock(600)
    doomed = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "Doomed"}).json()["id"]
    api.delete(f"{sf.api_url}/sobjects/Account/{doomed}")
    sf.advance_clock(3600)
    minute = stamp.replace(second=0)
    everything = window(sf, api, "updated", "Account", minute, minute + timedelta(hours=1))
    assert everything.status_code == 200
    assert everything.json() == {"ids": [first, second],  # the deleted one is for `deleted`
                                 "latestDateCovered": (minute + timedelta(hours=1)).strftime(
                                     "%Y-%m-%dT%H:%M:00.000+0000")}
    # seconds are ignored: an end 59 seconds into the minute after the first change still ends before it
    just_first = window(sf, api, "updated", "Account", minute + timedelta(seconds=59),
                        minute + timedelta(minutes=1, seconds=59))
    assert just_first.json()["ids"] == [first]
    sf.edit("Account", first, {"Phone": "08-1"})  # a change now moves it out of the first minute
    assert window(sf, api, "updated", "Account", minute, minute + timedelta(minutes=1)).json()["ids"] == []


def test_latest_date_covered_stops_at_now(sf, api):
    created = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "First"}).json()["id"]
    stamp = moment(sf.record("Account", created)["SystemModstamp"])
    answer = window(sf, api, "updated", "Account", stamp - timedelta(hours=1), stamp + timedelta(days=2)).json()
    assert answer["ids"] == [created]
    covered, org_now = moment(answer["latestDateCovered"]), moment(sf.advance_clock(0))
    assert stamp.replace(second=0) <= covered <= org_now and covered.second == 0


def test_deleted_lists_deletions_with_their_dates(sf, api):
    account = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "Acme"}).json()["id"]
    order = api.post(f"{sf.api_url}/sobjects/Order", json={"AccountId": account, "EffectiveDate": "2026-12-01",
                                                          "Status": "Draft"}).json()["id"]
    start = moment(sf.record("Account", account)["SystemModstamp"]).replace(second=0)
    sf.advance_clock(120)
    assert api.delete(f"{sf.api_url}/sobjects/Account/{account}").status_code == 204  # its order goes with it
    deleted_at = sf.record("Account", account)["SystemModstamp"]
    sf.advance_clock(3600)
    orders = window(sf, api, "deleted", "Order", start, start + timedelta(hours=1)).json()
    assert orders["deletedRecords"] == [{"id": order, "deletedDate": deleted_at}]
    assert moment(orders["earliestDateAvailable"]) <= start
    assert orders["latestDateCovered"] == (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:00.000+0000")
    accounts = window(sf, api, "deleted", "Account", start, start + timedelta(hours=1)).json()
    assert [r["id"] for r in accounts["deletedRecords"]] == [account]
    assert window(sf, api, "updated", "Order", start, start + timedelta(hours=1)).json()["ids"] == []


def test_windows_salesforce_refuses(sf, api):
    now = moment(sf.advance_clock(0)).replace(second=0)
    too_short = window(sf, api, "updated", "Account", now, now + timedelta(seconds=59))
    assert too_short.status_code == 400
    assert too_short.json() == [{"message": "startDate must be at least one minute greater than endDate",
                                 "errorCode": "INVALID_REPLICATION_DATE"}]
    backwards = window(sf, api, "updated", "Account", now, now - timedelta(hours=1))
    assert backwards.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    too_old = window(sf, api, "updated", "Account", now - timedelta(days=31), now)
    assert too_old.status_code == 400 and "30 days" in too_old.json()[0]["message"]
    assert window(sf, api, "updated", "Account", now - timedelta(days=29), now).status_code == 200
    deleted_too_old = window(sf, api, "deleted", "Account", now - timedelta(days=16), now)
    assert deleted_too_old.status_code == 400 and "15 days" in deleted_too_old.json()[0]["message"]
    unencoded = api.get(f"{sf.api_url}/sobjects/Account/updated/?start={iso(now - timedelta(days=1))}"
                        f"&end={iso(now)}")  # a '+' sent as is reads as a space
    assert unencoded.status_code == 400
    assert unencoded.json()[0]["message"] == "start date is not in the correct format"
    missing_end = api.get(f"{sf.api_url}/sobjects/Account/updated", params={"start": iso(now)})
    assert missing_end.status_code == 400
    assert missing_end.json()[0]["message"] == "end date is not in the correct format"
    assert api.get(f"{sf.api_url}/sobjects/Nothing__c/updated", params={"start": iso(now)}).status_code == 404
    assert api.post(f"{sf.api_url}/sobjects/Account/updated").status_code == 405
