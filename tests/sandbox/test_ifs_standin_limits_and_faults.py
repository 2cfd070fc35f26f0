import json
import time

import pytest
import requests

from mlc_sandbox.ifs.guards import FaultRates

from ifs_standin_client import Client

PO = ("PurchaseOrderHandling", "PurchaseOrderSet")


def test_rate_limit_answers_429_with_retry_after(fresh):
    ifs = fresh(rate_limit=5)
    client = Client(ifs)
    statuses = [client.get(*PO, "$top=1").status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    response = client.get(*PO, "$top=1")
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "ODP_TOO_MANY_REQUESTS"
    ifs.change_settings(rate_limit=0)
    assert client.get(*PO, "$top=1").status_code == 200


def test_status_fault_only_hits_matching_paths_and_counts_down(fresh):
    ifs = fresh()
    client = Client(ifs)
    ifs.add_fault("status", count=2, status=502, path_contains="PurchaseOrderLineNopartSet")
    assert client.get(*PO, "$top=1").status_code == 200
    lines = ("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", "$top=1")
    assert [client.get(*lines).status_code for _ in range(3)] == [502, 502, 200]
    log = ifs.requests()
    assert [e["fault"] for e in log if e["kind"] == "data"] == [None, "status", "status", None]
    assert log[-1]["headers"]["X-Ifs-Time-Zone-Aware-Request"] == "true"


def test_rate_limit_fault_sends_retry_after(fresh):
    ifs = fresh()
    client = Client(ifs)
    ifs.add_fault("rate_limit", count=1, retry_after=7)
    response = client.get(*PO, "$top=1")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert client.get(*PO, "$top=1").status_code == 200


def test_dropped_connection(fresh):
    ifs = fresh()
    client = Client(ifs)
    ifs.add_fault("drop", count=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(client.url(*PO, "$top=1"), headers={"Authorization": f"Bearer {client.token}"})
    assert client.get(*PO, "$top=1").status_code == 200


def test_malformed_body(fresh):
    ifs = fresh()
    client = Client(ifs)
    ifs.add_fault("malformed", count=1)
    response = client.get(*PO, "$top=3")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    json.loads(client.get(*PO, "$top=3").text)


def test_delay(fresh):
    ifs = fresh()
    client = Client(ifs)
    ifs.add_fault("delay", count=1, delay_seconds=0.6)
    started = time.monotonic()
    assert client.get(*PO, "$top=1").status_code == 200
    assert time.monotonic() - started >= 0.6


def test_token_endpoint_fails_only_when_named(fresh):
    ifs = fresh()
    ifs.add_fault("status", count=1, status=503)
    Client(ifs)  # the token request is not a data request: untouched
    ifs.clear_faults()
    ifs.add_fault("status", count=1, status=503, path_contains="openid-connect/token")
    with pytest.raises(requests.HTTPError):
        Client(ifs)


def test_bad_fault_definitions_are_refused(fresh):
    ifs = fresh()
    for body in ({"kind": "explode"}, {"kind": "status", "status": 302}, {"kind": "delay", "count": 0}):
        with pytest.raises(RuntimeError, match="400"):
            ifs.admin("POST", "faults", body)


def _fault_pattern(fresh, seed):
    ifs = fresh(fault_rates=FaultRates(status_5xx=0.3, rate_limit=0.2), fault_seed=seed)
    client = Client(ifs)
    return [client.get(*PO, "$top=1").status_code for _ in range(25)]


def test_random_fault_rates_are_seeded(fresh):
    first, again, other = _fault_pattern(fresh, 3), _fault_pattern(fresh, 3), _fault_pattern(fresh, 4)
    assert first == again and first != other
    assert {200, 429} <= set(first) and set(first) - {200, 429} <= {500, 502, 503}


def test_fault_rates_settable_live(fresh):
    ifs = fresh()
    client = Client(ifs)
    ifs.change_settings(fault_rates={"drop": 1.0})
    with pytest.raises(requests.ConnectionError):
        requests.get(client.url(*PO, "$top=1"), headers={"Authorization": f"Bearer {client.token}"})
    ifs.change_settings(fault_rates={"drop": 0.0})
    assert client.get(*PO, "$top=1").status_code == 200
