"""What the Jira stand-in's API tests share: a fresh in-process stand-in per test and a requests session that signs
in with the API user's email and token, over real HTTP."""

from __future__ import annotations

import pytest
import requests

from mlc_sandbox.jira import JiraSandbox


@pytest.fixture
def jira():
    with JiraSandbox(port=0, rate_limit=0) as sandbox:
        yield sandbox


def session_for(jira) -> requests.Session:
    """A session with Basic auth (email + API token) whose `base` is the REST v3 root."""
    session = requests.Session()
    session.auth = (jira.email, jira.api_token)
    session.base = f"{jira.base_url}/rest/api/3"
    return session


@pytest.fixture
def api(jira):
    session = session_for(jira)
    yield session
    session.close()
