"""target-jaggaer-check as its own process against the JAGGAER stand-in: the token and the writer's lookup by
externalId for each object kind answer; a wrong client secret is one line naming the setting; nothing is written, no
secret printed."""

from __future__ import annotations

import pytest

from mlc_sandbox.jaggaer import JaggaerSandbox
from support.check import assert_table_all_pass, only_reads, run_check

STREAMS = {"jaggaer_suppliers": {"object": "supplier"}, "jaggaer_purchase_orders": {"object": "purchase_order"}}


@pytest.fixture
def jaggaer():
    with JaggaerSandbox(port=0) as stand_in:
        yield stand_in


def connection(jaggaer, **changes) -> dict:
    return {"base_url": jaggaer.base_url, "client_id": jaggaer.client_id, "client_secret": jaggaer.client_secret,
            **changes}


def test_the_target_fits_reading_only(jaggaer, tmp_path):
    run = run_check("target-jaggaer-check", connection(jaggaer, streams=STREAMS), tmp_path,
                    secrets=[jaggaer.client_secret], output_format="table")
    assert assert_table_all_pass(run, "JAGGAER") == ["token", "supplier lookup", "purchase_order lookup"]
    assert "GET /api/v1/suppliers?externalId=mlc-check-no-such-key answers 200" in run.stdout
    only_reads(jaggaer.requests(), allowed_posts=("/oauth/token",))
    assert jaggaer.suppliers() == [] and jaggaer.purchase_orders() == []



def test_a_wrong_client_secret(jaggaer, tmp_path):
    wrong = "wrong-jaggaer-secret"
    run = run_check("target-jaggaer-check", connection(jaggaer, client_secret=wrong, streams=STREAMS), tmp_path,
                    secrets=[wrong, jaggaer.client_secret])
    assert run.returncode == 1
    [failure] = run.results
    assert failure["check"] == "token" and "invalid_client" in failure["detail"]
    assert failure["fix"] == ("client_secret (TARGET_JAGGAER_CLIENT_SECRET): the secret issued for API client "
                              f"'{jaggaer.client_id}'")
