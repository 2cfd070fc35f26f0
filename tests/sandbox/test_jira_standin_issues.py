"""Issues on the Jira stand-in: create, read, edit, transition, comment and bulk create, with Jira's own checks and
messages, over real HTTP."""

from __future__ import annotations

import re

import pytest
import requests

import jira_standin_client as standin
from mlc_sandbox.jira import JiraSandbox

ADF = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "PO 4711"}]}]}
JIRA_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$")


api, jira = standin.api, standin.jira  # fixtures


def purchase_order(**fields) -> dict:
    return {"fields": {"project": {"key": "PUR"}, "issuetype": {"name": "Purchase Order"}, "summary": "PO 4711",
                       **fields}}


def create(api, body: dict) -> requests.Response:
    return api.post(f"{api.base}/issue", json=body)


def refused(answer: requests.Response) -> dict:
    assert answer.status_code == 400, answer.text
    return answer.json()["errors"]


def test_create_get_edit_and_render(jira, api):
    fields = jira.field_ids()
    answer = create(api, purchase_order(**{fields["IFS Key"]: "PO-4711", fields["Order Amount"]: 1250.5,
                                           fields["IFS Link"]: "https://ifs.example.com/po/4711",
                                           "labels": ["ifs", "po"], "description": ADF,
                                           "priority": {"name": "High"},
                                           "assignee": {"accountId": "5b10ac8d82e05b22cc7d4e01"}}))
    assert answer.status_code == 201
    created = answer.json()
    assert created["key"] == "PUR-1" and created["self"].endswith(f"/rest/api/3/issue/{created['id']}")
    issue = api.get(f"{api.base}/issue/PUR-1").json()
    f = issue["fields"]
    assert f["summary"] == "PO 4711"
    assert f["status"]["name"] == "To Do" and f["status"]["statusCategory"]["key"] == "new"
    assert f["issuetype"]["name"] == "Purchase Order" and f["project"]["key"] == "PUR"
    assert f["priority"] == {**f["priority"], "id": "2", "name": "High"}
    assert f["assignee"]["emailAddress"] == "anna.berg@example.com"
    assert f["labels"] == ["ifs", "po"] and f["description"] == ADF
    assert f[fields["IFS Key"]] == "PO-4711" and f[fields["Order Amount"]] == 1250.5
    assert JIRA_TIME.match(f["created"]) and f["created"].endswith(("+0100", "+0200"))  # Europe/Stockholm

    assert api.put(f"{api.base}/issue/{created['id']}",
                   json={"fields": {"summary": "PO 4711 (changed)", "assignee": None}}).status_code == 204
    edited = api.get(f"{api.base}/issue/PUR-1", params={"fields": "summary,assignee,labels,updated"}).json()
    assert set(edited["fields"]) == {"summary", "assignee", "labels", "updated"}
    assert edited["fields"]["summary"] == "PO 4711 (changed)" and edited["fields"]["assignee"] is None
    assert edited["fields"]["labels"] == ["ifs", "po"]  # fields not sent are untouched
    assert edited["fields"]["updated"] > f["updated"]
    assert jira.violations() == []


def test_keys_count_per_project_and_defaults_apply(api):
    assert create(api, purchase_order()).json()["key"] == "PUR-1"
    task = create(api, {"fields": {"project": {"id": "10001"}, "issuetype": {"id": "10001"}, "summary": "Pump"}})
    assert task.json()["key"] == "MNT-1"
    assert create(api, purchase_order()).json()["key"] == "PUR-2"
    fields = api.get(f"{api.base}/issue/MNT-1").json()["fields"]
    assert fields["priority"]["name"] == "Medium" and fields["assignee"] is None
    assert fields["reporter"]["emailAddress"] == "mlc-bot@example.com" and fields["description"] is None


@pytest.mark.parametrize("body, field, message", [
    ({"fields": {"project": {"key": "NOPE"}, "issuetype": {"name": "Task"}, "summary": "x"}},
     "project", "Specify a valid project ID or key"),
    ({"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Purchase Order"}, "summary": "x"}},
     "issuetype", "Specify a valid issue type"),
    (purchase_order(summary=None), "summary", "You must specify a summary of the issue."),
    ({"fields": {"project": {"key": "PUR"}, "issuetype": {"name": "Task"}}},
     "summary", "You must specify a summary of the issue."),
    (purchase_order(summary="x" * 256), "summary", "Summary must be less than 255 characters."),
    (purchase_order(summary="two\nlines"), "summary",
     "The summary is invalid because it contains newline characters."),
    (purchase_order(customfield_1="x"), "customfield_1",
     "Field 'customfield_1' cannot be set. It is not on the appropriate screen, or unknown."),
    (purchase_order(priority={"name": "Urgent"}), "priority", "The priority selected is invalid."),
    (purchase_order(priority={"id": "9"}), "priority", "The priority selected is invalid."),
    (purchase_order(assignee={"accountId": "5b10ac8d82e05b22cc7d0000"}), "assignee",
     "Specified user does not exist or you do not have required permissions"),
    (purchase_order(labels=["has space"]), "labels", "The label 'has space' contains spaces which is invalid."),
    (purchase_order(description="plain text"), "description",
     "Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
    (purchase_order(description={"type": "doc", "version": 1, "content": [{"type": "bogus"}]}), "description",
     "Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
    (purchase_order(environment={"type": "paragraph"}), "environment",
     "Operation value must be an Atlassian Document (see the Atlassian Document Format)"),
    (purchase_order(duedate="25.11.2026"), "duedate", "Error parsing date string: 25.11.2026"),
])
def test_create_refusals_name_the_field_with_jiras_message(api, body, field, message):
    answer = create(api, body)
    assert answer.json()["errorMessages"] == [] if answer.status_code == 400 else True
    assert refused(answer)[field] == message


def test_custom_field_checks_use_the_fields_name(jira, api):
    ids = jira.field_ids()
    errors = refused(create(api, purchase_order(**{
        ids["IFS Key"]: "K" * 256, ids["Order Amount"]: "12", ids["IFS Link"]: "not a url",
        ids["GL Account"]: 4010})))
    assert errors == {
        ids["IFS Key"]: "IFS Key: The entered text is too long. It exceeds the allowed limit of 255 characters.",
        ids["Order Amount"]: "Order Amount: Operation value must be a number",
        ids["IFS Link"]: "IFS Link: Not a valid URL",
        ids["GL Account"]: "GL Account: Operation value must be a string"}
    assert jira.issues() == []  # nothing half-created


def test_field_ids_follow_the_base_option():
    with JiraSandbox(port=0, field_id_base=12000) as jira:
        fields = requests.get(f"{jira.base_url}/rest/api/3/field", auth=(jira.email, jira.api_token)).json()
    by_name = {f["name"]: f for f in fields}
    assert by_name["IFS Key"]["id"] == "customfield_12000" and by_name["IFS Key"]["custom"] is True
    assert by_name["Order Amount"]["id"] == "customfield_12004"
    assert by_name["Order Amount"]["schema"]["type"] == "number"
    assert "cf[12000]" in by_name["IFS Key"]["clauseNames"]


def test_transitions_follow_the_workflow(jira, api):
    create(api, purchase_order())
    listed = api.get(f"{api.base}/issue/PUR-1/transitions").json()["transitions"]
    assert [(t["id"], t["name"], t["to"]["name"]) for t in listed] == [
        ("21", "Start progress", "In Progress"), ("31", "Done", "Done")]
    before = api.get(f"{api.base}/issue/PUR-1").json()["fields"]["updated"]
    assert api.post(f"{api.base}/issue/PUR-1/transitions", json={"transition": {"id": "21"}}).status_code == 204
    after = api.get(f"{api.base}/issue/PUR-1").json()["fields"]
    assert after["status"]["name"] == "In Progress" and after["status"]["statusCategory"]["key"] == "indeterminate"
    assert after["updated"] > before
    wrong = api.post(f"{api.base}/issue/PUR-1/transitions", json={"transition": {"id": "41"}})
    assert wrong.status_code == 400
    assert wrong.json() == {"errorMessages": ["Transition id '41' is not valid for this issue."], "errors": {}}
    assert api.post(f"{api.base}/issue/PUR-1/transitions", json={"transition": {"id": "31"}}).status_code == 204
    done = api.get(f"{api.base}/issue/PUR-1").json()["fields"]
    assert done["status"]["statusCategory"]["key"] == "done" and done["resolution"]["name"] == "Done"
    assert [t["id"] for t in api.get(f"{api.base}/issue/PUR-1/transitions").json()["transitions"]] == ["41"]
    assert jira.violations() == []


def test_admin_moves_an_issue_as_a_person_would(jira, api):
    create(api, purchase_order())
    before = jira.issue("PUR-1")["fields"]["updated"]
    moved = jira.transition("PUR-1", "Done")
    assert moved["fields"]["status"]["name"] == "Done" and moved["fields"]["updated"] > before
    back = jira.transition("PUR-1", "In Progress")  # Done -> Reopen -> Start progress
    assert back["fields"]["status"]["name"] == "In Progress" and back["fields"]["resolution"] is None
    assert [i["key"] for i in jira.issues()] == ["PUR-1"]


def test_comments_need_adf_and_move_updated(jira, api):
    create(api, purchase_order())
    before = api.get(f"{api.base}/issue/PUR-1").json()["fields"]["updated"]
    plain = api.post(f"{api.base}/issue/PUR-1/comment", json={"body": "plain text"})
    assert refused(plain) == {"comment": "Operation value must be an Atlassian Document (see the Atlassian "
                                         "Document Format)"}
    answer = api.post(f"{api.base}/issue/PUR-1/comment", json={"body": ADF})
    assert answer.status_code == 201 and answer.json()["body"] == ADF
    assert JIRA_TIME.match(answer.json()["created"])
    issue = api.get(f"{api.base}/issue/PUR-1").json()["fields"]
    assert issue["updated"] > before and issue["comment"]["total"] == 1
    assert api.get(f"{api.base}/issue/PUR-1/comment").json()["comments"][0]["body"] == ADF
    assert jira.violations() == []


def test_missing_issue_is_404(api):
    answer = api.get(f"{api.base}/issue/PUR-99")
    assert answer.status_code == 404
    assert answer.json()["errorMessages"] == ["Issue does not exist or you do not have permission to see it."]
    assert api.put(f"{api.base}/issue/PUR-99", json={"fields": {"summary": "x"}}).status_code == 404


def test_edit_checks_and_label_updates(api):
    create(api, purchase_order(labels=["ifs"]))
    assert refused(api.put(f"{api.base}/issue/PUR-1", json={"fields": {"project": {"key": "OPS"}}})) == {
        "project": "Field 'project' cannot be set. It is not on the appropriate screen, or unknown."}
    assert refused(api.put(f"{api.base}/issue/PUR-1", json={"fields": {"summary": ""}})) == {
        "summary": "You must specify a summary of the issue."}
    assert api.put(f"{api.base}/issue/PUR-1", json={"update": {"labels": [{"add": "po"}, {"remove": "ifs"}]}}
                   ).status_code == 204
    assert api.get(f"{api.base}/issue/PUR-1").json()["fields"]["labels"] == ["po"]


def test_bulk_create_reports_the_bad_element_and_creates_the_rest(jira, api):
    answer = api.post(f"{api.base}/issue/bulk", json={"issueUpdates": [
        purchase_order(summary="first"), purchase_order(summary=""), purchase_order(summary="third")]})
    assert answer.status_code == 201
    body = answer.json()
    assert [i["key"] for i in body["issues"]] == ["PUR-1", "PUR-2"]
    assert body["errors"] == [{"status": 400, "failedElementNumber": 1, "elementErrors": {
        "errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}}]
    assert [i["fields"]["summary"] for i in jira.issues()] == ["first", "third"]
    all_bad = api.post(f"{api.base}/issue/bulk", json={"issueUpdates": [purchase_order(summary="")]})
    assert all_bad.status_code == 400 and all_bad.json()["errors"][0]["failedElementNumber"] == 0
    too_many = api.post(f"{api.base}/issue/bulk", json={"issueUpdates": [purchase_order()] * 51})
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["elementErrors"]["errorMessages"] == [
        "Bulk create is limited to 50 issues."]
    assert len(jira.issues()) == 2
    assert jira.violations() == []


def test_site_catalogue_endpoints(jira, api):
    projects = api.get(f"{api.base}/project/search").json()
    assert [(p["key"], p["name"]) for p in projects["values"]] == [
        ("PUR", "Procurement"), ("MNT", "Maintenance"), ("OPS", "Operations")]
    pur = api.get(f"{api.base}/project/PUR").json()
    assert [t["name"] for t in pur["issueTypes"]] == ["Task", "Purchase Order"]
    missing = api.get(f"{api.base}/project/XYZ")
    assert missing.status_code == 404
    assert missing.json()["errorMessages"] == ["No project could be found with key 'XYZ'."]
    types = api.get(f"{api.base}/issue/createmeta/MNT/issuetypes").json()["issueTypes"]
    assert [t["name"] for t in types] == ["Task", "Work Order"]
    work_order = next(t for t in types if t["name"] == "Work Order")
    meta = api.get(f"{api.base}/issue/createmeta/MNT/issuetypes/{work_order['id']}").json()["fields"]
    required = {m["fieldId"] for m in meta if m["required"] and not m["hasDefaultValue"]}
    assert required == {"project", "issuetype", "summary"}
    assert {m["name"] for m in meta} >= {"IFS Key", "GL Account", "Cost Center", "IFS Link", "Order Amount"}
    statuses = api.get(f"{api.base}/project/MNT/statuses").json()
    assert [(t["name"], [s["name"] for s in t["statuses"]]) for t in statuses] == [
        ("Task", ["To Do", "In Progress", "Done"]), ("Work Order", ["To Do", "In Progress", "Done"])]
    assert api.get(f"{api.base}/project/XYZ/statuses").status_code == 404
    priorities = api.get(f"{api.base}/priority").json()
    assert [(p["id"], p["name"]) for p in priorities] == [
        ("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest")]
    assert [p["name"] for p in priorities if p["isDefault"]] == ["Medium"]
    found = api.get(f"{api.base}/user/search", params={"query": "lars"}).json()
    assert [u["emailAddress"] for u in found] == ["lars.holm@example.com"]
    by_name = api.get(f"{api.base}/user/search", params={"query": "Maria Li"}).json()
    assert [u["displayName"] for u in by_name] == ["Maria Lind"]
    assert len(api.get(f"{api.base}/user/search", params={"query": "e"}).json()) >= 1
    assert jira.violations() == []
