"""The Jira stand-in's guards: the per-user rate limit (429 with Retry-After), injected faults, requests that violate
the official OpenAPI document (400, listed in /_admin/violations), no response violations in a normal flow, and the
stand-in as a child process (`mlc-sandbox serve jira`)."""

from __future__ import annotations

import math
import time

import pytest
import requests

import jira_standin_client as standin
from mlc_sandbox.jira import JiraSandbox, JiraSandboxProcess

ADF = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "note"}]}]}


jira = standin.jira  # fixture
session_for = standin.session_for


def test_rate_limit_answers_429_with_retry_after():
    with JiraSandbox(port=0, rate_limit=5) as jira:
        api = session_for(jira)
        started = time.monotonic()
        answers = [api.get(f"{api.base}/myself") for _ in range(6)]
        elapsed = time.monotonic() - started
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[0].headers["X-RateLimit-Limit"] == "5"
        assert answers[4].headers["X-RateLimit-Remaining"] == "0"
        throttled = answers[5]
        # until the first of the minute's requests leaves the window: a minute less the time they took (whole seconds)
        assert 60 - math.ceil(elapsed) - 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert throttled.headers["X-RateLimit-Remaining"] == "0" and "X-RateLimit-Reset" in throttled.headers
        assert throttled.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
        jira.change_settings(rate_limit=0)
        assert api.get(f"{api.base}/myself").status_code == 200
        assert [r["status"] for r in jira.requests()][-2:] == [429, 200]


def test_injected_faults(jira):
    api = session_for(jira)
    jira.throttle(count=1, retry_after=7, path="/search/jql")
    assert api.get(f"{api.base}/myself").status_code == 200  # the fault aims at search only
    throttled = api.post(f"{api.base}/search/jql", json={"jql": "project = PUR"})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    jira.add_fault("status", count=2, status=503)
    assert [api.get(f"{api.base}/myself").status_code for _ in range(3)] == [503, 503, 200]
    jira.add_fault("drop")
    with pytest.raises(requests.ConnectionError):
        api.get(f"{api.base}/myself")
    jira.add_fault("delay", delay_seconds=0.2)
    assert api.get(f"{api.base}/myself").status_code == 200
    jira.add_fault("status", status=500, api="oauth")
    token = requests.post(jira.token_url, json={"grant_type": "refresh_token", "client_id": jira.client_id,
                                                "client_secret": jira.client_secret,
                                                "refresh_token": jira.refresh_token})
    assert token.status_code == 500
    assert [r["fault"] for r in jira.requests() if r["fault"]] == ["rate_limit", "status", "status", "drop", "delay",
                                                                   "status"]
    jira.add_fault("status")
    jira.clear_faults()
    assert api.get(f"{api.base}/myself").status_code == 200


@pytest.mark.parametrize("method, path, body, params", [
    ("POST", "/search/jql", {"jql": "project = PUR", "maxResults": "fifty"}, None),
    ("POST", "/search/jql", {"jql": "project = PUR", "unknownOption": True}, None),
    ("GET", "/search/jql", None, {"jql": "project = PUR", "maxResults": "many"}),
    ("POST", "/issue", {"fields": ["summary"]}, None),
    ("POST", "/issue/PUR-1/transitions", {"transition": "21"}, None),
])
def test_requests_that_violate_the_spec_are_400_and_listed(jira, method, path, body, params):
    api = session_for(jira)
    answer = api.request(method, f"{api.base}{path}", json=body, params=params)
    assert answer.status_code == 400
    assert answer.json()["errors"] == {} and answer.json()["errorMessages"][0]
    violations = jira.violations()
    assert [(v["method"], v["path"], v["kind"]) for v in violations] == [(method, f"/rest/api/3{path}", "request")]
    assert violations[0]["message"] == answer.json()["errorMessages"][0]
    jira.clear_violations()
    assert jira.violations() == []


def test_a_whole_flow_leaves_no_response_violations(jira):
    """Every endpoint the connectors use, through Basic on the site and Bearer on the gateway."""
    api = session_for(jira)
    ids = jira.field_ids()
    tokens = requests.post(jira.token_url, data={"grant_type": "refresh_token", "client_id": jira.client_id,
                                                 "client_secret": jira.client_secret,
                                                 "refresh_token": jira.refresh_token}).json()
    gateway = requests.Session()
    gateway.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    for session, base in ((api, api.base), (gateway, f"{jira.api_url}/rest/api/3")):
        for path in ("/myself", "/field", "/priority", "/project/search", "/project/PUR",
                     "/issue/createmeta/PUR/issuetypes", "/issue/createmeta/PUR/issuetypes/10002",
                     "/user/search?query=erik"):
            assert session.get(f"{base}{path}").status_code == 200, path
        created = session.post(f"{base}/issue", json={"fields": {
            "project": {"key": "PUR"}, "issuetype": {"id": "10002"}, "summary": "PO 1", "description": ADF,
            ids["IFS Key"]: "PO-1", ids["Order Amount"]: 10, ids["IFS Link"]: "https://ifs.example.com/po/1"}})
        key = created.json()["key"]
        assert session.put(f"{base}/issue/{key}", json={"fields": {ids["Cost Center"]: "CC-10"}}).status_code == 204
        assert session.get(f"{base}/issue/{key}").status_code == 200
        assert session.get(f"{base}/issue/{key}/transitions").status_code == 200
        assert session.post(f"{base}/issue/{key}/transitions", json={"transition": {"id": "31"}}).status_code == 204
        assert session.post(f"{base}/issue/{key}/comment", json={"body": ADF}).status_code == 201
        assert session.get(f"{base}/issue/{key}/comment").status_code == 200
        assert session.post(f"{base}/issue/bulk", json={"issueUpdates": [
            {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "t"}},
            {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Nope"}, "summary": "t"}}]}
        ).status_code == 201
        assert session.post(f"{base}/search/jql", json={"jql": '"IFS Key" ~ "PO-1"', "fields": ["*all"]}
                            ).status_code == 200
        assert session.get(f"{base}/search/jql", params={"jql": "project = OPS", "fields": "key"}).status_code == 200
        assert session.get(f"{base}/issue/NOPE-1").status_code == 404
        assert session.post(f"{base}/issue", json={"fields": {"summary": "x"}}).status_code == 400
    assert jira.violations() == []
    assert len(jira.issues()) == 4


def test_the_child_process_serves_the_same_contract():
    with JiraSandboxProcess(port=0, rate_limit=0, field_id_base=11000) as jira:
        api = session_for(jira)
        assert jira.field_ids()["IFS Key"] == "customfield_11000"
        created = api.post(f"{api.base}/issue", json={"fields": {
            "project": {"key": "MNT"}, "issuetype": {"name": "Work Order"}, "summary": "WO 1",
            "customfield_11000": "WO-1"}})
        assert created.status_code == 201
        jira.transition("MNT-1", "Done")
        found = api.post(f"{api.base}/search/jql", json={"jql": "cf[11000] ~ WO-1 AND status = Done",
                                                         "fields": ["status"]}).json()["issues"]
        assert [i["key"] for i in found] == ["MNT-1"]
        assert jira.violations() == []
