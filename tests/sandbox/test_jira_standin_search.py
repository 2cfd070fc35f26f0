"""JQL search on the Jira stand-in (POST and GET /rest/api/3/search/jql): the clauses, operators and values it reads,
dates in the API user's time zone to the minute, paging with nextPageToken, and Jira's refusals."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import requests

import jira_standin_client as standin
from mlc_sandbox.jira import JiraSandbox


api, jira = standin.api, standin.jira  # fixtures


def issue(project="PUR", issue_type="Purchase Order", summary="PO", **fields) -> dict:
    return {"fields": {"project": {"key": project}, "issuetype": {"name": issue_type}, "summary": summary, **fields}}


def create_all(api, *bodies) -> list[str]:
    keys = []
    for start in range(0, len(bodies), 50):
        answer = api.post(f"{api.base}/issue/bulk", json={"issueUpdates": list(bodies[start:start + 50])})
        assert answer.status_code == 201 and answer.json()["errors"] == [], answer.text
        keys += [i["key"] for i in answer.json()["issues"]]
    return keys


def search(api, jql: str, **options) -> requests.Response:
    return api.post(f"{api.base}/search/jql", json={"jql": jql, **options})


def keys(api, jql: str) -> list[str]:
    answer = search(api, jql, fields=["key"], maxResults=1000)
    assert answer.status_code == 200, answer.text
    return [i["key"] for i in answer.json()["issues"]]


@pytest.fixture
def populated(jira, api):
    ids = jira.field_ids()
    create_all(api,
               issue(summary="Pump order", labels=["ifs", "urgent"], priority={"name": "High"},
                     assignee={"accountId": "5b10ac8d82e05b22cc7d4e01"}, **{ids["IFS Key"]: "PO-1001"}),
               issue(summary="Valves", labels=["ifs"], **{ids["IFS Key"]: "PO-1002", ids["Order Amount"]: 500}),
               issue(project="MNT", issue_type="Work Order", summary="Repair pump", priority={"name": "Lowest"},
                     **{ids["IFS Key"]: "WO-77", ids["Order Amount"]: 1500}),
               issue(project="OPS", issue_type="Task", summary="Weekly review"))
    jira.transition("PUR-2", "Done")
    jira.transition("MNT-1", "In Progress")
    return ids


def test_clauses_operators_and_values(api, populated):
    assert keys(api, "project = PUR") == ["PUR-1", "PUR-2"]
    assert keys(api, "project in (Maintenance, OPS)") == ["MNT-1", "OPS-1"]
    assert keys(api, 'issuetype = "Purchase Order" AND status = "To Do"') == ["PUR-1"]
    assert keys(api, "statusCategory = done OR statusCategory = indeterminate") == ["PUR-2", "MNT-1"]
    assert keys(api, "statusCategory != Done and project not in (OPS)") == ["PUR-1", "MNT-1"]
    assert keys(api, "labels = ifs AND NOT labels = urgent") == ["PUR-2"]
    assert keys(api, "labels is EMPTY") == ["MNT-1", "OPS-1"]
    assert keys(api, "labels != urgent") == ["PUR-2"]  # as in Jira: an empty field never matches !=
    assert keys(api, "assignee = currentUser() OR assignee = 'anna.berg@example.com'") == ["PUR-1"]
    assert keys(api, "assignee is not EMPTY") == ["PUR-1"]
    assert keys(api, "priority > Medium") == ["PUR-1"]
    assert keys(api, "priority in (Lowest, 2)") == ["PUR-1", "MNT-1"]
    assert keys(api, '"IFS Key" ~ "PO-100"') == ["PUR-1", "PUR-2"]
    assert keys(api, "cf[10050] ~ WO-77") == ["MNT-1"]
    assert keys(api, '"IFS Key" is EMPTY') == ["OPS-1"]
    assert keys(api, '"Order Amount" >= 1000') == ["MNT-1"]
    assert keys(api, "summary ~ pump") == ["PUR-1", "MNT-1"]
    assert keys(api, "key = PUR-2 or issuekey in (MNT-1)") == ["PUR-2", "MNT-1"]
    assert keys(api, "key > PUR-1") == ["PUR-2"]
    assert keys(api, "(project = PUR OR project = MNT) AND (labels = urgent OR priority = Lowest)") == [
        "PUR-1", "MNT-1"]
    assert keys(api, "resolution is not EMPTY") == ["PUR-2"]



def test_value_lists_empty_values_and_mixed_kinds(api, populated):
    many_labels = ", ".join([f"absent-{n}" for n in range(150)] + ["urgent"])
    assert keys(api, f"labels in ({many_labels})") == ["PUR-1"]
    assert keys(api, f"labels not in ({many_labels})") == ["PUR-2"]
    assert keys(api, "labels in (EMPTY, urgent)") == ["PUR-1", "MNT-1", "OPS-1"]
    assert keys(api, "labels = EMPTY OR labels = urgent") == ["PUR-1", "MNT-1", "OPS-1"]
    assert keys(api, "resolution = Unresolved") == ["PUR-1", "MNT-1", "OPS-1"]
    assert keys(api, "resolution in (Unresolved, Done)") == ["PUR-1", "PUR-2", "MNT-1", "OPS-1"]
    assert keys(api, '"Order Amount" in (500, 1500.0)') == ["PUR-2", "MNT-1"]
    assert keys(api, '"Order Amount" not in (500)') == ["MNT-1"]
    assert keys(api, "id in (10000, 10002) AND key in (PUR-1, PUR-2, MNT-1)") == ["PUR-1", "MNT-1"]
    assert keys(api, "summary !~ pump") == ["PUR-2", "OPS-1"]
    assert keys(api, "assignee in (currentUser(), EMPTY) AND NOT project = OPS") == ["PUR-2", "MNT-1"]

def test_order_by(api, populated):
    assert keys(api, "project in (PUR, MNT) ORDER BY key DESC") == ["PUR-2", "PUR-1", "MNT-1"]
    assert keys(api, "project in (PUR, MNT) order by priority asc, key") == ["PUR-1", "PUR-2", "MNT-1"]
    assert keys(api, "project is not EMPTY ORDER BY created ASC") == ["PUR-1", "PUR-2", "MNT-1", "OPS-1"]
    assert keys(api, "project in (PUR, MNT, OPS)") == ["PUR-1", "PUR-2", "MNT-1", "OPS-1"]  # default: id ascending
    assert keys(api, "project is not EMPTY ORDER BY labels") == ["PUR-2", "PUR-1", "MNT-1", "OPS-1"]  # empty last
    assert keys(api, "project is not EMPTY ORDER BY updated") == ["MNT-1", "PUR-2", "OPS-1", "PUR-1"]  # dates: desc
    assert keys(api, "project is not EMPTY ORDER BY assignee, key DESC") == ["PUR-1", "PUR-2", "OPS-1", "MNT-1"]


@pytest.mark.parametrize("jql, message", [
    ('"IFS Key" = "PO-1001"', "The operator '=' is not supported by the 'IFS Key' field."),
    ("summary = x", "The operator '=' is not supported by the 'summary' field."),
    ("colour = red", "Field 'colour' does not exist or you do not have permission to view it."),
    ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
    ("status = Closed", "The value 'Closed' does not exist for the field 'status'."),
    ("updated >= '2026-13-40'", "Date value '2026-13-40' for field 'updated' is invalid. Valid formats include: "
                                "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
                                "format e.g. '-5d', '4w 2d'."),
    ("key = PUR-999", "An issue with key 'PUR-999' does not exist for field 'key'."),
    ("", "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."),
    ("order by key", "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."),
])
def test_refusals_with_jiras_messages(api, populated, jql, message):
    answer = search(api, jql)
    assert answer.status_code == 400
    assert answer.json() == {"errorMessages": [message], "errors": {}}


@pytest.mark.parametrize("jql", ["project = PUR AND", "project PUR", "project = 'PUR", "(project = PUR",
                                 "project = PUR labels = x", "project in PUR"])
def test_syntax_errors(api, populated, jql):
    answer = search(api, jql)
    assert answer.status_code == 400
    assert answer.json()["errorMessages"][0].startswith("Error in the JQL Query: ")


def test_fields_default_to_ids_and_can_be_chosen(jira, api, populated):
    only_ids = search(api, "project = PUR").json()["issues"]
    assert only_ids == [{"id": "10000"}, {"id": "10001"}]
    chosen = search(api, "project = PUR", fields=["summary", "status", populated["IFS Key"]]).json()["issues"][0]
    assert chosen["key"] == "PUR-1"
    assert set(chosen["fields"]) == {"summary", "status", populated["IFS Key"]}
    everything = search(api, "key = PUR-1", fields=["*all", "-comment"]).json()["issues"][0]["fields"]
    assert "comment" not in everything and "updated" in everything and populated["Order Amount"] in everything
    by_get = api.get(f"{api.base}/search/jql", params={"jql": "project = PUR", "fields": "summary,labels"})
    assert by_get.status_code == 200
    assert [set(i["fields"]) for i in by_get.json()["issues"]] == [{"summary", "labels"}] * 2
    assert jira.violations() == []


def test_paging_with_next_page_token(jira, api):
    create_all(api, *[issue(summary=f"PO {n}") for n in range(7)])
    seen, token, pages = [], None, 0
    while True:
        body = {"jql": "project = PUR ORDER BY key ASC", "maxResults": 3, "fields": ["summary"]}
        if token:
            body["nextPageToken"] = token
        page = api.post(f"{api.base}/search/jql", json=body).json()
        pages += 1
        seen += [i["key"] for i in page["issues"]]
        if page["isLast"]:
            assert "nextPageToken" not in page
            break
        token = page["nextPageToken"]
    assert pages == 3 and seen == [f"PUR-{n}" for n in range(1, 8)]
    by_get = api.get(f"{api.base}/search/jql", params={"jql": "project = PUR ORDER BY key ASC", "maxResults": 5})
    second = api.get(f"{api.base}/search/jql", params={"jql": "project = PUR ORDER BY key ASC", "maxResults": 5,
                                                       "nextPageToken": by_get.json()["nextPageToken"]})
    assert [i["id"] for i in second.json()["issues"]] == ["10005", "10006"] and second.json()["isLast"] is True
    foreign = search(api, "project = MNT", nextPageToken=token)
    assert foreign.status_code == 400
    assert jira.violations() == []


def test_page_size_caps(api):
    create_all(api, *[issue(summary=f"PO {n}") for n in range(120)])
    with_fields = search(api, "project = PUR", maxResults=500, fields=["summary"]).json()
    assert len(with_fields["issues"]) == 100 and with_fields["isLast"] is False
    ids_only = search(api, "project = PUR", maxResults=500, fields=["key"]).json()
    assert len(ids_only["issues"]) == 120 and ids_only["isLast"] is True
    default = search(api, "project = PUR").json()
    assert len(default["issues"]) == 50


def _minute(epoch_ms_text: str) -> datetime:
    return datetime.strptime(epoch_ms_text[:16], "%Y-%m-%dT%H:%M")


def test_dates_are_read_in_the_users_time_zone_to_the_minute(jira, api):
    """The issue's `updated` is shown in Stockholm time; a literal with the same wall-clock minute is that Stockholm
    minute. The same moment written as UTC wall-clock time is one or two hours earlier for Jira."""
    create_all(api, issue(summary="tz"))
    updated = api.get(f"{api.base}/issue/PUR-1").json()["fields"]["updated"]  # e.g. 2026-11-25T20:15:42.123+0100
    local_minute = _minute(updated)
    offset = timedelta(hours=int(updated[-4:-2]), minutes=int(updated[-2:])) * (1 if updated[-5] == "+" else -1)
    utc_minute = local_minute - offset
    fmt = "%Y-%m-%d %H:%M"
    within_minute = updated[17:23] != "00.000"  # updated after the minute's first millisecond
    assert keys(api, f'updated >= "{local_minute.strftime(fmt)}"') == ["PUR-1"]
    assert keys(api, f'updated > "{local_minute.strftime(fmt)}"') == (["PUR-1"] if within_minute else [])
    assert keys(api, f'updated >= "{(local_minute + timedelta(minutes=1)).strftime(fmt)}"') == []
    assert keys(api, f"updated >= '{local_minute.strftime('%Y/%m/%d %H:%M')}'") == ["PUR-1"]
    # a bookmark kept in UTC and sent as is: Jira reads it as Stockholm time, an hour or two too early
    assert keys(api, f'updated <= "{(utc_minute + timedelta(minutes=1)).strftime(fmt)}"') == []
    assert keys(api, f'updated >= "{local_minute.strftime("%Y-%m-%d")}"') == ["PUR-1"]
    assert keys(api, "updated >= -15m") == ["PUR-1"]
    assert keys(api, 'created < "-1d 2h"') == []


def test_dates_follow_another_user_time_zone():
    with JiraSandbox(port=0, rate_limit=0, user_time_zone="America/New_York") as jira:
        session = requests.Session()
        session.auth = (jira.email, jira.api_token)
        base = f"{jira.base_url}/rest/api/3"
        session.post(f"{base}/issue", json=issue(summary="ny"))
        updated = session.get(f"{base}/issue/PUR-1").json()["fields"]["updated"]
        assert updated.endswith(("-0500", "-0400"))
        minute = _minute(updated).strftime("%Y-%m-%d %H:%M")
        found = session.post(f"{base}/search/jql", json={"jql": f'updated >= "{minute}"', "fields": ["key"]})
        assert [i["key"] for i in found.json()["issues"]] == ["PUR-1"]


def test_the_retired_search_answers_410(api):
    for answer in (api.get(f"{api.base}/search", params={"jql": "project = PUR"}),
                   api.post(f"{api.base}/search", json={"jql": "project = PUR"})):
        assert answer.status_code == 410
        assert "/rest/api/3/search/jql" in answer.json()["errorMessages"][0]
