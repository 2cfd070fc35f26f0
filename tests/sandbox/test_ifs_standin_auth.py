import time

import requests

from ifs_standin_client import Client

CREDENTIALS = {"grant_type": "client_credentials", "client_id": "mlc-sandbox-client",
               "client_secret": "mlc-sandbox-secret"}


def test_token_answer_has_the_keycloak_shape(sandbox):
    response = requests.post(sandbox.token_url, data={**CREDENTIALS, "scope": "openid microprofile-jwt"})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 180 and body["refresh_expires_in"] == 1800
    assert body["token_type"] == "Bearer" and body["not-before-policy"] == 0
    assert body["scope"] == "openid audience microprofile-jwt profile email"
    assert body["access_token"].count(".") == 2


def test_wrong_secret_and_unknown_realm(sandbox):
    response = requests.post(sandbox.token_url, data={**CREDENTIALS, "client_secret": "nope"})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client",
                               "error_description": "Invalid client or Invalid client credentials"}
    response = requests.post(f"{sandbox.base_url}/auth/realms/other/protocol/openid-connect/token", data=CREDENTIALS)
    assert response.status_code == 404 and response.json() == {"error": "Realm does not exist"}


def test_client_secret_basic_is_accepted(sandbox):
    response = requests.post(sandbox.token_url, data={"grant_type": "client_credentials"},
                             auth=("mlc-sandbox-client", "mlc-sandbox-secret"))
    assert response.status_code == 200


def _assert_unauthorized(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == "ODP_UNAUTHORIZED" and error["message"]


def test_data_requests_need_a_live_bearer_token(sandbox):
    url = f"{sandbox.service_url('PurchaseOrderHandling')}/PurchaseOrderSet?$top=1"
    _assert_unauthorized(requests.get(url))
    _assert_unauthorized(requests.get(url, headers={"Authorization": "Bearer not-a-token"}))
    _assert_unauthorized(requests.get(f"{sandbox.service_url('PurchaseOrderHandling')}/$metadata"))


def test_token_expires_after_its_ttl(fresh):
    ifs = fresh(token_ttl=1)
    client = Client(ifs)
    assert client.get("PurchaseOrderHandling", "PurchaseOrderSet", "$top=1").status_code == 200
    time.sleep(1.2)
    _assert_unauthorized(client.get("PurchaseOrderHandling", "PurchaseOrderSet", "$top=1"))
    client.token = client.new_token()
    assert client.get("PurchaseOrderHandling", "PurchaseOrderSet", "$top=1").status_code == 200


def test_ttl_setting_and_revocation_apply_live(fresh):
    ifs = fresh()
    ifs.change_settings(token_ttl=5)
    client = Client(ifs)
    assert requests.post(ifs.token_url, data=CREDENTIALS).json()["expires_in"] == 5
    assert ifs.revoke_tokens()["revoked"] >= 1
    _assert_unauthorized(client.get("PurchaseOrderHandling", "PurchaseOrderSet", "$top=1"))


def test_openid_discovery(sandbox):
    body = requests.get(f"{sandbox.base_url}/auth/realms/mlc/.well-known/openid-configuration").json()
    assert body["token_endpoint"] == sandbox.token_url
