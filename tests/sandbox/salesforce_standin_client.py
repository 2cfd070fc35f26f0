"""What the Salesforce stand-in's API tests share: a fresh in-process stand-in per test and a requests session holding
a client-credentials token for it, over real HTTP."""

from __future__ import annotations

import pytest
import requests

from mlc_sandbox.salesforce import SalesforceSandbox


@pytest.fixture
def sf():
    with SalesforceSandbox(port=0) as sandbox:
        yield sandbox


def session_for(sf) -> requests.Session:
    """A session holding a fresh client-credentials token of the stand-in."""
    token = requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": sf.client_id,
                                              "client_secret": sf.client_secret}).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


@pytest.fixture
def api(sf) -> requests.Session:
    return session_for(sf)
