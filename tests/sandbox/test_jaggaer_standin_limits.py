"""The JAGGAER stand-in's guards over real HTTP: the per-minute rate limit (429 RATE_LIMITED with Retry-After),
injected faults (status, rate_limit, drop, lost_answer, delay; method and path filters; the token endpoint), and the
request log with the JSON bodies of writes and never the client secret."""

from __future__ import annotations

import math
import time

import pytest
import requests

import jaggaer_standin_client as standin
from jaggaer_standin_client import Client, errors_of, token_for
from mlc_sandbox.jaggaer import JaggaerSandbox

api, jaggaer = standin.api, standin.jaggaer  # fixtures


def test_rate_limit_answers_429_with_retry_after():
    with JaggaerSandbox(port=0, rate_limit=3) as jg:
        api = Client(jg)
        started = time.monotonic()
        statuses = [api.call("GET", "suppliers").status_code for _ in range(3)]
        throttled = api.call("POST", "suppliers", {"externalId": "S1", "name": "N", "country": "SE"})
        elapsed = time.monotonic() - started
        assert statuses == [200, 200, 200]
        assert throttled.status_code == 429 and errors_of(throttled) == [("RATE_LIMITED", None)]
        # until the first of the minute's requests leaves the window: a minute less the time they took (whole seconds)
        assert 60 - math.ceil(elapsed) - 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert jg.suppliers() == []  # the throttled write was not made
        assert token_for(jg)  # the token endpoint is not throttled
        jg.change_settings(rate_limit=0)
        assert api.call("GET", "suppliers").status_code == 200
        assert [r["status"] for r in jg.requests() if r["path"].startswith("/api/")][-2:] == [429, 200]


def test_status_fault_hits_matching_requests_only(api):
    api.jg.add_fault("status", count=2, status=503, retry_after=7, method="POST", path="/purchase-orders")
    assert api.call("POST", "suppliers", {"externalId": "S1", "name": "N", "country": "SE"}).status_code == 201
    body = {"externalId": "P1", "supplierExternalId": "S1", "companyCode": "10", "orderDate": "2026-01-01",
            "currency": "SEK", "lines": []}
    for _ in range(2):
        failed = api.call("POST", "purchase-orders", body)
        assert failed.status_code == 503 and failed.headers["Retry-After"] == "7"
        assert errors_of(failed) == [("SERVICE_UNAVAILABLE", None)]
    assert api.jg.purchase_orders() == []
    assert api.call("POST", "purchase-orders", body).status_code == 201
    api.jg.add_fault("status")
    plain = api.call("GET", "suppliers")
    assert plain.status_code == 500 and "Retry-After" not in plain.headers
    faulted = [r for r in api.jg.requests() if r["fault"] == "status"]
    assert [(r["method"], r["status"]) for r in faulted] == [("POST", 503), ("POST", 503), ("GET", 500)]


def test_rate_limit_fault_is_429(api):
    api.jg.add_fault("rate_limit", retry_after=3)
    throttled = api.call("GET", "invoices")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert errors_of(throttled) == [("RATE_LIMITED", None)]
    assert api.call("GET", "invoices").status_code == 200


def test_drop_loses_the_request_and_lost_answer_loses_only_the_answer(api):
    supplier = {"externalId": "S1", "name": "N", "country": "SE"}
    api.jg.add_fault("drop", method="POST")
    with pytest.raises(requests.ConnectionError):
        api.call("POST", "suppliers", supplier)
    assert api.jg.suppliers() == []
    api.jg.add_fault("lost_answer", method="POST")
    with pytest.raises(requests.ConnectionError):
        api.call("POST", "suppliers", supplier)
    assert [s["externalId"] for s in api.jg.suppliers()] == ["S1"]  # it was made: a retry must not duplicate it
    retried = api.call("POST", "suppliers", supplier)
    assert retried.status_code == 409
    assert [(r["fault"], r["status"]) for r in api.jg.requests() if r["path"].startswith("/api/")] == [
        ("drop", None), ("lost_answer", None), (None, 409)]


def test_delay_fault_still_answers(api):
    api.jg.add_fault("delay", delay_seconds=0.2)
    assert api.call("GET", "suppliers").status_code == 200
    assert api.jg.requests()[-1]["fault"] == "delay"


def test_token_endpoint_faults(jaggaer):
    jaggaer.add_fault("status", api="oauth", status=503, retry_after=2)
    form = {"grant_type": "client_credentials", "client_id": jaggaer.client_id, "client_secret": jaggaer.client_secret}
    failed = requests.post(jaggaer.token_url, data=form)
    assert failed.status_code == 503 and failed.headers["Retry-After"] == "2"
    jaggaer.add_fault("drop", api="oauth")
    with pytest.raises(requests.ConnectionError):
        requests.post(jaggaer.token_url, data=form)
    assert requests.post(jaggaer.token_url, data=form).status_code == 200


def test_bad_faults_are_refused(jaggaer):
    for details in ({"kind": "explode"}, {"kind": "status", "status": 200}, {"kind": "status", "colour": "red"},
                    {"kind": "lost_answer", "api": "oauth"}, {"kind": "delay", "count": 0}):
        with pytest.raises(RuntimeError) as refused:
            jaggaer.admin("POST", "faults", details)
        assert "400" in str(refused.value)
    jaggaer.add_fault("status", count=5)
    assert len(jaggaer.admin("GET", "faults")["faults"]) == 1
    jaggaer.clear_faults()
    assert jaggaer.admin("GET", "faults")["faults"] == []


def test_request_log_keeps_write_bodies_and_no_secrets(api):
    api.call("POST", "suppliers", {"externalId": "S1", "name": "Acme", "country": "SE", "taxId": "T-1"})
    api.call("PUT", "suppliers/SUP-000001", '{"externalId": "S1", "name": "Acme AB", "country": "SE"}')
    api.call("POST", "suppliers", "{broken")
    api.call("GET", "suppliers", externalId="S1")
    entries = api.jg.requests()
    assert entries[0]["path"] == "/oauth/token" and "body" not in entries[0]
    writes = [(e["method"], e["path"], e["status"], e["body"]) for e in entries
              if e["method"] in ("POST", "PUT") and e["path"].startswith("/api/")]
    assert writes == [
        ("POST", "/api/v1/suppliers", 201, {"externalId": "S1", "name": "Acme", "country": "SE", "taxId": "T-1"}),
        ("PUT", "/api/v1/suppliers/SUP-000001", 200, {"externalId": "S1", "name": "Acme AB", "country": "SE"}),
        ("POST", "/api/v1/suppliers", 400, "{broken")]
    assert entries[-1]["query"] == "externalId=S1" and "body" not in entries[-1]
    assert entries[-2]["error_codes"] == ["MALFORMED_JSON"]
    assert api.jg.client_secret not in str(entries)
    api.jg.clear_requests()
    assert api.jg.requests() == []
