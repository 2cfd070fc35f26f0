"""IFS Cloud ⇄ Jira end to end through Meltano, against the IFS and Jira stand-ins: purchase and work orders become one
issue each (mapped in mappers/jira.meltano.yml), changes in IFS update that issue, Jira status flows back into IFS with
ETags (a concurrent change in IFS included), the loop never churns, and a lost audit trail never yields a second issue.
Every request the Jira stand-in saw is checked against Jira's official OpenAPI document."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections import Counter

import pytest

from ml_connector_core.audit import AuditTrail
from mlc_sandbox.jira import JiraSandbox
from support.ifs import CLIENT_SECRET
from support.meltano import PROJECT_ROOT, meltano_run
from support.sealed import sealed_env
from support.singer import BIN

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

PO_SVC = "PurchaseOrderHandling"
WO_SVC = "ActiveWorkOrdersHandling"
IFS_TO_JIRA = ["tap-ifscloud-jira", "jira-issue-fields", "target-jira"]
JIRA_TO_IFS = ["tap-jiracloud", "jira-status-to-ifs", "target-ifscloud-jira"]
# as in meltano.yml's sandbox environment
PRIORITY_OF_TIER = {"STRATEGIC": "Highest", "PREFERRED": "High", "STANDARD": "Medium", "SPOT": "Low"}


@pytest.fixture
def jira():
    with JiraSandbox(port=0, field_id_base=20300) as stand_in:  # ids unlike the defaults: resolved by name or fail
        yield stand_in


@pytest.fixture
def env(ifs, jira, tmp_path) -> dict:
    return pipeline_env(ifs, jira, tmp_path)


def pipeline_env(ifs, jira, tmp_path) -> dict:
    audit = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    return sealed_env({
        **os.environ,
        "TAP_IFSCLOUD_BASE_URL": ifs.base_url, "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_JIRA_BASE_URL": jira.base_url, "TARGET_JIRA_API_TOKEN": jira.api_token, "TARGET_JIRA_AUDIT_URL": audit,
        "TAP_JIRACLOUD_BASE_URL": jira.base_url, "TAP_JIRACLOUD_API_TOKEN": jira.api_token,
        "TARGET_IFSCLOUD_BASE_URL": ifs.base_url, "TARGET_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_IFSCLOUD_AUDIT_URL": audit,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        # the "Open in IFS" links of the jira-issue-fields mapping (meltano.yml reads the stand-in's URL from it)
        "MLC_SANDBOX_IFS_URL": ifs.base_url,
    })



def jira_writes(jira) -> list[dict]:
    return [r for r in jira.requests() if r["method"] in ("POST", "PUT") and "/search/" not in r["path"]]


def ifs_writes(ifs) -> list[dict]:
    return [r for r in ifs.requests_log() if r.get("kind") == "data" and r["method"] in ("PATCH", "POST")]


def issues_by_ifs_key(jira) -> dict[str, list[dict]]:
    field = jira.field_ids()["IFS Key"]
    found: dict[str, list[dict]] = {}
    for issue in jira.issues():
        found.setdefault(issue["fields"][field], []).append(issue)
    return found


def test_orders_become_one_issue_each_and_jira_status_flows_back_without_churn(ifs, jira, env):
    meltano_run(env, IFS_TO_JIRA)
    orders = ifs.all_rows(PO_SVC, "PurchaseOrderSet", ["OrderNo"])
    work_orders = ifs.all_rows(WO_SVC, "ActiveSeparateSet", ["WoNo"])
    issues = issues_by_ifs_key(jira)
    expected = {f"PurchaseOrder:{o['OrderNo']}" for o in orders} | {f"WorkOrder:{w['WoNo']}" for w in work_orders}
    assert set(issues) == expected and all(len(found) == 1 for found in issues.values())

    fields = jira.field_ids()
    order = next(o for o in orders if o["Cf_Supplier_Tier"] == "STRATEGIC" and o["Objstate"] != "Closed")
    [issue] = issues[f"PurchaseOrder:{order['OrderNo']}"]
    assert issue["fields"]["project"]["key"] == "PUR" and issue["fields"]["issuetype"]["name"] == "Purchase Order"
    assert issue["fields"]["priority"]["name"] == "Highest"
    assert issue["fields"]["assignee"]["emailAddress"] == "anna.berg@example.com"
    assert issue["fields"][fields["GL Account"]] == order["Cf_Gl_Account"]
    assert issue["fields"][fields["Cost Center"]] == order["Cf_Cost_Center"]
    assert order["OrderNo"] in issue["fields"][fields["IFS Link"]]
    assert Counter(i["fields"]["priority"]["name"] for o in orders for i in issues[f"PurchaseOrder:{o['OrderNo']}"]) \
        == Counter(PRIORITY_OF_TIER[o["Cf_Supplier_Tier"]] for o in orders)
    closed = [o for o in orders if o["Objstate"] == "Closed"]
    assert closed and all(issues[f"PurchaseOrder:{o['OrderNo']}"][0]["fields"]["status"]["name"] == "Done" for o in closed)
    work_issue = issues[f"WorkOrder:{work_orders[0]['WoNo']}"][0]
    assert work_issue["fields"]["project"]["key"] == "MNT" and work_issue["fields"]["issuetype"]["name"] == "Work Order"

    # A change in IFS updates the one issue, and only it.
    jira.admin("DELETE", "requests")
    ifs.change("PurchaseOrderSet", {"OrderNo": order["OrderNo"]}, {"Cf_Cost_Center": "CC-MOVED"})
    meltano_run(env, IFS_TO_JIRA)
    writes = jira_writes(jira)
    assert [(w["method"], w["path"]) for w in writes] == [("PUT", f"/rest/api/3/issue/{issue['key']}")]
    assert jira.issue(issue["key"])["fields"][fields["Cost Center"]] == "CC-MOVED"

    # Jira status back into IFS, with the ETag read just before.
    jira.transition(issue["key"], "In Progress")
    ifs.clear_requests()
    meltano_run(env, JIRA_TO_IFS)
    stored = ifs.get(PO_SVC, f"PurchaseOrderSet('{order['OrderNo']}')")
    assert (stored["Cf_Jira_Key"], stored["Cf_Jira_Status"]) == (issue["key"], "In Progress")
    patches = [r for r in ifs_writes(ifs) if f"('{order['OrderNo']}')" in r["path"]]
    assert len(patches) == 1 and patches[0]["method"] == "PATCH" and patches[0]["headers"]["If-Match"].startswith('W/"')
    work_stored = ifs.get(WO_SVC, f"ActiveSeparateSet({work_orders[0]['WoNo']})")
    assert work_stored["Cf_Jira_Key"] == work_issue["key"] and work_stored["Cf_Jira_Status"] == "To Do"

    # The loop: the write-back moved every IFS change timestamp, yet nothing Jira cares about changed, and Jira
    # itself did not change: neither direction writes anything.
    jira.admin("DELETE", "requests")
    meltano_run(env, IFS_TO_JIRA)
    assert jira_writes(jira) == []
    ifs.clear_requests()
    meltano_run(env, JIRA_TO_IFS)
    assert ifs_writes(ifs) == []
    assert all(len(found) == 1 for found in issues_by_ifs_key(jira).values())
    assert jira.violations() == []  # every request and answer valid against Jira's official OpenAPI document


def test_a_lost_audit_trail_and_state_never_yield_a_second_issue(ifs, jira, env, tmp_path):
    meltano_run(env, IFS_TO_JIRA)
    count = len(jira.issues())
    (tmp_path / "audit.sqlite").unlink()
    (tmp_path / "meltano.db").unlink()  # the bookmarks too: every order is read and sent again
    jira.admin("DELETE", "requests")
    meltano_run(env, IFS_TO_JIRA)
    assert len(jira.issues()) == count
    assert jira_writes(jira) == []  # found by the IFS key on the issues, and nothing differed
    assert jira.violations() == []


def test_a_change_in_ifs_between_read_and_write_is_settled_by_etag(ifs, jira, env):
    """The writer reads a purchase order, someone edits it in IFS before the PATCH arrives: IFS answers 412, the
    writer reads again and, since the fields it owns were left alone, applies the Jira status on top of that edit."""
    meltano_run(env, IFS_TO_JIRA)
    order_no = ifs.all_rows(PO_SVC, "PurchaseOrderSet", ["OrderNo"])[0]["OrderNo"]
    [issue] = issues_by_ifs_key(jira)[f"PurchaseOrder:{order_no}"]
    jira.transition(issue["key"], "In Progress")
    entity = f"PurchaseOrderSet('{order_no}')"
    ifs.clear_requests()
    ifs.fault("delay", 1, delay_seconds=4, method="PATCH", path_contains=entity)
    writer = subprocess.Popen([str(BIN / "meltano"), "run", *JIRA_TO_IFS], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(r["method"] == "GET" and r["path"].endswith(entity) for r in ifs.requests_log()):
        assert writer.poll() is None and time.monotonic() < deadline, "the writer never read the order"
        time.sleep(0.05)
    ifs.change("PurchaseOrderSet", {"OrderNo": order_no}, {"NoteText": "edited in IFS meanwhile"})
    _, stderr = writer.communicate(timeout=600)
    assert writer.returncode == 0, stderr[-4000:]

    attempts = [(r["method"], r["status"]) for r in ifs.requests_log() if r["path"].endswith(entity)]
    assert attempts == [("GET", 200), ("PATCH", 412), ("GET", 200), ("PATCH", 200)]
    stored = ifs.get(PO_SVC, entity)
    assert (stored["NoteText"], stored["Cf_Jira_Status"]) == ("edited in IFS meanwhile", "In Progress")


def test_one_meltano_run_of_both_flows_names_the_audit_runs_by_its_run_id(ifs, jira, env):
    """`MELTANO_RUN_ID=<uuid> meltano run` of both flows in one go: each target's audit run is named by Meltano's run id
    (the second suffixed, as run ids are unique), and the Jira tap's `issues` stream, which the map does not route to
    IFS, raises no warning."""
    meltano_run_id = str(uuid.uuid4())
    completed = meltano_run({**env, "MELTANO_RUN_ID": meltano_run_id}, [*IFS_TO_JIRA, *JIRA_TO_IFS])
    assert f"run ID '{meltano_run_id}'" in completed.stderr  # Meltano's own log names the same id
    with AuditTrail(env["TARGET_JIRA_AUDIT_URL"]) as trail:
        assert sorted((run.run_id, run.plugin) for run in trail.runs()) == [
            (meltano_run_id, "target-jira"), (f"{meltano_run_id}-2", "target-ifscloud")]
    assert "not in the streams setting" not in completed.stderr


def test_both_directions_over_tls_trusting_the_ca_through_ca_bundle(start_ifs, sandbox_tls, tmp_path):
    """IFS and Jira serve HTTPS with a certificate of a CA that only each plugin's ca_bundle names (REQUESTS_CA_BUNDLE
    stays the machine's bundle): tap-ifscloud, target-jira, tap-jiracloud and target-ifscloud all trust it."""
    ifs = start_ifs(tls=sandbox_tls)
    with JiraSandbox(port=0, field_id_base=20300, **sandbox_tls.server_options) as jira:
        ca_bundle = str(sandbox_tls.ca_file)
        env = {**pipeline_env(ifs, jira, tmp_path), "TAP_IFSCLOUD_CA_BUNDLE": ca_bundle,
               "TARGET_JIRA_CA_BUNDLE": ca_bundle, "TAP_JIRACLOUD_CA_BUNDLE": ca_bundle,
               "TARGET_IFSCLOUD_CA_BUNDLE": ca_bundle}
        assert ifs.base_url.startswith("https://") and jira.base_url.startswith("https://")
        meltano_run(env, IFS_TO_JIRA)
        orders = ifs.all_rows(PO_SVC, "PurchaseOrderSet", ["OrderNo"])
        issues = issues_by_ifs_key(jira)
        assert {f"PurchaseOrder:{o['OrderNo']}" for o in orders} <= set(issues)
        order = next(o for o in orders if o["Objstate"] != "Closed")
        [issue] = issues[f"PurchaseOrder:{order['OrderNo']}"]
        jira.transition(issue["key"], "In Progress")
        meltano_run(env, JIRA_TO_IFS)
        stored = ifs.get(PO_SVC, f"PurchaseOrderSet('{order['OrderNo']}')")
        assert (stored["Cf_Jira_Key"], stored["Cf_Jira_Status"]) == (issue["key"], "In Progress")
        assert jira.violations() == []
