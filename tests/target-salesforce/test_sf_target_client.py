"""The shared Salesforce client (ml_connector_core.salesforce) over real HTTP against the stand-in: one token kept until
Salesforce ends the session, Sforce-Limit-Info read on every answer, Salesforce's errors quoted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ml_connector_core.salesforce import (
    SalesforceAuthError,
    SalesforceConfigError,
    SalesforceError,
    SalesforceLimitError,
    client_from_config,
    parse_limit_info,
)
from test_sf_target_upserts import sf  # noqa: F401  (the stand-in fixture)


def connect(sf, **extra):
    return client_from_config({"base_url": sf.base_url, "client_id": sf.client_id, "client_secret": sf.client_secret,
                               "api_usage_slowdown_seconds": 0, **extra})


def test_one_token_is_kept_until_the_session_ends_then_renewed_once(sf):
    client = connect(sf)
    for _ in range(3):
        client.describe("Account")
    assert client.auth.tokens_fetched == 1  # no expires_in: the token is kept
    sf.expire_sessions()
    assert client.describe("Account")["name"] == "Account"
    assert client.auth.tokens_fetched == 2 and client.sessions_renewed == 1


def test_usage_is_read_from_every_answer_and_stops_new_work_above_the_share(sf):
    client = connect(sf)
    client.describe("Account")
    assert client.usage is not None and client.usage.limit == 15000 and client.usage.used >= 1
    sf.set_api_usage(14_000)
    client.describe("Account")
    assert client.usage.used == 14_001
    with pytest.raises(SalesforceLimitError, match=r"14001/15000 API requests in the last 24 hours \(93%\)"):
        client.describe("Account")
    assert parse_limit_info("api-usage=135/15000") .share == 135 / 15000
    assert parse_limit_info(None) is None


def test_the_orgs_limit_is_a_limit_error_quoting_salesforce(sf):
    client = connect(sf)
    sf.set_api_usage(15_000)
    with pytest.raises(SalesforceLimitError, match="REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."):
        client.describe("Account")


def test_errors_quote_error_code_and_message(sf):
    client = connect(sf)
    with pytest.raises(SalesforceError, match="MALFORMED_QUERY") as refused:
        list(client.query_pages("SELECT FROM Account"))
    assert refused.value.status == 400 and refused.value.error_codes == ["MALFORMED_QUERY"]
    results = client.upsert_collection("Account", "IFS_Supplier_Id__c", [
        {"IFS_Supplier_Id__c": "S1", "Name": "Acme", "Credit_Limit__c": Decimal("1234.56")},
        {"IFS_Supplier_Id__c": "S2"},
    ])
    assert results[0]["success"] and results[0]["created"]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    rows = [r for page in client.query_pages("SELECT Id, Credit_Limit__c FROM Account WHERE IFS_Supplier_Id__c = 'S1'")
            for r in page]
    assert rows[0]["Credit_Limit__c"] == Decimal("1234.56")


def test_refused_credentials_and_bad_settings_are_named(sf):
    with pytest.raises(SalesforceAuthError, match="invalid_client"):
        connect(sf, client_secret="wrong").describe("Account")
    with pytest.raises(SalesforceConfigError, match="base_url is required"):
        client_from_config({"client_id": "x", "client_secret": "y"})
    with pytest.raises(SalesforceConfigError, match="api_version 'latest'"):
        connect(sf, api_version="latest")
    with pytest.raises(SalesforceError, match="HTTP 410: GONE: API version 20.0 has been retired"):
        connect(sf, api_version="v20.0").describe("Account")  # a retired version, as Salesforce answers it
    with pytest.raises(SalesforceError, match="NOT_FOUND"):
        connect(sf, api_version="v99.0").describe("Account")  # one not released yet
