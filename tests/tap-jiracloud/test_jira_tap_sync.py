"""tap-jiracloud against the Jira stand-in over real HTTP: records, custom fields by name, incremental runs with the
bookmark in UTC while JQL dates are in the API user's zone, status changes made in Jira, OAuth."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import requests

from mlc_sandbox.jira import JiraSandbox
from ml_connector_core.secrets import generate_key, is_sealed, unseal
from support.singer import assert_a_state_every, run_tap
from tap_jiracloud.streams import issues_jql, jql_since

FIELD_BASE = 31000


@pytest.fixture
def jira():
    # West of UTC: a UTC bookmark written into JQL without conversion would be read 8 hours late and miss changes.
    with JiraSandbox(port=0, field_id_base=FIELD_BASE, user_time_zone="America/Los_Angeles") as stand_in:
        yield stand_in
        assert stand_in.violations() == []


def create_issue(jira, summary: str, ifs_key: str | None = None, project: str = "PUR", labels=("ifs",)) -> str:
    ids = jira.field_ids()
    fields = {"project": {"key": project}, "issuetype": {"name": "Task"}, "summary": summary, "labels": list(labels),
              ids["GL Account"]: "4010", ids["Order Amount"]: 1250.5}
    if ifs_key:
        fields[ids["IFS Key"]] = ifs_key
    response = requests.post(f"{jira.base_url}/rest/api/3/issue", json={"fields": fields},
                             auth=(jira.email, jira.api_token), timeout=30)
    response.raise_for_status()
    return response.json()["key"]


def config_for(jira, **extra) -> dict:
    return {"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token,
            "custom_fields": {"ifs_key": "IFS Key", "gl_account": "GL Account", "order_amount": "Order Amount"},
            **extra}


def tap(tmp_path, config, state=None, env=None):
    return run_tap(tmp_path, config, executable="tap-jiracloud", state=state, env=env)


def test_issues_with_custom_fields_by_name_and_a_utc_bookmark(jira, tmp_path):
    first = create_issue(jira, "Purchase order P1", "PurchaseOrder:P1")
    create_issue(jira, "Unrelated", labels=("other",))
    run = tap(tmp_path, config_for(jira, jql="labels = ifs"))
    schema = run.schema("issues")
    assert schema["key_properties"] == ["id"] and schema["bookmark_properties"] == ["updated"]
    assert schema["schema"]["properties"]["order_amount"]["type"] == ["number", "null"]
    [record] = run.records("issues")
    assert record["key"] == first and record["project_key"] == "PUR" and record["issue_type"] == "Task"
    assert record["status"] == "To Do" and record["status_category"] == "new" and record["priority"] == "Medium"
    assert record["ifs_key"] == "PurchaseOrder:P1" and record["gl_account"] == "4010"
    assert float(record["order_amount"]) == 1250.5
    assert record["labels"] == ["ifs"] and record["assignee_email"] is None
    rendered = jira.issue(first)["fields"]["updated"]  # Jira's format, in the user's zone
    expected = dt.datetime.strptime(rendered, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(dt.timezone.utc)
    assert record["updated"].endswith("Z")
    assert dt.datetime.fromisoformat(record["updated"].replace("Z", "+00:00")) == expected
    assert run.bookmark("issues") == record["updated"]


def test_second_run_returns_only_issues_changed_since_and_a_status_change_shows_up(jira, tmp_path):
    config = config_for(jira, lookback_minutes=0)
    keys = [create_issue(jira, f"PO {n}", f"PurchaseOrder:P{n}") for n in range(3)]
    first = tap(tmp_path, config)
    assert sorted(r["key"] for r in first.records("issues")) == sorted(keys)
    # The bookmark is at most a minute behind: issues changed within its minute are read again (>=, minute precision).
    second = tap(tmp_path, config, state=first.final_state)
    assert {r["key"] for r in second.records("issues")} <= set(keys)
    assert second.bookmark("issues") == first.bookmark("issues")  # never moves back

    # A bookmark after every change reads nothing.
    ahead = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    state = {"bookmarks": {"issues": {"replication_key": "updated", "replication_key_value": ahead}}}
    assert tap(tmp_path, config, state=state).records("issues") == []

    jira.transition(keys[1], "Done")
    later = jira.issue(keys[1])["fields"]["updated"]
    state = {"bookmarks": {"issues": {"replication_key": "updated",
                                      "replication_key_value": dt.datetime.strptime(later, "%Y-%m-%dT%H:%M:%S.%f%z")
                                      .astimezone(dt.timezone.utc).isoformat()}}}
    third = tap(tmp_path, config, state=state)
    changed = [r for r in third.records("issues") if r["key"] == keys[1]]
    assert changed and changed[-1]["status"] == "Done" and changed[-1]["status_category"] == "done"


def test_jql_dates_are_in_the_users_zone_not_utc(jira, tmp_path):
    create_issue(jira, "PO 1", "PurchaseOrder:P1")
    config = config_for(jira, lookback_minutes=0)
    run = tap(tmp_path, config)
    # The bookmark is UTC and the user is in Los Angeles (UTC-8): UTC wall-clock time read by Jira as Los Angeles time
    # lies 8 hours after the bookmark, and the second run would find nothing.
    again = tap(tmp_path, config, state=run.final_state)
    assert [r["key"] for r in again.records("issues")] == [r["key"] for r in run.records("issues")]
    moment = dt.datetime.fromisoformat(run.bookmark("issues").replace("Z", "+00:00"))
    user_zone = ZoneInfo("America/Los_Angeles")
    found = lambda since: requests.post(
        f"{jira.base_url}/rest/api/3/search/jql", json={"jql": issues_jql(None, since), "fields": ["key"]},
        auth=(jira.email, jira.api_token), timeout=30).json()["issues"]
    assert len(found(jql_since(moment, user_zone))) == 1
    one_minute_later = jql_since(moment + dt.timedelta(minutes=1), user_zone)
    assert found(one_minute_later) == []  # so the minute written is exactly the bookmark's, in the user's zone


def test_ambiguous_local_time_reads_an_hour_earlier():
    zone = ZoneInfo("Europe/Stockholm")
    # On 2026-10-25 Stockholm's clocks go back from 03:00 CEST to 02:00 CET: 02:00-02:59 happens twice, and Jira may
    # read "02:30" as either. Whichever it picks must not be after the bookmark.
    first_0230 = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.timezone.utc)   # 02:30 CEST
    second_0230 = dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.timezone.utc)  # 02:30 CET
    assert jql_since(first_0230, zone) == "2026-10-25 01:30"
    assert jql_since(second_0230, zone) == "2026-10-25 02:30"
    assert jql_since(dt.datetime(2026, 11, 25, 19, 15, 42, tzinfo=dt.timezone.utc), zone) == "2026-11-25 20:15"


def test_oauth_with_a_rotating_refresh_token(jira, tmp_path):
    create_issue(jira, "PO 1", "PurchaseOrder:P1")
    token_file = tmp_path / "refresh-token"
    config = {"base_url": jira.base_url, "oauth_client_id": jira.client_id, "oauth_client_secret": jira.client_secret,
              "oauth_refresh_token": jira.refresh_token, "oauth_refresh_token_file": str(token_file),
              "oauth_token_url": jira.token_url, "oauth_api_url": jira.base_url}
    key = {"MLC_SECRET_KEY": generate_key()}  # the file keeps a live credential: sealed, never plain
    first = tap(tmp_path, config, env=key)
    assert len(first.records("issues")) == 1
    assert jira.client_secret not in first.stderr and jira.refresh_token not in first.stderr
    rotated = token_file.read_text().strip()
    assert is_sealed(rotated) and unseal(rotated, key=key["MLC_SECRET_KEY"].encode()) != jira.refresh_token
    second = tap(tmp_path, config, state=first.final_state, env=key)  # the configured token is used up: the file's
    assert second.returncode == 0 and token_file.read_text().strip() != rotated


def test_a_missing_custom_field_is_a_clear_error(jira, tmp_path):
    config = config_for(jira, custom_fields={"ifs_key": "IFS Key", "buyer": "Buyer Code"})
    run = run_tap(tmp_path, config, executable="tap-jiracloud", check=False)
    assert run.returncode != 0
    assert "no field named 'Buyer Code'" in run.stderr


def test_a_state_every_state_interval_records_with_the_bookmark_of_the_record_before_it(jira, tmp_path):
    for n in range(7):
        create_issue(jira, f"Purchase order P{n}", f"PurchaseOrder:P{n}")
    run = tap(tmp_path, config_for(jira, jql="labels = ifs", state_interval_records=2))
    assert len(run.records("issues")) == 7
    assert assert_a_state_every(run, "issues", 2, "updated") == 3
