"""target-jira-check as its own process against the Jira stand-in over loopback: a fitting configuration passes with a
table; each broken one fails with its own line naming the setting and its variable; nothing is written, no secret is
printed; OAuth rotates the refresh token only where the newest one is kept, as a run keeps it."""

from __future__ import annotations

import pytest

from mlc_sandbox.jira import JiraSandbox
from ml_connector_core.secrets import generate_key, unseal
from support.check import assert_table_all_pass, only_reads, run_check

CHECK = "target-jira-check"


@pytest.fixture(scope="module")
def jira():
    with JiraSandbox(port=0) as stand_in:
        yield stand_in


def good_config(jira, **changes) -> dict:
    """The routing of the project's meltano.yml: purchase orders to PUR, work orders to MNT."""
    return {"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token,
            "projects": [{"stream": "jira_purchase_orders", "project": "PUR"},
                         {"stream": "jira_work_orders", "project": "MNT"}],
            "issue_types": {"jira_purchase_orders": "Purchase Order", "jira_work_orders": "Work Order"},
            "priorities": {"STRATEGIC": "Highest", "SPOT": "Low"},
            "assignees": {"STRATEGIC": "anna.berg@example.com", "PM": "Maria Lind"},
            "status_transitions": {"Closed": "Done", "Released": "In Progress"},
            **changes}


def test_a_fitting_configuration_passes_reading_only(jira, tmp_path):
    before = len(jira.requests())
    run = run_check(CHECK, good_config(jira), tmp_path, secrets=[jira.api_token], output_format="table")
    checks = assert_table_all_pass(run, "Jira")
    assert checks[:2] == ["site", "credentials"]
    assert {"custom field 'IFS Key'", "custom field 'Order Amount'", "project PUR", "project MNT",
            "issue type PUR/Purchase Order", "issue type MNT/Work Order", "create screen PUR/Purchase Order",
            "priority 'Highest'", "priority 'Medium'", "assignee 'Maria Lind'",
            "statuses MNT/Work Order"} <= set(checks)
    only_reads(jira.requests()[before:])
    assert jira.issues() == []


def test_a_wrong_api_token_is_one_line_naming_the_setting(jira, tmp_path):
    wrong = "not-the-right-token-42"
    run = run_check(CHECK, good_config(jira, api_token=wrong), tmp_path, secrets=[wrong, jira.api_token])
    assert run.returncode == 1
    [failure] = run.failures()
    assert failure["check"] == "credentials" and "HTTP 401" in failure["detail"]
    assert failure["fix"].startswith("api_token (TARGET_JIRA_API_TOKEN)")


def test_a_custom_field_the_site_does_not_have(jira, tmp_path):
    run = run_check(CHECK, good_config(jira, custom_fields={"gl_account": "Buyer Code"}), tmp_path,
                    secrets=[jira.api_token])
    assert run.returncode == 1
    [failure] = run.failures()
    assert failure["check"] == "custom field 'Buyer Code'" and "no field named 'Buyer Code'" in failure["detail"]
    assert failure["fix"].startswith("custom_fields.gl_account (TARGET_JIRA_CUSTOM_FIELDS)")
    assert run.result("custom field 'IFS Key'")["status"] == "pass"


def test_a_project_and_an_issue_type_that_do_not_exist(jira, tmp_path):
    config = good_config(jira, projects=[{"stream": "jira_purchase_orders", "project": "NOPE"},
                                         {"stream": "jira_work_orders", "project": "OPS"}])
    run = run_check(CHECK, config, tmp_path, secrets=[jira.api_token])
    assert run.returncode == 1
    project = run.result("project NOPE")
    assert project["status"] == "fail" and "No project could be found with key 'NOPE'" in project["detail"]
    assert project["fix"].startswith("projects[0] (TARGET_JIRA_PROJECTS)")
    issue_type = run.result("issue type OPS/Work Order")
    assert issue_type["status"] == "fail" and "has no issue type 'Work Order' (it has: Task)" in issue_type["detail"]
    assert issue_type["fix"].startswith("issue_types.jira_work_orders (TARGET_JIRA_ISSUE_TYPES)")
    assert [f["check"] for f in run.failures()] == ["project NOPE", "issue type OPS/Work Order"]


def test_a_default_project_is_checked_with_every_issue_type_it_can_get(jira, tmp_path):
    """Purchase orders of companies other than 10 fall through to default_project MNT, which has no Purchase Order
    type: a run would refuse them, so the check says so."""
    config = good_config(jira, projects=[{"company": "10", "project": "PUR"}], default_project="MNT")
    run = run_check(CHECK, config, tmp_path, secrets=[jira.api_token])
    assert run.returncode == 1
    assert [f["check"] for f in run.failures()] == ["issue type MNT/Purchase Order", "issue type PUR/Work Order"]
    assert run.result("project MNT")["detail"].endswith("chosen by default_project")


def test_statuses_priorities_and_assignees_that_do_not_exist(jira, tmp_path):
    config = good_config(jira, status_transitions={"Closed": "Closed", "Cancelled": "Closed"},
                         priorities={"STRATEGIC": "Urgent"}, assignees={"CM": "nobody@example.com"})
    run = run_check(CHECK, config, tmp_path, secrets=[jira.api_token])
    assert run.returncode == 1
    status = run.result("statuses PUR/Purchase Order")
    assert status["status"] == "fail"
    assert "no status 'Closed' (for IFS Closed, Cancelled); it has: To Do, In Progress, Done" in status["detail"]
    assert status["fix"].startswith("status_transitions (TARGET_JIRA_STATUS_TRANSITIONS)")
    assert run.result("priority 'Urgent'")["fix"].startswith("priorities.STRATEGIC (TARGET_JIRA_PRIORITIES)")
    assert "not an active Jira user" in run.result("assignee 'nobody@example.com'")["detail"]
    assert sorted(f["check"] for f in run.failures()) == [
        "assignee 'nobody@example.com'", "priority 'Urgent'", "statuses MNT/Work Order", "statuses PUR/Purchase Order"]


def test_settings_read_from_the_environment_as_meltano_passes_them(jira, tmp_path):
    env = {"TARGET_JIRA_BASE_URL": jira.base_url, "TARGET_JIRA_EMAIL": jira.email,
           "TARGET_JIRA_API_TOKEN": jira.api_token, "TARGET_JIRA_DEFAULT_PROJECT": "OPS"}
    run = run_check(CHECK, None, tmp_path, secrets=[jira.api_token], env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.result("issue type OPS/Task")["status"] == "pass"


@pytest.fixture
def oauth_jira():
    with JiraSandbox(port=0) as stand_in:
        yield stand_in


def oauth_config(jira, **extra) -> dict:
    return {"base_url": jira.base_url, "oauth_client_id": jira.client_id, "oauth_client_secret": jira.client_secret,
            "oauth_refresh_token": jira.refresh_token, "oauth_token_url": jira.token_url, "oauth_api_url": jira.base_url,
            "default_project": "OPS", **extra}


def test_oauth_without_a_file_for_the_rotated_token_asks_for_no_token(oauth_jira, tmp_path):
    secrets = [oauth_jira.client_secret, oauth_jira.refresh_token]
    run = run_check(CHECK, oauth_config(oauth_jira), tmp_path, secrets=secrets)
    assert run.returncode == 1
    [failure] = run.results
    assert failure["check"] == "credentials" and failure["detail"].startswith("not checked")
    assert failure["fix"].startswith("oauth_refresh_token_file (TARGET_JIRA_OAUTH_REFRESH_TOKEN_FILE)")
    assert [r["path"] for r in oauth_jira.requests()] == []  # the configured refresh token is still unused


def test_oauth_keeps_the_rotated_refresh_token_where_a_run_finds_it(oauth_jira, tmp_path):
    kept = tmp_path / "jira-refresh-token"
    config = oauth_config(oauth_jira, oauth_refresh_token_file=str(kept))
    secrets = [oauth_jira.client_secret, oauth_jira.refresh_token]
    key = {"MLC_SECRET_KEY": generate_key()}  # the file keeps the rotated token sealed
    first = run_check(CHECK, config, tmp_path, secrets=secrets, env=key)
    assert first.returncode == 0, first.stdout
    assert "OAuth 2.0 as MLC Integration Bot" in first.result("credentials")["detail"]
    rotated = unseal(kept.read_text().strip(), key=key["MLC_SECRET_KEY"].encode())
    assert rotated and rotated != oauth_jira.refresh_token
    oauth_jira.revoke_tokens()  # the access token is gone; only the kept refresh token can get a new one
    second = run_check(CHECK, config, tmp_path, secrets=secrets + [rotated], env=key)
    assert second.returncode == 0, second.stdout
    assert unseal(kept.read_text().strip(), key=key["MLC_SECRET_KEY"].encode()) not in (rotated, "")


def test_a_refused_oauth_client_secret(oauth_jira, tmp_path):
    config = oauth_config(oauth_jira, oauth_client_secret="wrong-client-secret",
                          oauth_refresh_token_file=str(tmp_path / "kept"))
    run = run_check(CHECK, config, tmp_path, secrets=["wrong-client-secret", oauth_jira.refresh_token],
                    env={"MLC_SECRET_KEY": generate_key()})
    assert run.returncode == 1
    [failure] = run.results
    assert failure["check"] == "credentials" and "HTTP 401" in failure["detail"]
    assert failure["fix"].startswith("oauth_client_secret (TARGET_JIRA_OAUTH_CLIENT_SECRET)")
