"""The Jira stand-in's authentication: Basic with email and API token on the site URL, OAuth 2.0 (3LO) access tokens
from rotating refresh tokens on /ex/jira/<cloudid>, and the refusals each gives."""

from __future__ import annotations

import time

import pytest
import requests

from mlc_sandbox.jira import JiraSandbox


@pytest.fixture
def jira():
    with JiraSandbox(port=0, rate_limit=0) as sandbox:
        yield sandbox


def refresh(jira, refresh_token: str, as_form: bool = False) -> requests.Response:
    body = {"grant_type": "refresh_token", "client_id": jira.client_id, "client_secret": jira.client_secret,
            "refresh_token": refresh_token}
    if as_form:
        return requests.post(jira.token_url, data=body)
    return requests.post(jira.token_url, json=body)


def test_basic_auth_with_the_api_token_is_the_api_user(jira):
    answer = requests.get(f"{jira.base_url}/rest/api/3/myself", auth=(jira.email, jira.api_token))
    assert answer.status_code == 200
    me = answer.json()
    assert me["emailAddress"] == "mlc-bot@example.com"
    assert me["timeZone"] == "Europe/Stockholm"
    assert me["accountId"] == jira.info()["account_ids"]["mlc-bot@example.com"]


@pytest.mark.parametrize("credentials", [None, ("mlc-bot@example.com", "wrong-token"),
                                         ("anna.berg@example.com", "mlc-sandbox-jira-token")])
def test_missing_or_wrong_basic_auth_is_401_with_jira_message(jira, credentials):
    answer = requests.get(f"{jira.base_url}/rest/api/3/myself", auth=credentials)
    assert answer.status_code == 401
    assert answer.json()["errorMessages"][0].startswith("You are not authenticated")
    assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_time_zone_of_the_user_follows_the_option():
    with JiraSandbox(port=0, user_time_zone="America/New_York") as jira:
        me = requests.get(f"{jira.base_url}/rest/api/3/myself", auth=(jira.email, jira.api_token)).json()
    assert me["timeZone"] == "America/New_York"


def test_refresh_token_rotates_and_the_access_token_works_on_the_gateway(jira):
    answer = refresh(jira, jira.refresh_token)
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["refresh_token"] != jira.refresh_token
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    resources = requests.get(f"{jira.base_url}/oauth/token/accessible-resources", headers=bearer).json()
    assert resources[0]["id"] == jira.cloud_id and resources[0]["url"] == jira.base_url
    me = requests.get(f"{jira.base_url}/ex/jira/{resources[0]['id']}/rest/api/3/myself", headers=bearer)
    assert me.status_code == 200 and me.json()["emailAddress"] == jira.email
    # the rotated token works, as a form body too
    second = refresh(jira, tokens["refresh_token"], as_form=True)
    assert second.status_code == 200


def test_a_used_refresh_token_is_refused_after_the_reuse_interval(jira):
    first = refresh(jira, jira.refresh_token)
    assert first.status_code == 200
    again = refresh(jira, jira.refresh_token)  # within the reuse interval: still honoured
    assert again.status_code == 200
    jira.change_settings(refresh_reuse_seconds=0)
    refused = refresh(jira, jira.refresh_token)
    assert refused.status_code == 403
    assert refused.json() == {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}


def test_token_endpoint_refuses_a_wrong_client_and_an_unknown_grant(jira):
    wrong = requests.post(jira.token_url, json={"grant_type": "refresh_token", "client_id": jira.client_id,
                                                "client_secret": "nope", "refresh_token": jira.refresh_token})
    assert wrong.status_code == 401 and wrong.json()["error"] == "access_denied"
    grant = requests.post(jira.token_url, json={"grant_type": "client_credentials", "client_id": jira.client_id,
                                                "client_secret": jira.client_secret})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    # a refused client does not spend the refresh token
    assert refresh(jira, jira.refresh_token).status_code == 200


def test_bearer_tokens_are_refused_on_the_site_url_and_when_expired_or_revoked(jira):
    access = refresh(jira, jira.refresh_token).json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    on_site = requests.get(f"{jira.base_url}/rest/api/3/myself", headers=bearer)
    assert on_site.status_code == 401 and "errorMessages" in on_site.json()
    jira.revoke_tokens()
    revoked = requests.get(f"{jira.api_url}/rest/api/3/myself", headers=bearer)
    assert revoked.status_code == 401
    assert revoked.json() == {"code": 401, "message": "Unauthorized"}
    assert revoked.headers["WWW-Authenticate"].startswith("Bearer")

    jira.change_settings(token_ttl=1)
    short = refresh(jira, jira.new_refresh_token()).json()
    assert short["expires_in"] == 1
    short_bearer = {"Authorization": f"Bearer {short['access_token']}"}
    assert requests.get(f"{jira.api_url}/rest/api/3/myself", headers=short_bearer).status_code == 200
    time.sleep(1.2)  # let the token expire
    assert requests.get(f"{jira.api_url}/rest/api/3/myself", headers=short_bearer).status_code == 401


def test_basic_auth_also_works_through_the_gateway_and_unknown_sites_are_404(jira):
    answer = requests.get(f"{jira.api_url}/rest/api/3/myself", auth=(jira.email, jira.api_token))
    assert answer.status_code == 200
    assert answer.json()["self"].startswith(jira.api_url)
    unknown = requests.get(f"{jira.base_url}/ex/jira/00000000-0000-0000-0000-000000000000/rest/api/3/myself",
                           auth=(jira.email, jira.api_token))
    assert unknown.status_code == 404


def test_revoking_refresh_tokens_ends_the_grant(jira):
    jira.revoke_tokens(refresh_tokens=True)
    assert refresh(jira, jira.refresh_token).status_code == 403
