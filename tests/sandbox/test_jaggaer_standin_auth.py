"""The JAGGAER stand-in's door: client-credentials tokens (form or HTTP Basic), refusals, 401 on missing, unknown,
expired and revoked tokens, and the stand-in as a child process (`mlc-sandbox serve jaggaer`). Real HTTP on loopback."""

from __future__ import annotations

import base64

import requests

import jaggaer_standin_client as standin
from jaggaer_standin_client import token_for
from mlc_sandbox.jaggaer import JaggaerSandbox, JaggaerSandboxProcess

jaggaer = standin.jaggaer  # fixture


def get_suppliers(jg, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{jg.api_url}/suppliers", headers=headers)


def test_token_from_form_credentials(jaggaer):
    answer = requests.post(jaggaer.token_url, data={"grant_type": "client_credentials", "client_id": "mlc-jaggaer-client",
                                                    "client_secret": "mlc-jaggaer-secret"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "api"
    assert get_suppliers(jaggaer, body["access_token"]).status_code == 200


def test_token_from_http_basic_client():
    with JaggaerSandbox(port=0, token_ttl=900) as jg:
        basic = base64.b64encode(f"{jg.client_id}:{jg.client_secret}".encode()).decode()
        answer = requests.post(jg.token_url, data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})
        assert answer.status_code == 200 and answer.json()["expires_in"] == 900
        assert get_suppliers(jg, answer.json()["access_token"]).status_code == 200


def test_bad_client_and_grant_are_refused(jaggaer):
    wrong_secret = requests.post(jaggaer.token_url, data={"grant_type": "client_credentials",
                                                          "client_id": jaggaer.client_id, "client_secret": "nope"})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    unknown_client = requests.post(jaggaer.token_url, data={"grant_type": "client_credentials", "client_id": "other",
                                                            "client_secret": jaggaer.client_secret})
    assert unknown_client.status_code == 401 and unknown_client.json()["error"] == "invalid_client"
    wrong_basic = base64.b64encode(f"{jaggaer.client_id}:bad".encode()).decode()
    basic = requests.post(jaggaer.token_url, data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {wrong_basic}"})
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
    password = requests.post(jaggaer.token_url, data={"grant_type": "password", "client_id": jaggaer.client_id,
                                                      "client_secret": jaggaer.client_secret})
    assert password.status_code == 400 and password.json()["error"] == "unsupported_grant_type"
    assert requests.get(jaggaer.token_url).status_code == 405


def test_api_calls_without_a_valid_token_get_401(jaggaer):
    for token in (None, "made-up"):
        answer = get_suppliers(jaggaer, token)
        assert answer.status_code == 401
        assert [e["code"] for e in answer.json()["errors"]] == ["UNAUTHORIZED"]
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    basic_on_api = requests.get(f"{jaggaer.api_url}/suppliers", auth=(jaggaer.client_id, jaggaer.client_secret))
    assert basic_on_api.status_code == 401


def test_expired_token_gets_401_and_a_new_one_works(jaggaer):
    jaggaer.change_settings(token_ttl=0)
    expired = requests.post(jaggaer.token_url, data={"grant_type": "client_credentials",
                                                     "client_id": jaggaer.client_id,
                                                     "client_secret": jaggaer.client_secret}).json()
    assert expired["expires_in"] == 0
    answer = get_suppliers(jaggaer, expired["access_token"])
    assert answer.status_code == 401 and "expired" in answer.json()["errors"][0]["message"]
    jaggaer.change_settings(token_ttl=60)
    assert get_suppliers(jaggaer, token_for(jaggaer)).status_code == 200


def test_revoked_tokens_get_401(jaggaer):
    first, second = token_for(jaggaer), token_for(jaggaer)
    assert get_suppliers(jaggaer, first).status_code == 200 and get_suppliers(jaggaer, second).status_code == 200
    assert jaggaer.revoke_tokens() == 2
    assert get_suppliers(jaggaer, first).status_code == 401 and get_suppliers(jaggaer, second).status_code == 401
    assert get_suppliers(jaggaer, token_for(jaggaer)).status_code == 200


def test_unknown_paths_and_methods(jaggaer):
    headers = {"Authorization": f"Bearer {token_for(jaggaer)}"}
    missing = requests.get(f"{jaggaer.api_url}/contracts", headers=headers)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NOT_FOUND"
    assert requests.get(f"{jaggaer.base_url}/api/v2/suppliers", headers=headers).status_code == 404
    post_invoice = requests.post(f"{jaggaer.api_url}/invoices", json={}, headers=headers)
    assert post_invoice.status_code == 405 and post_invoice.json()["errors"][0]["code"] == "METHOD_NOT_ALLOWED"
    assert post_invoice.headers["Allow"] == "GET"
    assert requests.delete(f"{jaggaer.api_url}/suppliers/SUP-000001", headers=headers).status_code == 405


def test_child_process_serves_the_same_api():
    with JaggaerSandboxProcess(port=0, token_ttl=120, rate_limit=50) as jg:
        assert jg.info()["token_ttl"] == 120 and jg.info()["rate_limit"] == 50
        headers = {"Authorization": f"Bearer {token_for(jg)}"}
        created = requests.post(f"{jg.api_url}/suppliers", json={"externalId": "S1", "name": "Child", "country": "FI"},
                                headers=headers)
        assert created.status_code == 201, created.text
        assert [s["externalId"] for s in jg.suppliers()] == ["S1"]
        process = jg.process
    assert process.poll() is not None
