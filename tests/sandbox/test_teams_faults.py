"""Throttling and faults on demand in the Teams stand-in, over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests


MESSAGE = {"type": "message", "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
    "content": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "hello"}]}}]}


def test_the_next_n_requests_to_a_channel_get_429_with_retry_after(teams):
    teams.throttle("company-10", count=2, retry_after=7)
    url, other = teams.webhook_url("company-10"), teams.webhook_url("company-20")
    assert requests.post(other, json=MESSAGE).status_code == 202  # other channels are not throttled
    for _ in range(2):
        response = requests.post(url, json=MESSAGE)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert response.json()["error"]["code"] == "TooManyRequests"
    assert requests.post(url, json=MESSAGE).status_code == 202  # the third goes through
    assert [m["channel_id"] for m in teams.messages()] == ["company-20", "company-10"]
    assert [r["fault"] for r in teams.requests()] == [None, "rate_limit", "rate_limit", None]
    assert teams.rejections() == []  # throttling is not a refusal of the content


def test_throttling_any_channel_and_the_graph_api(teams):
    teams.throttle(count=1, retry_after=3, api="graph")
    token = requests.post(teams.token_url, data={"grant_type": "client_credentials", "client_id": teams.client_id,
                                                 "client_secret": teams.client_secret,
                                                 "scope": "https://graph.microsoft.com/.default"})
    assert token.status_code == 200  # the token endpoint is not hit by message faults
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert requests.post(teams.webhook_url("general"), json=MESSAGE).status_code == 202  # not the Graph API
    body = {"body": {"contentType": "text", "content": "hi"}}
    response = requests.post(teams.graph_messages_url("general"), json=body, headers=headers)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "3")
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert requests.post(teams.graph_messages_url("general"), json=body, headers=headers).status_code == 201


def test_503_and_dropped_connections(teams):
    url = teams.webhook_url("company-30")
    teams.add_fault("status", status=503, retry_after=2, channel="company-30")
    teams.add_fault("drop", channel="company-30")
    response = requests.post(url, json=MESSAGE)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "2")
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=MESSAGE)
    assert requests.post(url, json=MESSAGE).status_code == 202
    assert len(teams.messages("company-30")) == 1


def test_a_lost_answer_posts_the_message_and_drops_the_connection(teams):
    teams.add_fault("lost_answer", channel="company-30")
    with pytest.raises(requests.ConnectionError):
        requests.post(teams.webhook_url("company-30"), json=MESSAGE)
    assert len(teams.messages("company-30")) == 1  # carried out: the client never heard of it
    form = {"grant_type": "client_credentials", "client_id": teams.client_id, "client_secret": teams.client_secret,
            "scope": "https://graph.microsoft.com/.default"}
    headers = {"Authorization": f"Bearer {requests.post(teams.token_url, data=form).json()['access_token']}"}
    url = teams.graph_messages_url("company-30")
    teams.add_fault("lost_answer", api="graph")
    assert requests.get(url, headers=headers).status_code == 200  # a read has no answer worth losing: not hit
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={"body": {"contentType": "text", "content": "hi"}}, headers=headers)
    assert [m["api"] for m in teams.messages("company-30")] == ["workflows", "graph"]
    assert [(r["method"], r["fault"]) for r in teams.requests()] == [
        ("POST", "lost_answer"), ("POST", None), ("GET", None), ("POST", "lost_answer")]  # post, token, read, post
    assert teams.admin("GET", "faults")["faults"] == []


def test_faults_on_the_token_endpoint_and_delays(teams):
    teams.add_fault("status", status=500, api="token")
    form = {"grant_type": "client_credentials", "client_id": teams.client_id, "client_secret": teams.client_secret,
            "scope": "https://graph.microsoft.com/.default"}
    assert requests.post(teams.token_url, data=form).status_code == 500
    assert requests.post(teams.token_url, data=form).status_code == 200
    teams.add_fault("delay", delay_seconds=0.3, channel="general")
    started = time.monotonic()
    assert requests.post(teams.webhook_url("general"), json=MESSAGE).status_code == 202
    assert time.monotonic() - started >= 0.3


def test_fault_definitions_are_checked(teams):
    with pytest.raises(RuntimeError, match="404"):
        teams.throttle("no-such-channel")
    with pytest.raises(RuntimeError, match="kind"):
        teams.add_fault("explode")
    with pytest.raises(RuntimeError, match="api"):
        teams.add_fault("drop", api="smtp")
    with pytest.raises(RuntimeError, match="message posts only"):
        teams.add_fault("lost_answer", api="token")
    teams.throttle("general", count=5)
    assert teams.admin("GET", "faults")["faults"][0]["count"] == 5
    teams.clear_faults()
    assert requests.post(teams.webhook_url("general"), json=MESSAGE).status_code == 202
