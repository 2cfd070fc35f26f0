"""target-jira against the Jira stand-in over real HTTP: issues created from mapped IFS records, never a second issue
for one IFS key (reruns, lost audit trail), only changed fields PUT, statuses moved, Jira's refusals audited."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from ml_connector_core.secrets import generate_key, is_sealed, unseal
from mlc_sandbox.jira import JiraSandbox
from support.replay import replay_the_failed_run
from support.singer import record_message, run_target, schema_message

ADF_SCHEMA = Path("/work/shared/specs/atlassian-document-format-v1.schema.json")
FIELD_BASE = 20300  # not the stand-in's default: ids must be resolved by name

TEXT = {"type": ["string", "null"]}
RECORD_SCHEMA = {
    "ifs_key": {"type": ["string"]}, "summary": {"type": ["string"]}, "project_key": TEXT, "company": TEXT,
    "site": TEXT, "issue_type": TEXT, "tier_or_category": TEXT, "gl_account": TEXT, "cost_center": TEXT,
    "amount": {"type": ["number", "null"]}, "currency": TEXT, "status": TEXT, "ifs_url": TEXT,
    "description_fields": {"type": ["object", "string", "null"]},
}


def purchase_order(no: str, *, company: str = "10", tier: str = "Tier 1", amount: str = "1500.5", status: str = "Released",
                   summary: str | None = None, **extra) -> dict:
    return {
        "ifs_key": f"PurchaseOrder:{no}", "summary": summary or f"Purchase order {no} from ACME Tools",
        "company": company, "site": "S1", "tier_or_category": tier, "gl_account": "4010", "cost_center": "CC100",
        "amount": Decimal(amount), "currency": "SEK", "status": status,
        "ifs_url": f"https://acme.ifs.cloud/main/ifsapplications/web/page/PurchaseOrder/Form?OrderNo={no}",
        "description_fields": {"Supplier": "ACME Tools (S10001)", "Buyer": "ERIK"}, **extra,
    }


@pytest.fixture
def jira():
    with JiraSandbox(port=0, field_id_base=FIELD_BASE) as stand_in:
        yield stand_in
        assert stand_in.violations() == []


def config_for(jira, tmp_path, **extra) -> dict:
    return {
        "base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token,
        "projects": [{"company": "20", "project": "OPS"}, {"stream": "jira_work_orders", "project": "MNT"}],
        "default_project": "PUR",
        "issue_types": {"jira_purchase_orders": "Purchase Order", "jira_work_orders": "Work Order"},
        "priorities": {"Tier 1": "High", "Tier 3": "Low"},
        "assignees": {"Tier 1": "anna.berg@example.com", "Tier 3": "Lars Holm"},
        "status_transitions": {"Closed": "Done"},
        "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
        **extra,
    }


def send(tmp_path, config, records, stream="jira_purchase_orders", **kwargs):
    messages = [schema_message(stream, RECORD_SCHEMA, ["ifs_key"])]
    messages += [record_message(stream, r) for r in records]
    messages.append({"type": "STATE", "value": {"bookmarks": {stream: {"replication_key_value": "x"}}}})
    return run_target(tmp_path, config, messages, executable="target-jira", **kwargs)


def writes(jira) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in jira.requests() if r["method"] in ("POST", "PUT")
            and "/search/jql" not in r["path"] and not r["path"].startswith("/_admin")]


def operations(config, run_index=-1) -> dict:
    trail = AuditTrail(config["audit_url"])
    run = trail.runs()[0 if run_index == -1 else run_index]
    return {**run.operations, **{f"outcome:{k}": v for k, v in run.outcomes.items()}}


def test_records_become_issues_with_resolved_fields_priority_assignee_and_a_valid_description(jira, tmp_path):
    config = config_for(jira, tmp_path)
    run = send(tmp_path, config, [purchase_order("P1000123"), purchase_order("P1000124", tier="Tier 3", company="20", issue_type="Task"),
                                  purchase_order("P1000125", tier="Tier 9",
                                                                 description_fields='{"Supplier": "Beta AB"}')])
    assert run.states[-1] == {"bookmarks": {"jira_purchase_orders": {"replication_key_value": "x"}}}
    ids = jira.field_ids()
    assert ids["IFS Key"] == f"customfield_{FIELD_BASE}"
    by_key = {i["fields"][ids["IFS Key"]]: i for i in jira.issues()}
    assert sorted(by_key) == ["PurchaseOrder:P1000123", "PurchaseOrder:P1000124", "PurchaseOrder:P1000125"]

    first = by_key["PurchaseOrder:P1000123"]
    fields = first["fields"]
    assert first["key"].startswith("PUR-")
    assert fields["issuetype"]["name"] == "Purchase Order"
    assert fields["summary"] == "Purchase order P1000123 from ACME Tools"
    assert fields["priority"]["name"] == "High"
    assert fields["assignee"]["emailAddress"] == "anna.berg@example.com"
    assert fields["labels"] == ["ifs-PurchaseOrder-P1000123"]
    assert fields[ids["GL Account"]] == "4010" and fields[ids["Cost Center"]] == "CC100"
    assert fields[ids["IFS Link"]].endswith("OrderNo=P1000123")
    assert Decimal(str(fields[ids["Order Amount"]])) == Decimal("1500.5")

    jsonschema.Draft4Validator(json.loads(ADF_SCHEMA.read_text())).validate(fields["description"])
    text = json.dumps(fields["description"])
    assert "1,500.50 SEK" in text and "ACME Tools (S10001)" in text and "Tier 1" in text
    link = fields["description"]["content"][1]["content"][0]["marks"][0]
    assert link == {"type": "link", "attrs": {"href": fields[ids["IFS Link"]]}}

    other = by_key["PurchaseOrder:P1000124"]["fields"]
    assert other["project"]["key"] == "OPS" and other["issuetype"]["name"] == "Task"
    assert other["priority"]["name"] == "Low" and other["assignee"]["displayName"] == "Lars Holm"
    unmapped = by_key["PurchaseOrder:P1000125"]["fields"]
    assert unmapped["priority"]["name"] == "Medium" and unmapped["assignee"] is None
    assert "Beta AB" in json.dumps(unmapped["description"])  # description_fields as JSON text, as stream maps give it
    assert operations(config)["insert"] == 3


def test_rerun_writes_nothing_and_a_change_puts_only_the_changed_fields(jira, tmp_path):
    config = config_for(jira, tmp_path)
    records = [purchase_order("P1"), purchase_order("P2")]
    send(tmp_path, config, records)
    before = len(writes(jira))
    send(tmp_path, config, records)
    assert len(writes(jira)) == before  # nothing Jira cares about changed: no request at all
    assert operations(config) == {"unchanged": 2, "outcome:succeeded": 2}

    trail_rows = len(list(AuditTrail(config["audit_url"]).entries()))
    send(tmp_path, config, [purchase_order("P1", amount="1750"), purchase_order("P2")])
    new_writes = writes(jira)[before:]
    [(method, path)] = new_writes
    assert method == "PUT"
    ids = jira.field_ids()
    [update] = [e for e in AuditTrail(config["audit_url"]).entries()][trail_rows:][:1]
    assert update.operation == "update" and update.destination == path.rsplit("/", 1)[-1]
    # Only the amount field and the description (which shows the amount) were sent.
    assert set(update.payload["fields"]) == {ids["Order Amount"], "description"}
    assert update.payload["fields"][ids["Order Amount"]] == 1750
    assert update.source["ifs_key"] == "PurchaseOrder:P1"


def test_a_lost_audit_trail_never_yields_a_second_issue(jira, tmp_path):
    config = config_for(jira, tmp_path)
    send(tmp_path, config, [purchase_order("P1"), purchase_order("P2")])
    (tmp_path / "audit.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"audit.sqlite{suffix}").unlink(missing_ok=True)
    send(tmp_path, config, [purchase_order("P1"), purchase_order("P2"), purchase_order("P3")])
    keys = sorted(i["fields"][jira.field_ids()["IFS Key"]] for i in jira.issues())
    assert keys == ["PurchaseOrder:P1", "PurchaseOrder:P2", "PurchaseOrder:P3"]
    assert operations(config) == {"unchanged": 2, "insert": 1, "outcome:succeeded": 3}


def test_one_search_per_hundred_keys_and_bulk_creates_of_fifty(jira, tmp_path):
    # Bullet lists: the stand-in checks every description against the ADF schema, and tables cost it 0.4 s each.
    config = config_for(jira, tmp_path, requests_per_minute=6000, description_layout="bullets")
    send(tmp_path, config, [purchase_order(f"P{n:04d}") for n in range(120)])
    calls = [(r["method"], r["path"]) for r in jira.requests()]
    assert calls.count(("POST", "/rest/api/3/search/jql")) == 2  # batches of 100 and 20
    assert calls.count(("POST", "/rest/api/3/issue/bulk")) == 3  # 50 + 50, then 20
    issues = jira.issues()
    assert len(issues) == 120
    jsonschema.Draft4Validator(json.loads(ADF_SCHEMA.read_text())).validate(issues[0]["fields"]["description"])
    assert issues[0]["fields"]["description"]["content"][2]["type"] == "bulletList"


def test_a_refused_bulk_element_fails_alone_with_jiras_message_and_is_redone_next_run(jira, tmp_path):
    config = config_for(jira, tmp_path)
    bad = purchase_order("P2", ifs_url="not a url")
    send(tmp_path, config, [purchase_order("P1"), bad, purchase_order("P3")], expected_exit=EXIT_UNDELIVERED)
    assert len(jira.issues()) == 2
    trail = AuditTrail(config["audit_url"])
    [failure] = list(trail.failures())
    assert failure.key == {"ifs_key": "PurchaseOrder:P2"} and failure.operation == "insert"
    assert "IFS Link: Not a valid URL" in failure.error
    assert failure.source["ifs_url"] == "not a url"

    # The mapping is fixed; the record is not sent again, yet the next run redoes it first.
    config["status_transitions"] = {"Closed": "Done"}
    send(tmp_path, config, [purchase_order("P1")], expected_exit=EXIT_UNDELIVERED)
    assert len(jira.issues()) == 2  # still refused: the failed source is what is redone
    # Once IFS sends a corrected record it is created, and the earlier failure counts as replayed.
    send(tmp_path, config, [purchase_order("P2")])
    assert len(jira.issues()) == 3
    send(tmp_path, config, [])
    assert list(AuditTrail(config["audit_url"]).failures()) == []


def test_ifs_status_moves_the_issue_through_the_workflow_once(jira, tmp_path):
    config = config_for(jira, tmp_path)
    send(tmp_path, config, [purchase_order("P1", status="Closed"), purchase_order("P2")])
    statuses = {i["fields"]["labels"][0]: i["fields"]["status"]["name"] for i in jira.issues()}
    assert statuses == {"ifs-PurchaseOrder-P1": "Done", "ifs-PurchaseOrder-P2": "To Do"}
    before = len(writes(jira))
    send(tmp_path, config, [purchase_order("P1", status="Closed"), purchase_order("P2", status="Closed")])
    new = writes(jira)[before:]
    # P1 is already Done: nothing. P2's description shows the IFS status, so it is PUT, then moved to Done.
    p2 = next(i["key"] for i in jira.issues() if i["fields"]["labels"] == ["ifs-PurchaseOrder-P2"])
    assert new == [("PUT", f"/rest/api/3/issue/{p2}"), ("POST", f"/rest/api/3/issue/{p2}/transitions")]
    assert {i["fields"]["status"]["name"] for i in jira.issues()} == {"Done"}


def test_429_with_retry_after_is_waited_out(jira, tmp_path):
    config = config_for(jira, tmp_path)
    jira.throttle(count=2, retry_after=1)
    send(tmp_path, config, [purchase_order("P1")])
    assert len(jira.issues()) == 1
    assert [r["status"] for r in jira.requests()].count(429) == 2


def test_oauth_refresh_token_rotation_across_runs(jira, tmp_path):
    token_file = tmp_path / "jira-refresh-token"
    config = config_for(jira, tmp_path, email=None, api_token=None, oauth_client_id=jira.client_id,
                        oauth_client_secret=jira.client_secret, oauth_refresh_token=jira.refresh_token,
                        oauth_refresh_token_file=str(token_file), oauth_token_url=jira.token_url,
                        oauth_api_url=jira.base_url)
    config = {k: v for k, v in config.items() if v is not None}
    key = {"MLC_SECRET_KEY": generate_key()}  # the file keeps a live credential: sealed, never plain
    send(tmp_path, config, [purchase_order("P1")], env=key)
    rotated = token_file.read_text().strip()
    assert is_sealed(rotated) and unseal(rotated, key=key["MLC_SECRET_KEY"].encode()) != jira.refresh_token
    assert token_file.stat().st_mode & 0o777 == 0o600
    # The configured refresh token has been used: the second run must take the rotated one from the file.
    send(tmp_path, config, [purchase_order("P1", amount="99"), purchase_order("P2")], env=key)
    assert len(jira.issues()) == 2
    assert token_file.read_text().strip() != rotated
    assert any("/ex/jira/" in r["path"] for r in jira.requests())
    trail_text = (tmp_path / "audit.sqlite").read_bytes()
    assert jira.client_secret.encode() not in trail_text


def test_a_refresh_token_file_without_a_key_is_refused_before_the_token_is_rotated(jira, tmp_path):
    """The file would hold a live credential in plain: the run stops first, while the configured token is unused."""
    token_file = tmp_path / "jira-refresh-token"
    config = {k: v for k, v in config_for(jira, tmp_path, email=None, api_token=None, oauth_client_id=jira.client_id,
                                          oauth_client_secret=jira.client_secret, oauth_refresh_token=jira.refresh_token,
                                          oauth_refresh_token_file=str(token_file), oauth_token_url=jira.token_url,
                                          oauth_api_url=jira.base_url).items() if v is not None}
    run = send(tmp_path, config, [purchase_order("P1")], env={"MLC_SECRET_KEY": "", "MLC_SECRET_KEY_FILE": ""},
               check=False)
    assert run.returncode == 1 and not token_file.exists() and jira.issues() == []
    assert "oauth_refresh_token_file keeps the rotated OAuth refresh token, sealed, but no key is available" in run.stderr
    assert [r for r in jira.requests() if "token" in r["path"]] == []  # the configured refresh token is still good


def test_a_record_without_a_project_stops_the_run_and_names_it(jira, tmp_path):
    config = config_for(jira, tmp_path)
    del config["default_project"]
    run = send(tmp_path, config, [purchase_order("P1")], check=False)
    assert run.returncode != 0
    assert "PurchaseOrder:P1" in run.stderr and "no Jira project for company '10'" in run.stderr
    assert run.states == []
    assert jira.issues() == []


def test_a_replay_of_a_run_jira_refused_creates_each_issue_once(jira, tmp_path):
    config = config_for(jira, tmp_path, max_tries=2)
    jira.add_fault("status", count=1000, status=503, method="POST", path="/rest/api/3/issue/bulk")
    failed = send(tmp_path, config, [purchase_order(f"P{n}") for n in range(5)], check=False)
    assert failed.returncode != 0 and jira.issues() == []
    replay_the_failed_run(tmp_path, "target-jira", config, jira, failed=5)
    assert sorted(i["fields"]["labels"][0] for i in jira.issues()) == [f"ifs-PurchaseOrder-P{n}" for n in range(5)]
    send(tmp_path, config, [purchase_order(f"P{n}") for n in range(5)])  # the tap's rerun of the same records
    assert len(jira.issues()) == 5
