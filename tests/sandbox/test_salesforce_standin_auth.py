"""The Salesforce stand-in's door: client-credentials tokens, sessions that expire (401 INVALID_SESSION_ID), the daily
API limit (Sforce-Limit-Info, 403 REQUEST_LIMIT_EXCEEDED), injected faults, versions and paths, and the stand-in as a
child process (`mlc-sandbox serve salesforce`). Real HTTP against the stand-in on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import requests

from mlc_sandbox.salesforce import SalesforceSandbox, SalesforceSandboxProcess


@pytest.fixture
def sf():
    with SalesforceSandbox(port=0) as sandbox:
        yield sandbox


def token_for(sf) -> str:
    answer = requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": sf.client_id,
                                               "client_secret": sf.client_secret})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_client_credentials_token_has_salesforce_shape(sf):
    answer = requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": "mlc-sf-client",
                                               "client_secret": "mlc-sf-secret"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature", "scope"}
    assert "expires_in" not in body and "refresh_token" not in body
    assert body["instance_url"] == sf.base_url and body["token_type"] == "Bearer" and body["scope"] == "api"
    assert body["id"].startswith(f"{sf.base_url}/id/00D") and "/005" in body["id"]
    assert body["issued_at"].isdigit() and abs(int(body["issued_at"]) / 1000 - time.time()) < 60
    expected = base64.b64encode(hmac.new(b"mlc-sf-secret", (body["id"] + body["issued_at"]).encode(),
                                         hashlib.sha256).digest()).decode()
    assert body["signature"] == expected
    versions = requests.get(f"{sf.base_url}/services/data/v62.0/", headers=bearer(body["access_token"]))
    assert versions.status_code == 200 and versions.json()["query"] == "/services/data/v62.0/query"


def test_bad_client_and_grant_are_refused(sf):
    wrong_secret = requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": sf.client_id,
                                                     "client_secret": "nope"})
    assert wrong_secret.status_code == 400
    assert wrong_secret.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}
    unknown_client = requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": "other",
                                                       "client_secret": sf.client_secret})
    assert unknown_client.status_code == 400 and unknown_client.json()["error"] == "invalid_client_id"
    password = requests.post(sf.token_url, data={"grant_type": "password", "client_id": sf.client_id,
                                                 "client_secret": sf.client_secret})
    assert password.status_code == 400 and password.json()["error"] == "unsupported_grant_type"
    assert "nope" not in wrong_secret.text


def test_missing_unknown_and_expired_sessions_answer_invalid_session_id(sf):
    url = f"{sf.api_url}/sobjects"
    expected = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert requests.get(url).json() == expected
    unknown = requests.get(url, headers=bearer("00D5e000000MLCs!made-up"))
    assert unknown.status_code == 401 and unknown.json() == expected
    token = token_for(sf)
    assert requests.get(url, headers=bearer(token)).status_code == 200
    assert sf.expire_sessions() == 1
    expired = requests.get(url, headers=bearer(token))
    assert expired.status_code == 401 and expired.json() == expected
    assert requests.get(url, headers=bearer(token_for(sf))).status_code == 200


def test_sessions_end_after_session_ttl_of_inactivity():
    with SalesforceSandbox(port=0, session_ttl=1) as sf:
        token = token_for(sf)
        url = f"{sf.api_url}/limits"
        assert requests.get(url, headers=bearer(token)).status_code == 200
        time.sleep(1.3)
        assert requests.get(url, headers=bearer(token)).status_code == 401


def test_api_usage_is_counted_and_refused_at_the_limit(sf):
    token = token_for(sf)
    token_for(sf)  # the token endpoint is not an API call
    url = f"{sf.api_url}/sobjects/Account/describe"
    infos = [requests.get(url, headers=bearer(token)).headers["Sforce-Limit-Info"] for _ in range(3)]
    assert infos == ["api-usage=1/15000", "api-usage=2/15000", "api-usage=3/15000"]
    sf.set_api_usage(14999)
    last = requests.get(url, headers=bearer(token))
    assert last.status_code == 200 and last.headers["Sforce-Limit-Info"] == "api-usage=15000/15000"
    refused = requests.get(url, headers=bearer(token))
    assert refused.status_code == 403
    assert refused.json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=15000/15000"
    sf.change_settings(daily_api_limit=20000)
    limits = requests.get(f"{sf.api_url}/limits", headers=bearer(token)).json()
    assert limits["DailyApiRequests"] == {"Max": 20000, "Remaining": 4999}  # the limits call counts too


def test_injected_faults(sf):
    token = token_for(sf)
    url = f"{sf.api_url}/query"
    query = {"q": "SELECT Id FROM Account"}
    sf.add_fault("status", status=500, path="/query")
    assert requests.get(f"{sf.api_url}/limits", headers=bearer(token)).status_code == 200  # aimed at queries only
    failed = requests.get(url, params=query, headers=bearer(token))
    assert failed.status_code == 500 and failed.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    sf.add_fault("busy", retry_after=7)
    busy = requests.get(url, params=query, headers=bearer(token))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "7"
    assert busy.json() == [{"errorCode": "SERVER_UNAVAILABLE", "message": "Server Busy"}]
    sf.add_fault("rate_limit")
    throttled = requests.get(url, params=query, headers=bearer(token))
    assert throttled.status_code == 403 and throttled.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    sf.add_fault("session")
    assert requests.get(url, params=query, headers=bearer(token)).status_code == 401
    assert requests.get(url, params=query, headers=bearer(token)).status_code == 401  # the session really ended
    token = token_for(sf)
    sf.add_fault("drop")
    with pytest.raises(requests.ConnectionError):
        requests.get(url, params=query, headers=bearer(token))
    sf.add_fault("delay", delay_seconds=0.2)
    assert requests.get(url, params=query, headers=bearer(token)).status_code == 200
    sf.add_fault("busy", api="oauth")
    assert requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": sf.client_id,
                                             "client_secret": sf.client_secret}).status_code == 503
    assert token_for(sf)
    faults = [entry["fault"] for entry in sf.requests() if entry["fault"]]
    assert faults == ["status", "busy", "rate_limit", "session", "drop", "delay", "busy"]
    with pytest.raises(RuntimeError, match="kind"):
        sf.add_fault("explode")


def test_versions_paths_and_methods(sf):
    token = token_for(sf)
    assert requests.get(f"{sf.base_url}/services/data/v55.0/sobjects", headers=bearer(token)).status_code == 200
    not_found = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    for path in ("/services/data/v69.0/sobjects", "/services/data/v62.0/nothing", "/services/data/v62.0/sobjects/Foo",
                 "/services/data/v62.1/sobjects"):
        answer = requests.get(f"{sf.base_url}{path}", headers=bearer(token))
        assert (answer.status_code, answer.json()) == (404, not_found), path
    retired = requests.get(f"{sf.base_url}/services/data/v30.0/sobjects", headers=bearer(token))
    assert retired.status_code == 410 and retired.json()[0]["errorCode"] == "GONE"
    wrong_method = requests.put(f"{sf.api_url}/sobjects/Account/0015e0000000001AAA", headers=bearer(token), json={})
    assert wrong_method.status_code == 405 and wrong_method.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    versions = requests.get(f"{sf.base_url}/services/data/").json()
    assert versions[0] == {"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"}
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    assert versions[-1] == {"label": "Winter '27", "url": "/services/data/v68.0", "version": "68.0"}
    assert [v["version"] for v in versions] == [f"{major}.0" for major in range(31, 69)]


@pytest.mark.parametrize("version", ["31.0", "62.0", "66.0", "68.0"])
def test_every_served_version_answers_alike(sf, version):
    token = token_for(sf)
    base = f"{sf.base_url}/services/data/v{version}"
    resources = requests.get(f"{base}/", headers=bearer(token)).json()
    assert resources["query"] == f"/services/data/v{version}/query"
    created = requests.post(f"{base}/sobjects/Account", headers=bearer(token), json={"Name": "Acme"})
    assert created.status_code == 201
    record = requests.get(f"{base}/sobjects/Account/{created.json()['id']}", headers=bearer(token)).json()
    assert record["attributes"]["url"] == f"/services/data/v{version}/sobjects/Account/{created.json()['id']}"
    found = requests.get(f"{base}/query", params={"q": "SELECT Id, Name FROM Account"}, headers=bearer(token)).json()
    assert found["records"][0]["attributes"]["url"].startswith(f"/services/data/v{version}/sobjects/Account/")
    assert requests.get(f"{base}/sobjects/Account/describe", headers=bearer(token)).json()["urls"]["describe"] == \
        f"/services/data/v{version}/sobjects/Account/describe"


def test_the_stand_in_as_a_child_process():
    with SalesforceSandboxProcess(port=0, daily_api_limit=50, query_batch_size=500) as sf:
        token = token_for(sf)
        created = requests.patch(f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/S1", headers=bearer(token),
                                 json={"Name": "Nordic Steel AB"})
        assert created.status_code == 201 and created.headers["Sforce-Limit-Info"] == "api-usage=1/50"
        assert [r["Name"] for r in sf.records("Account")] == ["Nordic Steel AB"]
        assert sf.admin("GET", "settings")["query_batch_size"] == 500


def test_client_credentials_as_http_basic(sf):
    """RFC 6749's client_secret_basic, which simple-salesforce uses for the client credentials flow."""
    token = requests.post(sf.token_url, data={"grant_type": "client_credentials"},
                          auth=(sf.client_id, sf.client_secret))
    assert token.status_code == 200
    assert requests.get(f"{sf.api_url}/limits", headers=bearer(token.json()["access_token"])).status_code == 200
    wrong = requests.post(sf.token_url, data={"grant_type": "client_credentials"}, auth=(sf.client_id, "nope"))
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
    unknown = requests.post(sf.token_url, data={"grant_type": "client_credentials"}, auth=("someone", "x"))
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_client_id")


def test_limits_lists_the_org_limits(sf):
    token = token_for(sf)
    sf.set_api_usage(100)
    limits = requests.get(f"{sf.api_url}/limits", headers=bearer(token)).json()
    assert len(limits) > 40 and list(limits) == sorted(limits)
    assert all(set(value) >= {"Max", "Remaining"} and value["Remaining"] <= value["Max"] for value in limits.values())
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 14899}
    for name in ("DailyBulkApiBatches", "DailyAsyncApexExecutions", "SingleEmail", "HourlyODataCallout",
                 "ConcurrentSyncReportRuns", "FileStorageMB", "DailyStreamingApiEvents"):
        assert limits[name]["Max"] > 0, name
    assert limits["DataStorageMB"] == {"Max": 10240, "Remaining": 10239}  # the 3 seeded price book records: 6 KB
    collection = [{"attributes": {"type": "Account"}, "Name": f"A{i}"} for i in range(200)]
    for _ in range(6):
        requests.post(f"{sf.api_url}/composite/sobjects", headers=bearer(token), json={"records": collection})
    after = requests.get(f"{sf.api_url}/limits", headers=bearer(token)).json()
    assert after["DataStorageMB"] == {"Max": 10240, "Remaining": 10237}  # 1,203 records x 2 KB
    assert after["DailyApiRequests"]["Remaining"] == 14899 - 7
