"""The Jira stand-in driven by the `jira` package (3.10), the client most Python users pick, as they would use it
against Jira Cloud: with its defaults (REST API v2: rich text as wiki markup strings) and with
options={"rest_api_version": "3"} (rich text as Atlassian Document Format documents), signed in with email + API token
on the site URL, or with an OAuth 2.0 (3LO) access token through the /ex/jira/<cloudid> gateway.

Every test ends with the stand-in's spec check holding: no answer the stand-in gave strays from the official
document, and no request the package sent was refused by it unless the test says so."""

from __future__ import annotations

import pytest
import requests
from jira import JIRA, JIRAError

from mlc_sandbox.jira import JiraSandbox

VERSIONS = ["2", "3"]
ADF_REFUSAL = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


def adf(*paragraphs: list[dict]) -> dict:
    return {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": p} for p in paragraphs]}


def text(value: str, *marks: str) -> dict:
    node = {"type": "text", "text": value}
    if marks:
        node["marks"] = [{"type": m} for m in marks]
    return node


@pytest.fixture
def jira():
    with JiraSandbox(port=0, rate_limit=0) as sandbox:
        yield sandbox
        assert sandbox.violations() == [], "the stand-in's spec check found a stray exchange"


def client(jira, version: str | None = None, **auth) -> JIRA:
    """The package as a user sets it up: the site URL and Basic auth with email + API token (its default API version
    when `version` is None)."""
    options = {"rest_api_version": version} if version else None
    auth = auth or {"basic_auth": (jira.email, jira.api_token)}
    return JIRA(server=auth.pop("server", jira.base_url), options=options, **auth)


def new_issue(jira_client: JIRA, summary: str = "Follow up PO-1001", **fields):
    return jira_client.create_issue(project="PUR", summary=summary, issuetype={"name": "Task"}, **fields)


def paths(jira) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in jira.requests()]


# connecting

def test_default_settings_speak_rest_api_v2_and_connect(jira):
    default = client(jira)

    info = default.server_info()
    assert info["deploymentType"] == "Cloud" and default._is_cloud
    assert info["baseUrl"] == jira.base_url
    assert info["versionNumbers"][0] == 1001
    assert default.myself()["emailAddress"] == jira.email
    assert "GET /rest/api/2/serverInfo" in paths(jira)  # asked on connect, as against Jira Cloud
    assert not any("/rest/api/3/" in p for p in paths(jira))


@pytest.mark.parametrize("version", VERSIONS)
def test_server_info_needs_no_credentials_but_wrong_ones_are_refused(jira, version):
    anonymous = JIRA(server=jira.base_url, options={"rest_api_version": version})
    assert anonymous.server_info()["deploymentType"] == "Cloud"
    with pytest.raises(JIRAError) as refused:
        anonymous.myself()
    assert refused.value.status_code == 401

    with pytest.raises(JIRAError) as wrong:
        client(jira, version, basic_auth=(jira.email, "not-the-token"))  # connecting asks serverInfo
    assert wrong.value.status_code == 401
    assert "You are not authenticated" in wrong.value.text


@pytest.mark.parametrize("version", VERSIONS)
def test_oauth_access_token_through_the_gateway(jira, version):
    granted = requests.post(jira.token_url, json={
        "grant_type": "refresh_token", "client_id": jira.client_id, "client_secret": jira.client_secret,
        "refresh_token": jira.refresh_token}).json()
    bearer = client(jira, version, server=jira.api_url, token_auth=granted["access_token"])

    assert bearer.server_info()["baseUrl"] == jira.base_url  # the site, not the gateway
    created = new_issue(bearer)
    assert created.self == f"{jira.api_url}/rest/api/{version}/issue/{created.id}"
    assert [i.key for i in bearer.search_issues("project = PUR")] == [created.key]
    created.update(fields={"summary": "Edited through the gateway"})  # PUT to the issue's own self link
    assert jira.issue(created.key)["fields"]["summary"] == "Edited through the gateway"

    on_site_url = client(jira, version, token_auth=granted["access_token"], get_server_info=False)
    with pytest.raises(JIRAError) as refused:  # Bearer tokens are for api.atlassian.com only
        on_site_url.myself()
    assert refused.value.status_code == 401


def test_only_the_versions_cloud_serves(jira):
    auth = (jira.email, jira.api_token)
    for version in ("2", "latest"):
        me = requests.get(f"{jira.base_url}/rest/api/{version}/myself", auth=auth)
        assert me.status_code == 200
        assert me.json()["self"].startswith(f"{jira.base_url}/rest/api/2/user?")
    unknown = requests.get(f"{jira.base_url}/rest/api/4/myself", auth=auth)
    assert unknown.status_code == 404


# projects

@pytest.mark.parametrize("version", VERSIONS)
def test_projects_lists_every_project(jira, version):
    jira_client = client(jira, version)

    projects = jira_client.projects()
    assert [(p.key, p.name) for p in projects] == [("PUR", "Procurement"), ("MNT", "Maintenance"),
                                                    ("OPS", "Operations")]
    assert projects[0].self == f"{jira.base_url}/rest/api/{version}/project/10000"
    assert not hasattr(projects[0], "issueTypes")  # only when expanded
    expanded = jira_client.projects(expand="issueTypes,lead")
    assert [t.name for t in expanded[1].issueTypes] == ["Task", "Work Order"]
    assert expanded[1].lead.emailAddress == jira.email

    one = jira_client.project("MNT")
    assert (one.id, one.name) == ("10001", "Maintenance")
    with pytest.raises(JIRAError) as unknown:
        jira_client.project("XYZ")
    assert unknown.value.status_code == 404


# issues

def test_create_fetch_and_update_with_v2_wiki_markup(jira):
    jira_client = client(jira)
    ifs_key = jira.field_ids()["IFS Key"]
    amount = jira.field_ids()["Order Amount"]

    created = jira_client.create_issue(
        project="PUR", issuetype="Purchase Order", summary="PO-1001 awaits approval",  # key and type by name
        description="h2. Order PO-1001\n\nSupplier *ACME*\nsee [IFS|https://ifs.example.com/po/1001]",
        labels=["ifs", "approval"], **{ifs_key: "PO-1001", amount: 1250.5})

    assert created.key == "PUR-1"
    assert created.self == f"{jira.base_url}/rest/api/2/issue/{created.id}"
    assert created.fields.issuetype.name == "Purchase Order"
    assert created.fields.status.name == "To Do"
    assert created.fields.description == ("h2. Order PO-1001\n\nSupplier *ACME*\n"
                                          "see [IFS|https://ifs.example.com/po/1001]")
    assert getattr(created.fields, ifs_key) == "PO-1001"
    assert getattr(created.fields, amount) == 1250.5

    stored = jira.issue("PUR-1")["fields"]["description"]  # what v3 shows: the same text as a document
    assert stored["content"][0] == {"type": "heading", "attrs": {"level": 2},
                                    "content": [{"type": "text", "text": "Order PO-1001"}]}
    assert stored["content"][1]["content"][1] == {"type": "text", "text": "ACME", "marks": [{"type": "strong"}]}

    created.update(fields={"summary": "PO-1001 approved"}, update={"labels": [{"add": "approved"},
                                                                             {"remove": "approval"}]})
    assert created.fields.summary == "PO-1001 approved"  # the package reloads the issue after the PUT
    assert created.fields.labels == ["ifs", "approved"]
    created.update(description="Approved by _Anna_")
    assert jira_client.issue("PUR-1").fields.description == "Approved by _Anna_"
    created.update(description="")  # an empty string clears it
    assert jira_client.issue("PUR-1").fields.description is None

    with pytest.raises(JIRAError) as refused:
        created.update(description={"type": "doc", "version": 1, "content": []})  # a document is not v2's
    assert refused.value.status_code == 400
    assert refused.value.response.json()["errors"] == {"description": "Operation value must be a string"}

    fields_only = jira_client.issue("PUR-1", fields="summary,status")
    assert set(fields_only.raw["fields"]) == {"summary", "status"}


def test_create_fetch_and_update_with_v3_documents(jira):
    jira_client = client(jira, "3")
    description = adf([text("Supplier "), text("ACME", "strong")])

    created = new_issue(jira_client, description=description)
    assert created.self == f"{jira.base_url}/rest/api/3/issue/{created.id}"
    assert created.raw["fields"]["description"] == description

    with pytest.raises(JIRAError) as refused:
        new_issue(jira_client, description="plain text, as v2 takes it")
    assert refused.value.status_code == 400
    assert refused.value.response.json()["errors"] == {"description": ADF_REFUSAL}

    created.update(fields={"summary": "Renamed", "priority": {"name": "High"}})
    assert (created.fields.summary, created.fields.priority.name) == ("Renamed", "High")
    assert client(jira).issue(created.key).fields.description == "Supplier *ACME*"  # what v2 shows


WIKI_SAMPLE = """h1. Purchase order PO-1001

Supplier *ACME AB*, buyer _Anna Berg_, order {{PO-1001}} -cancelled- +confirmed+
Link: [IFS Cloud|https://ifs.example.com/po/1001] and [https://example.com/terms]

* first line
** first line, detail
* second line

# step one
# step two

{code:sql}
SELECT * FROM purchase_order
{code}

bq. Quoted from the supplier

----

Regards"""


def test_wiki_markup_is_kept_as_a_document_both_versions_read(jira):
    from mlc_sandbox.jira.spec import AdfValidator

    v2, v3 = client(jira), client(jira, "3")
    issue = new_issue(v2, description=WIKI_SAMPLE)

    assert v2.issue(issue.key).fields.description == WIKI_SAMPLE
    document = v3.issue(issue.key).raw["fields"]["description"]
    assert AdfValidator().is_document(document)
    assert [block["type"] for block in document["content"]] == [
        "heading", "paragraph", "bulletList", "orderedList", "codeBlock", "blockquote", "rule", "paragraph"]

    # what wiki markup cannot say reaches v2 as text: a table's cells, a mention as [~accountid:...]
    anna = jira.info()["account_ids"]["anna.berg@example.com"]
    rich = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [text("Ask "), {"type": "mention", "attrs": {"id": anna}}]},
        {"type": "table", "content": [{"type": "tableRow", "content": [
            {"type": "tableCell", "content": [{"type": "paragraph", "content": [text("cell")]}]}]}]}]}
    v3.issue(issue.key).update(fields={"description": rich})
    assert v2.issue(issue.key).fields.description == f"Ask [~accountid:{anna}]\n\ncell"


def test_latest_is_v2_with_its_own_self_link(jira):
    latest = client(jira, "latest")

    created = new_issue(latest, description="Line one\nline *two*")
    assert created.self == f"{jira.base_url}/rest/api/latest/issue/{created.id}"
    assert created.fields.project.self == f"{jira.base_url}/rest/api/2/project/10000"
    assert created.fields.description == "Line one\nline *two*"
    assert latest.add_comment(created, "From latest").body == "From latest"
    assert latest.approximate_issue_count("project = PUR") == 1


# workflow

@pytest.mark.parametrize("version", VERSIONS)
def test_transitions_by_id_and_by_name(jira, version):
    jira_client = client(jira, version)
    issue = new_issue(jira_client)

    assert [(t["id"], t["name"], t["to"]["name"]) for t in jira_client.transitions(issue)] == [
        ("21", "Start progress", "In Progress"), ("31", "Done", "Done")]

    jira_client.transition_issue(issue, "21")  # the package sends the id as a number: {"transition": {"id": 21}}
    assert jira_client.issue(issue.key).fields.status.name == "In Progress"
    jira_client.transition_issue(issue, "done")  # by name, looked up in the issue's transitions
    done = jira_client.issue(issue.key)
    assert done.fields.status.name == "Done"
    assert done.fields.resolution.name == "Done"

    with pytest.raises(JIRAError) as unavailable:
        jira_client.transition_issue(issue, "21")  # from Done only Reopen (41) leads on
    assert unavailable.value.status_code == 400
    assert unavailable.value.response.json()["errorMessages"] == ["Transition id '21' is not valid for this issue."]
    with pytest.raises(JIRAError, match="Invalid transition name"):
        jira_client.transition_issue(issue, "Start progress")


def test_transition_id_as_number_or_string_but_not_as_anything_else(jira):
    session = requests.Session()
    session.auth = (jira.email, jira.api_token)
    api = f"{jira.base_url}/rest/api/3"
    key = session.post(f"{api}/issue", json={"fields": {"project": {"key": "PUR"}, "issuetype": {"name": "Task"},
                                                         "summary": "Workflow"}}).json()["key"]

    assert session.post(f"{api}/issue/{key}/transitions", json={"transition": {"id": 21}}).status_code == 204
    assert session.post(f"{api}/issue/{key}/transitions", json={"transition": {"id": "31"}}).status_code == 204
    assert jira.issue(key)["fields"]["status"]["name"] == "Done"

    refused = session.post(f"{api}/issue/{key}/transitions", json={"transition": {"id": True}})
    assert refused.status_code == 400
    assert "is not of type 'string'" in refused.json()["errorMessages"][0]
    assert [v["kind"] for v in jira.violations()] == ["request"]
    jira.clear_violations()


def test_transition_with_a_comment_v2_and_v3(jira):
    v2, v3 = client(jira), client(jira, "3")
    issue = new_issue(v2)

    v2.transition_issue(issue, "Done", comment="Closed in IFS as *PO-1001*")
    comments = v2.comments(issue)
    assert [c.body for c in comments] == ["Closed in IFS as *PO-1001*"]
    assert v3.comments(issue)[0].raw["body"] == adf([text("Closed in IFS as "), text("PO-1001", "strong")])

    with pytest.raises(JIRAError) as refused:  # the package sends the comment as a string, which v3 refuses
        v3.transition_issue(issue, "Reopen", comment="Reopened")
    assert refused.value.response.json()["errors"] == {"comment": ADF_REFUSAL}
    assert v3.issue(issue.key).fields.status.name == "Done"  # nothing of the refused transition happened
    assert len(v3.comments(issue)) == 1


# comments

def test_add_comment_with_v2_text(jira):
    jira_client = client(jira)
    issue = new_issue(jira_client)

    comment = jira_client.add_comment(issue, "Goods received.\nInvoice {{INV-7}} follows.")
    assert comment.body == "Goods received.\nInvoice {{INV-7}} follows."
    assert comment.author.emailAddress == jira.email
    assert [c.id for c in jira_client.comments(issue)] == [comment.id]
    stored = jira.issue(issue.key)["fields"]["comment"]["comments"][0]["body"]
    assert stored["content"][0]["content"][-2] == {"type": "text", "text": "INV-7", "marks": [{"type": "code"}]}

    with pytest.raises(JIRAError) as empty:
        jira_client.add_comment(issue, "   ")
    assert empty.value.response.json()["errors"] == {"comment": "Comment body can not be empty!"}

    issue.update(summary="Received", comment="Noted on the edit")  # the package puts it in update.comment
    assert issue.fields.summary == "Received"
    assert [c.body for c in jira_client.comments(issue)][-1] == "Noted on the edit"


def test_add_comment_with_v3_documents(jira):
    jira_client = client(jira, "3")
    issue = new_issue(jira_client)

    with pytest.raises(JIRAError) as refused:
        jira_client.add_comment(issue, "a plain string")
    assert refused.value.status_code == 400
    assert refused.value.response.json()["errors"] == {"comment": ADF_REFUSAL}

    body = adf([text("Goods received")])
    comment = jira_client.add_comment(issue, body)
    assert comment.raw["body"] == body
    assert client(jira).comment(issue.key, comment.id).body == "Goods received"


# search

@pytest.mark.parametrize("version", VERSIONS)
def test_search_issues_uses_enhanced_search_and_pages_with_tokens(jira, version):
    jira_client = client(jira, version)
    keys = [new_issue(jira_client, f"Order {n}").key for n in range(5)]
    client(jira, version).create_issue(project="MNT", summary="Pump", issuetype={"name": "Task"})
    jira.admin("DELETE", "requests")

    found = jira_client.search_issues("project = PUR ORDER BY key DESC")
    assert [i.key for i in found] == keys[::-1]
    assert found[0].fields.summary == "Order 4"  # every field by default (the package asks for *all)
    searches = [p for p in paths(jira) if "/search" in p]
    assert searches == [f"GET /rest/api/{version}/search/jql"]  # besides it, the package reads field names once

    first = jira_client.search_issues("project = PUR", maxResults=2, fields="summary")
    assert [i.key for i in first] == keys[:2]
    assert set(first[0].raw["fields"]) == {"summary"}
    rest = jira_client.enhanced_search_issues("project = PUR", nextPageToken=first.nextPageToken, maxResults=2,
                                              fields="summary")
    assert [i.key for i in rest] == keys[2:4]

    every = jira_client.search_issues("labels is EMPTY", maxResults=False)  # the package follows every token
    assert len(every) == 6
    posted = jira_client.search_issues('summary ~ "Order"', use_post=True)  # body has "expand": null, as Jira reads
    assert [i.key for i in posted] == keys
    as_json = jira_client.search_issues("key = PUR-1", json_result=True)
    assert as_json["isLast"] is True and as_json["issues"][0]["key"] == "PUR-1"

    with pytest.raises(JIRAError) as unbounded:
        jira_client.search_issues("order by created")
    assert unbounded.value.status_code == 400
    assert "Unbounded JQL queries are not allowed here" in unbounded.value.text


@pytest.mark.parametrize("version", VERSIONS)
def test_offset_search_is_gone_as_on_jira_cloud(jira, version):
    jira_client = client(jira, version)
    new_issue(jira_client)

    with pytest.raises(JIRAError, match="deprecated in Jira Cloud"):  # 3.10 stops before sending it
        jira_client.search_issues("project = PUR", startAt=1)
    with pytest.raises(JIRAError) as removed:  # the old resource itself, as an older client would call it
        jira_client._get_json("search", params={"jql": "project = PUR", "startAt": 0})
    assert removed.value.status_code == 410
    assert "Please migrate to the /rest/api/3/search/jql API" in removed.value.text


@pytest.mark.parametrize("version", VERSIONS)
def test_approximate_issue_count(jira, version):
    jira_client = client(jira, version)
    for n in range(3):
        new_issue(jira_client, f"Order {n}")
    jira_client.transition_issue("PUR-2", "Done")

    assert jira_client.approximate_issue_count("project = PUR") == 3
    assert jira_client.approximate_issue_count("project = PUR AND statusCategory = Done") == 1
    assert jira_client.approximate_issue_count("project = OPS") == 0
    assert jira_client.approximate_issue_count("project = PUR", json_result=True) == {"count": 3}
    with pytest.raises(JIRAError) as unbounded:
        jira_client.approximate_issue_count("order by key")
    assert unbounded.value.status_code == 400
    with pytest.raises(JIRAError) as unknown:
        jira_client.approximate_issue_count("project = XYZ")
    assert "The value 'XYZ' does not exist for the field 'project'." in unknown.value.text
