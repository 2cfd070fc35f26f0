"""The shared Jira client (ml_connector_core.jira) as target-jira uses it, over real HTTP to the Jira stand-in:
a revoked OAuth token renewed once, Jira's errors quoted, 429s bounded, settings checked."""

from __future__ import annotations

import pytest

from ml_connector_core.jira import JiraAuthError, JiraConfigError, JiraError, client_from_config
from mlc_sandbox.jira import JiraSandbox


@pytest.fixture
def jira():
    with JiraSandbox(port=0) as stand_in:
        yield stand_in
        assert stand_in.violations() == []


def oauth_config(jira, **extra) -> dict:
    return {"base_url": jira.base_url, "oauth_client_id": jira.client_id, "oauth_client_secret": jira.client_secret,
            "oauth_refresh_token": jira.refresh_token, "oauth_token_url": jira.token_url, "oauth_api_url": jira.base_url,
            **extra}


def test_oauth_finds_the_cloud_id_and_renews_a_revoked_token_once(jira):
    client = client_from_config(oauth_config(jira))
    assert client.api_root == f"{jira.api_url}/rest/api/3"
    assert client.myself()["emailAddress"] == jira.email
    first_refresh_token = client.auth.refresh_token
    assert first_refresh_token != jira.refresh_token  # rotated
    jira.revoke_tokens()
    assert client.myself()["emailAddress"] == jira.email
    statuses = [r["status"] for r in jira.requests() if r["path"].endswith("/myself")]
    assert statuses == [200, 401, 200]
    assert client.auth.tokens_fetched == 2 and client.auth.refresh_token != first_refresh_token


def test_the_list_of_sites_is_asked_again_after_a_429_a_503_and_a_lost_connection(jira):
    jira.add_fault("rate_limit", api="resources", retry_after=0)
    jira.add_fault("status", api="resources", status=503, retry_after=0)
    jira.add_fault("drop", api="resources")
    client = client_from_config(oauth_config(jira))
    assert client.api_root == f"{jira.api_url}/rest/api/3"
    asked = [r for r in jira.requests() if r["path"].endswith("/accessible-resources")]
    assert [r["status"] for r in asked] == [429, 503, None, 200]
    assert client.auth.tokens_fetched == 1


def test_a_list_of_sites_that_keeps_failing_is_named(jira):
    jira.add_fault("status", api="resources", status=502, count=3)
    with pytest.raises(JiraError, match="cannot list the sites this OAuth app may use: .*accessible-resources: Jira "
                                        "kept answering HTTP 502 after 3 tries"):
        client_from_config(oauth_config(jira, max_tries=3))


def test_a_refused_refresh_token_says_why(jira):
    jira.revoke_tokens(refresh_tokens=True)
    with pytest.raises(JiraAuthError) as refused:
        client_from_config(oauth_config(jira))
    assert "invalid_grant" in str(refused.value) and "oauth_refresh_token_file" in str(refused.value)
    assert jira.client_secret not in str(refused.value)


def test_jiras_error_messages_are_quoted(jira):
    client = client_from_config({"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token})
    with pytest.raises(JiraError) as refused:
        client.request("POST", "issue", json={"fields": {"project": {"key": "NOPE"}, "summary": "x",
                                                          "issuetype": {"name": "Task"}}})
    assert refused.value.status == 400
    assert "project: Specify a valid project ID or key" in str(refused.value)
    with pytest.raises(JiraError, match="Field 'nosuchfield' does not exist"):
        list(client.search_pages("nosuchfield = 1", ["summary"]))
    with pytest.raises(JiraError, match="no field named 'Buyer Code'"):
        client.field_ids(["IFS Key", "Buyer Code"])


def test_wrong_api_token_is_an_auth_error_without_the_token(jira):
    client = client_from_config({"base_url": jira.base_url, "email": jira.email, "api_token": "wrong-token-value"})
    with pytest.raises(JiraAuthError, match="refused the credentials") as refused:
        client.myself()
    assert "wrong-token-value" not in str(refused.value)


def test_429_is_retried_after_retry_after_and_bounded(jira):
    client = client_from_config({"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token,
                                 "max_tries": 2})
    jira.throttle(count=1, retry_after=1)
    assert client.myself()["emailAddress"] == jira.email
    jira.throttle(count=2, retry_after=1)
    with pytest.raises(JiraError, match="kept answering HTTP 429 after 2 tries: Rate limit exceeded"):
        client.myself()


def test_incomplete_settings_name_what_is_missing():
    with pytest.raises(JiraConfigError, match="base_url is required"):
        client_from_config({})
    with pytest.raises(JiraConfigError, match="set email and api_token"):
        client_from_config({"base_url": "https://acme.atlassian.net"})
    with pytest.raises(JiraConfigError, match="OAuth needs oauth_client_secret"):
        client_from_config({"base_url": "https://acme.atlassian.net", "oauth_client_id": "x", "oauth_refresh_token": "y"})
