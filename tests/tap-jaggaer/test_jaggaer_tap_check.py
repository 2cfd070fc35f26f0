"""tap-jaggaer-check as its own process against the JAGGAER stand-in: the token, each listing the streams read (one
item, the tap's own modifiedSince) and the purchase order lookup answer; a wrong client secret and a listing the API
client may not read each get their own line; nothing is written, no secret printed."""

from __future__ import annotations

import pytest

from mlc_sandbox.jaggaer import JaggaerSandbox
from support.check import assert_table_all_pass, only_reads, run_check


@pytest.fixture
def jaggaer():
    with JaggaerSandbox(port=0) as stand_in:
        yield stand_in


def connection(jaggaer, **changes) -> dict:
    return {"base_url": jaggaer.base_url, "client_id": jaggaer.client_id, "client_secret": jaggaer.client_secret,
            **changes}


def test_the_tap_fits_reading_only(jaggaer, tmp_path):
    run = run_check("tap-jaggaer-check", connection(jaggaer, start_date="2026-01-01T00:00:00Z"), tmp_path,
                    secrets=[jaggaer.client_secret], output_format="table")
    assert assert_table_all_pass(run, "JAGGAER") == ["token", "stream invoices", "stream receipts",
                                                     "stream suppliers", "purchase order lookup"]
    listings = [r for r in jaggaer.requests() if r["path"] == "/api/v1/invoices"]
    assert listings and all("pageSize=1" in r["query"] and "modifiedSince=2026-01-01T00%3A00%3A00.000Z" in r["query"]
                            for r in listings), listings
    only_reads(jaggaer.requests(), allowed_posts=("/oauth/token",))


def test_a_wrong_client_secret(jaggaer, tmp_path):
    wrong = "wrong-jaggaer-secret"
    run = run_check("tap-jaggaer-check", connection(jaggaer, client_secret=wrong), tmp_path,
                    secrets=[wrong, jaggaer.client_secret])
    assert run.returncode == 1
    [failure] = run.results
    assert failure["check"] == "token" and "invalid_client" in failure["detail"]
    assert failure["fix"] == ("client_secret (TAP_JAGGAER_CLIENT_SECRET): the secret issued for API client "
                              f"'{jaggaer.client_id}'")


def test_a_listing_the_api_client_may_not_read(jaggaer, tmp_path):
    jaggaer.add_fault("status", status=403, method="GET", path="/receipts")
    run = run_check("tap-jaggaer-check", connection(jaggaer), tmp_path, secrets=[jaggaer.client_secret])
    assert run.returncode == 1
    [failure] = run.failures()
    assert failure["check"] == "stream receipts" and "HTTP 403" in failure["detail"]
    assert failure["fix"] == f"give API client '{jaggaer.client_id}' read access to receipts on the JAGGAER instance"
    assert run.result("stream invoices")["status"] == "pass"
