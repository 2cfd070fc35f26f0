"""Every stand-in serving HTTPS (a test CA's certificate for 127.0.0.1): real TLS over loopback, the absolute URLs it
writes in https, its injected network faults unchanged, clients that do not trust the CA refused, and the command line
(--tls-cert/--tls-key, MLC_SANDBOX_TLS_CERT/_KEY) saying what is wrong with a bad certificate."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys

import pytest
import requests

from mlc_sandbox.databricks import DatabricksSandbox
from mlc_sandbox.ifs import IfsSandbox
from mlc_sandbox.jaggaer.sandbox import JaggaerSandbox
from mlc_sandbox.jira.sandbox import JiraSandbox
from mlc_sandbox.salesforce.sandbox import SalesforceSandbox, SalesforceSandboxProcess
from mlc_sandbox.teams.sandbox import TeamsSandbox
from support.ports import free_port_base
from support.tls import make_tls

SCALE, SEED = 200, 7
PO = "PurchaseOrderHandling.svc/PurchaseOrderSet"


def trusting(ca_file) -> requests.Session:
    """A session that trusts the test CA only (trust_env off: REQUESTS_CA_BUNDLE would override verify)."""
    session = requests.Session()
    session.trust_env, session.verify = False, str(ca_file)
    return session


def bearer(session: requests.Session, token_url: str, client_id: str, client_secret: str) -> dict:
    response = session.post(token_url, data={"grant_type": "client_credentials", "client_id": client_id,
                                             "client_secret": client_secret})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def ifs_tls(sandbox_tls, data_dir):
    with IfsSandbox(scale=SCALE, seed=SEED, port=0, data_dir=data_dir, rate_limit=0,
                    **sandbox_tls.server_options) as ifs:
        yield ifs


def ifs_get(ifs, session, query: str) -> requests.Response:
    token = bearer(session, ifs.token_url, ifs.client_id, ifs.client_secret)["access_token"]
    return session.get(f"{ifs.base_url}{ifs.api_root}/{PO}?{query}", headers={"Authorization": f"Bearer {token}"})


def test_ifs_serves_odata_over_https_with_https_links(ifs_tls, sandbox_tls):
    session = trusting(sandbox_tls.ca_file)
    assert ifs_tls.base_url.startswith("https://127.0.0.1:")
    page = ifs_get(ifs_tls, session, "$top=2").json()
    assert page["@odata.context"].startswith(f"{ifs_tls.base_url}/")
    assert len(page["value"]) == 2


def test_ifs_faults_over_https(ifs_tls, sandbox_tls):
    session = trusting(sandbox_tls.ca_file)
    ifs_tls.add_fault("drop", count=1)
    with pytest.raises(requests.ConnectionError) as dropped:
        ifs_get(ifs_tls, session, "$top=1")
    assert not isinstance(dropped.value, requests.exceptions.SSLError)  # a cut connection, not a certificate problem
    ifs_tls.add_fault("malformed", count=1)
    truncated = ifs_get(ifs_tls, session, "$top=3")
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.text)
    assert len(ifs_get(ifs_tls, session, "$top=3").json()["value"]) == 3


def test_a_client_that_does_not_trust_the_ca_is_refused_and_the_server_goes_on(ifs_tls, sandbox_tls, tmp_path):
    other_ca = make_tls(tmp_path / "other", organization="another CA")
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        trusting(other_ca.ca_file).get(f"{ifs_tls.base_url}/_admin/health")
    # plain HTTP on the HTTPS port gets no answer
    with pytest.raises(requests.ConnectionError):
        requests.get(ifs_tls.base_url.replace("https://", "http://") + "/_admin/health", timeout=30)
    assert trusting(sandbox_tls.ca_file).get(f"{ifs_tls.base_url}/_admin/health").status_code == 200


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(ifs_tls, sandbox_tls):
    import socket

    old_client = ssl.create_default_context(cafile=str(sandbox_tls.ca_file))
    old_client.set_ciphers("DEFAULT:@SECLEVEL=0")  # this side would speak TLS 1.0/1.1
    old_client.minimum_version, old_client.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", ifs_tls.port)) as raw:
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS"):
            old_client.wrap_socket(raw, server_hostname="127.0.0.1")
    current = ssl.create_default_context(cafile=str(sandbox_tls.ca_file))
    with socket.create_connection(("127.0.0.1", ifs_tls.port)) as raw:
        with current.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_salesforce_jira_jaggaer_teams_databricks_over_https(sandbox_tls):
    session = trusting(sandbox_tls.ca_file)
    with SalesforceSandbox(port=0, **sandbox_tls.server_options) as sf:
        token = bearer(session, sf.token_url, sf.client_id, sf.client_secret)
        assert token["instance_url"] == sf.base_url and sf.base_url.startswith("https://")
        sf.add_fault("drop", count=1)
        with pytest.raises(requests.ConnectionError):
            session.get(f"{sf.api_url}/limits", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert session.get(f"{sf.api_url}/limits",
                           headers={"Authorization": f"Bearer {token['access_token']}"}).status_code == 200
    with JiraSandbox(port=0, **sandbox_tls.server_options) as jira:
        me = session.get(f"{jira.base_url}/rest/api/3/myself", auth=(jira.email, jira.api_token))
        assert me.status_code == 200 and me.json()["self"].startswith(f"{jira.base_url}/")
    with JaggaerSandbox(port=0, **sandbox_tls.server_options) as jg:
        token = bearer(session, jg.token_url, jg.client_id, jg.client_secret)["access_token"]
        assert session.get(f"{jg.api_url}/suppliers", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert jg.info()["base_url"] == jg.base_url
    with TeamsSandbox(port=0, channels="finance-10", **sandbox_tls.server_options) as teams:
        url = teams.webhook_url("finance-10")
        assert url.startswith(f"{teams.base_url}/")
        card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "over TLS"}]}
        posted = session.post(url, json={"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]})
        assert posted.status_code == 202, posted.text
        assert teams.cards("finance-10") == [card]
    with DatabricksSandbox(port=0, **sandbox_tls.server_options) as dbx:
        headers = {"Authorization": f"Bearer {dbx.token}"}
        dbx.add_fault("drop_response", count=1)
        statement = {"statement": "SELECT 1", "warehouse_id": dbx.warehouse_id, "wait_timeout": "10s"}
        with pytest.raises(requests.ConnectionError):
            session.post(f"{dbx.base_url}/api/2.0/sql/statements", headers=headers, json=statement)
        result = session.post(f"{dbx.base_url}/api/2.0/sql/statements", headers=headers, json=statement).json()
        assert result["status"]["state"] == "SUCCEEDED" and result["result"]["data_array"] == [["1"]]
        warehouse = session.get(f"{dbx.base_url}/api/2.0/sql/warehouses/{dbx.warehouse_id}", headers=headers).json()
        assert warehouse["odbc_params"]["protocol"] == "https"


def test_a_child_process_serves_https(sandbox_tls):
    with SalesforceSandboxProcess(port=0, **sandbox_tls.server_options) as sf:
        assert sf.base_url.startswith("https://127.0.0.1:")
        assert sf.info()  # the admin client trusts the served certificate
        assert bearer(trusting(sandbox_tls.ca_file), sf.token_url, sf.client_id,
                      sf.client_secret)["instance_url"] == sf.base_url


def test_the_handles_want_both_files(sandbox_tls):
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        JiraSandbox(port=0, tls_cert=sandbox_tls.cert_file)


def mlc_sandbox(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlc_sandbox", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_the_command_line_names_a_bad_certificate(sandbox_tls, tmp_path):
    missing = mlc_sandbox("serve", "jaggaer", "--port", "0", "--tls-cert", str(tmp_path / "nope.pem"),
                          "--tls-key", str(sandbox_tls.key_file))
    assert missing.returncode != 0
    assert "--tls-cert/--tls-key" in missing.stderr and "nope.pem" in missing.stderr and "does not exist" in missing.stderr
    swapped = mlc_sandbox("serve", "jaggaer", "--port", "0", "--tls-cert", str(sandbox_tls.key_file),
                          "--tls-key", str(sandbox_tls.cert_file))
    assert swapped.returncode != 0 and "cannot be used together" in swapped.stderr
    half = mlc_sandbox("serve", "jaggaer", "--port", "0", env={"MLC_SANDBOX_TLS_CERT": str(sandbox_tls.cert_file)})
    assert half.returncode != 0 and "go together" in half.stderr


def test_env_prints_https_urls_when_the_stand_ins_serve_tls(sandbox_tls):
    printed = mlc_sandbox("env", env=sandbox_tls.serve_environment).stdout
    assert "export MLC_SANDBOX_SALESFORCE_URL=https://127.0.0.1:" in printed
    assert "http://" not in printed


def test_wait_checks_over_https_when_the_stand_ins_serve_tls(sandbox_tls):
    base = free_port_base()
    env = {**sandbox_tls.serve_environment, "MLC_SANDBOX_PORT_BASE": str(base)}
    with SalesforceSandbox(port=base + 400, **sandbox_tls.server_options):
        waited = mlc_sandbox("wait", "salesforce", "--timeout", "30", env=env)
        assert waited.returncode == 0, waited.stderr
    unreadable = mlc_sandbox("wait", "salesforce", "--timeout", "1",
                             env={**env, "MLC_SANDBOX_TLS_CERT": str(sandbox_tls.key_file)})
    assert unreadable.returncode != 0 and "MLC_SANDBOX_TLS_CERT" in unreadable.stderr
