"""Workspace authentication on the Databricks stand-in: host metadata, personal access tokens and OAuth M2M."""

from __future__ import annotations

import time

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied, Unauthenticated
from databricks.sdk.errors.parser import _Parser

from databricks_standin_client import query

STATEMENTS = "/api/2.0/sql/statements"


def _post_statement(dbx, headers: dict) -> requests.Response:
    return requests.post(dbx.base_url + STATEMENTS, headers=headers,
                         json={"warehouse_id": dbx.warehouse_id, "statement": "SELECT 1"})


def test_sdk_discovers_the_workspace_through_host_metadata(databricks, workspace):
    metadata = requests.get(databricks.base_url + "/.well-known/databricks-config").json()
    assert metadata["oidc_endpoint"] == databricks.base_url + "/oidc"
    assert workspace.config.workspace_id == metadata["workspace_id"]
    assert workspace.config.discovery_url == databricks.base_url + "/oidc/.well-known/oauth-authorization-server"
    discovery = requests.get(workspace.config.discovery_url).json()
    assert discovery["token_endpoint"] == databricks.base_url + "/oidc/v1/token"


def test_personal_access_token_is_sent_as_bearer_and_accepted(databricks, workspace):
    assert workspace.config.auth_type == "pat"
    assert query(workspace, databricks.warehouse_id, "SELECT 1 AS one") == [["1"]]
    api_calls = [r for r in databricks.requests() if r["path"].startswith("/api/")]
    assert api_calls and all(r["auth"] == "pat" for r in api_calls)


def test_missing_credentials_answer_401_in_databricks_error_shape(databricks):
    response = _post_statement(databricks, {})
    assert response.status_code == 401
    assert response.json() == {"error_code": 401, "message":
                               "Credential was not sent or was of an unsupported type for this API."}
    assert _post_statement(databricks, {"Authorization": "Basic abc"}).status_code == 401
    assert isinstance(_Parser().get_api_error(response), Unauthenticated)  # how databricks-sdk reads it


def test_wrong_token_answers_403_invalid_access_token(databricks):
    response = _post_statement(databricks, {"Authorization": "Bearer dapi-wrong"})
    assert response.status_code == 403
    assert response.json() == {"error_code": 403, "message": "Invalid access token."}
    assert response.headers["X-Databricks-Reason-Phrase"] == "Invalid access token."

    client = WorkspaceClient(host=databricks.base_url, token="dapi-wrong")
    with pytest.raises(PermissionDenied, match="Invalid access token"):
        client.statement_execution.execute_statement("SELECT 1", databricks.warehouse_id)


def test_revoked_and_expired_personal_access_tokens_are_refused(databricks):
    short = databricks.add_token(lifetime_seconds=0.5)
    assert _post_statement(databricks, {"Authorization": f"Bearer {short}"}).status_code == 200
    time.sleep(0.6)
    expired = _post_statement(databricks, {"Authorization": f"Bearer {short}"})
    assert (expired.status_code, expired.json()["message"]) == (403, "Invalid access token.")

    assert _post_statement(databricks, {"Authorization": f"Bearer {databricks.token}"}).status_code == 200
    databricks.revoke_tokens()
    assert _post_statement(databricks, {"Authorization": f"Bearer {databricks.token}"}).status_code == 403


def test_oauth_m2m_through_the_sdk(databricks):
    client = WorkspaceClient(host=databricks.base_url, client_id=databricks.client_id,
                             client_secret=databricks.client_secret)
    assert client.config.auth_type == "oauth-m2m"
    assert query(client, databricks.warehouse_id, "SELECT 'm2m' AS how") == [["m2m"]]
    token_requests = [r for r in databricks.requests() if r["path"] == "/oidc/v1/token"]
    assert [r["status"] for r in token_requests] == [200]
    assert all(r["auth"] == "oauth" for r in databricks.requests() if r["path"].startswith("/api/"))


def test_token_endpoint_refuses_wrong_secret_and_grant(databricks):
    wrong = requests.post(databricks.token_url, auth=(databricks.client_id, "nope"),
                          data={"grant_type": "client_credentials", "scope": "all-apis"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = requests.post(databricks.token_url, auth=(databricks.client_id, databricks.client_secret),
                          data={"grant_type": "password", "scope": "all-apis"})
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    form = requests.post(databricks.token_url, data={"grant_type": "client_credentials", "scope": "all-apis",
                                                     "client_id": databricks.client_id,
                                                     "client_secret": databricks.client_secret})
    assert form.status_code == 200 and form.json()["expires_in"] == 3600

    client = WorkspaceClient(host=databricks.base_url, client_id=databricks.client_id, client_secret="nope")
    with pytest.raises(Exception, match="invalid_client"):
        client.statement_execution.execute_statement("SELECT 1", databricks.warehouse_id)


def test_oauth_tokens_expire_and_the_sdk_fetches_new_ones(start_databricks):
    dbx = start_databricks(token_ttl=1)
    granted = requests.post(dbx.token_url, auth=(dbx.client_id, dbx.client_secret),
                            data={"grant_type": "client_credentials", "scope": "all-apis"}).json()
    assert granted["token_type"] == "Bearer" and granted["expires_in"] == 1
    bearer = {"Authorization": f"Bearer {granted['access_token']}"}
    assert _post_statement(dbx, bearer).status_code == 200

    client = WorkspaceClient(host=dbx.base_url, client_id=dbx.client_id, client_secret=dbx.client_secret)
    assert query(client, dbx.warehouse_id, "SELECT 1") == [["1"]]
    time.sleep(1.2)
    expired = _post_statement(dbx, bearer)
    assert (expired.status_code, expired.json()) == (403, {"error_code": 403, "message": "JWT has expired"})
    assert query(client, dbx.warehouse_id, "SELECT 2") == [["2"]]
    token_requests = [r for r in dbx.requests() if r["path"] == "/oidc/v1/token"]
    assert len(token_requests) >= 3  # ours, the SDK's first, the SDK's after expiry
    sdk_calls = [r for r in dbx.requests()
                 if r["path"].startswith("/api/") and "databricks-sdk" in r["headers"].get("User-Agent", "")]
    assert len(sdk_calls) == 2 and all(r["status"] == 200 for r in sdk_calls)  # refreshed before it was refused
