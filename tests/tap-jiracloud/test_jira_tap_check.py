"""tap-jiracloud-check as its own process against the Jira stand-in: custom fields resolved as discovery resolves
them, the stream's own JQL searched once; broken settings each get their own line; nothing written or printed that
is secret."""

from __future__ import annotations

import pytest

from mlc_sandbox.jira import JiraSandbox
from support.check import assert_table_all_pass, only_reads, run_check

CHECK = "tap-jiracloud-check"


@pytest.fixture(scope="module")
def jira():
    with JiraSandbox(port=0) as stand_in:
        yield stand_in


def config_for(jira, **changes) -> dict:
    return {"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token,
            "jql": "project in (PUR, MNT) AND labels is not EMPTY", "start_date": "2026-01-01T00:00:00Z",
            "custom_fields": {"ifs_key": "IFS Key", "gl_account": "GL Account"}, **changes}


def test_a_fitting_configuration_passes_with_one_search(jira, tmp_path):
    before = len(jira.requests())
    run = run_check(CHECK, config_for(jira), tmp_path, secrets=[jira.api_token], output_format="table")
    assert assert_table_all_pass(run, "Jira") == [
        "site", "credentials", "custom field 'IFS Key'", "custom field 'GL Account'", "search"]
    assert 'AND updated >= "2026-01-01 00:00" ORDER BY updated ASC' in run.stdout
    seen = jira.requests()[before:]
    only_reads(seen, allowed_posts=("/search/jql",))
    assert [r["path"] for r in seen if r["method"] == "POST"] == ["/rest/api/3/search/jql"]


def test_a_wrong_token_a_missing_field_and_a_bad_jql_each_have_their_line(jira, tmp_path):
    wrong = "not-the-right-token-42"
    denied = run_check(CHECK, config_for(jira, api_token=wrong), tmp_path, secrets=[wrong])
    assert denied.returncode == 1
    assert denied.result("credentials")["fix"].startswith("api_token (TAP_JIRACLOUD_API_TOKEN)")

    config = config_for(jira, jql="project = PUR AND nosuchfield = 1",
                        custom_fields={"ifs_key": "IFS Key", "buyer": "Buyer Code"})
    run = run_check(CHECK, config, tmp_path, secrets=[jira.api_token])
    assert run.returncode == 1
    assert [f["check"] for f in run.failures()] == ["custom field 'Buyer Code'", "search"]
    field = run.result("custom field 'Buyer Code'")
    assert "no field named 'Buyer Code'" in field["detail"]
    assert field["fix"].startswith("custom_fields.buyer (TAP_JIRACLOUD_CUSTOM_FIELDS)")
    search = run.result("search")
    assert "Field 'nosuchfield' does not exist" in search["detail"]
    assert search["fix"].startswith("jql (TAP_JIRACLOUD_JQL)")


def test_order_by_in_the_jql_is_refused_before_any_request(jira, tmp_path):
    before = len(jira.requests())
    run = run_check(CHECK, config_for(jira, jql="project = PUR ORDER BY key"), tmp_path, secrets=[jira.api_token])
    assert run.returncode == 1
    [failure] = run.results
    assert failure["check"] == "jql" and "ORDER BY" in failure["detail"]
    assert len(jira.requests()) == before
