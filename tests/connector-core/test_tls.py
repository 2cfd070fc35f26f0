"""What the plugins trust over HTTPS (connector-core's tls.new_session, behind every session of every plugin), against
stand-ins serving HTTPS with certificates of test CAs: ca_bundle trusted in addition to the default bundle (certifi or
REQUESTS_CA_BUNDLE), REQUESTS_CA_BUNDLE honoured with the setting unset (also where singer-sdk sends prepared
requests), an untrusted certificate refused at once with an error naming the host and the setting, a bad ca_bundle a
configuration error naming the setting, from the library, a plugin process and a check command alike."""

from __future__ import annotations

import certifi
import pytest
import requests

from ml_connector_core.jira import client_from_config as jira_client
from ml_connector_core.salesforce import client_from_config as salesforce_client
from ml_connector_core.tls import CaBundleError, UntrustedCertificateError, new_session
from mlc_sandbox.jira import JiraSandbox
from mlc_sandbox.salesforce import SalesforceSandbox
from support.check import run_check
from support.singer import discover, run_tap
from support.tls import make_tls

NOT_THE_TEST_CA = {"REQUESTS_CA_BUNDLE": certifi.where(), "CURL_CA_BUNDLE": ""}  # public CAs only


@pytest.fixture(scope="module")
def jira(sandbox_tls):
    with JiraSandbox(port=0, **sandbox_tls.server_options) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def other_tls(tmp_path_factory):
    """A second CA, and a certificate it signed: a server the first CA's bundle does not vouch for."""
    return make_tls(tmp_path_factory.mktemp("other-tls"), organization="another test CA")


@pytest.fixture
def public_cas_only(monkeypatch):
    for name, value in NOT_THE_TEST_CA.items():
        monkeypatch.setenv(name, value)


def jira_config(jira, **extra) -> dict:
    return {"base_url": jira.base_url, "email": jira.email, "api_token": jira.api_token, **extra}


def test_ca_bundle_is_trusted_in_addition_to_the_default_bundle(jira, sandbox_tls, other_tls, monkeypatch):
    with SalesforceSandbox(port=0, **other_tls.server_options) as salesforce:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_tls.ca_file))  # the default bundle: only the other CA
        session = new_session({"ca_bundle": str(sandbox_tls.ca_file)})
        assert session.get(f"{jira.base_url}/_admin/health").status_code == 200  # by ca_bundle
        assert session.get(f"{salesforce.base_url}/_admin/health").status_code == 200  # by REQUESTS_CA_BUNDLE
        prepared = requests.Request("GET", f"{salesforce.base_url}/_admin/health").prepare()
        assert session.send(prepared).status_code == 200  # singer-sdk's way of sending, the same trust


def test_requests_ca_bundle_alone_is_honoured_also_by_session_send(jira, sandbox_tls, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_tls.ca_file))
    prepared = requests.Request("GET", f"{jira.base_url}/_admin/health").prepare()
    with pytest.raises(requests.exceptions.SSLError):  # requests' own Session.send ignores the environment
        requests.Session().send(prepared)
    assert new_session().send(prepared).status_code == 200
    assert new_session({"ca_bundle": None}).get(f"{jira.base_url}/_admin/health").status_code == 200
    assert jira_client(jira_config(jira)).myself()["emailAddress"] == jira.email


def test_jira_oauth_token_and_accessible_resources_over_tls(jira, sandbox_tls, public_cas_only):
    config = {"base_url": jira.base_url, "oauth_client_id": jira.client_id, "oauth_client_secret": jira.client_secret,
              "oauth_refresh_token": jira.refresh_token, "oauth_token_url": jira.token_url,
              "oauth_api_url": jira.base_url, "ca_bundle": str(sandbox_tls.ca_file)}
    client = jira_client(config)  # a token, then the cloud id from accessible-resources: both over HTTPS
    assert client.api_root == f"{jira.api_url}/rest/api/3"
    assert client.myself()["emailAddress"] == jira.email


def test_an_untrusted_certificate_ends_the_call_at_once_naming_host_and_setting(jira, public_cas_only):
    client = jira_client(jira_config(jira, max_tries=8))
    with pytest.raises(UntrustedCertificateError) as refused:
        client.myself()
    message = str(refused.value)
    assert "the certificate of 127.0.0.1 (https://127.0.0.1:" in message
    assert "unable to get local issuer certificate" in message and "ca_bundle" in message
    assert client.requests_sent == 1  # not retried: another try cannot help
    assert refused.value.message_for("tap-jiracloud").count("ca_bundle (TAP_JIRACLOUD_CA_BUNDLE)") == 1


def test_the_host_name_is_verified_as_well(tmp_path):
    import trustme

    ca = trustme.CA()
    only_localhost = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    only_localhost.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "chain.pem").write_bytes(b"".join(blob.bytes() for blob in only_localhost.cert_chain_pems))
    with JiraSandbox(port=0, tls_cert=tmp_path / "chain.pem", tls_key=tmp_path / "key.pem") as jira:
        session = new_session({"ca_bundle": str(tmp_path / "ca.pem")})
        assert session.get(f"https://localhost:{jira.port}/_admin/health").status_code == 200
        with pytest.raises(UntrustedCertificateError, match="not valid for '127.0.0.1'"):
            session.get(f"https://127.0.0.1:{jira.port}/_admin/health")


def test_a_token_endpoint_with_an_untrusted_certificate_says_so_too(sandbox_tls, public_cas_only):
    with SalesforceSandbox(port=0, **sandbox_tls.server_options) as salesforce:
        config = {"base_url": salesforce.base_url, "client_id": salesforce.client_id,
                  "client_secret": salesforce.client_secret}
        with pytest.raises(UntrustedCertificateError, match="not trusted"):
            salesforce_client(config).auth.access_token()
        trusted = salesforce_client({**config, "ca_bundle": str(sandbox_tls.ca_file)})
        assert trusted.get("limits")["DailyApiRequests"]["Max"] > 0


def test_a_bad_ca_bundle_is_a_configuration_error_naming_the_setting(tmp_path):
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    for value, said in ((str(tmp_path / "missing.pem"), "no file at"), (str(tmp_path), "is a folder"),
                        (str(not_pem), "holds no PEM CA certificate")):
        with pytest.raises(CaBundleError, match=f"^ca_bundle: .*{said}"):
            new_session({"ca_bundle": value})


def test_a_plugin_refusing_a_certificate_says_so_in_one_line(jira, tmp_path):
    run = run_tap(tmp_path, jira_config(jira), executable="tap-jiracloud", env=NOT_THE_TEST_CA, check=False)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "TLS: the certificate of 127.0.0.1" in run.stderr
    assert "set ca_bundle (TAP_JIRACLOUD_CA_BUNDLE) to a PEM file with that CA" in run.stderr
    assert run.messages == []


def test_a_plugin_with_a_missing_ca_bundle_names_the_setting(jira, tmp_path):
    with pytest.raises(AssertionError, match=r"ca_bundle \(TAP_JIRACLOUD_CA_BUNDLE\): no file at"):
        discover(tmp_path, jira_config(jira, ca_bundle=str(tmp_path / "corporate-ca.pem")), executable="tap-jiracloud")


def test_the_check_command_over_tls(jira, sandbox_tls, tmp_path):
    refused = run_check("tap-jiracloud-check", jira_config(jira), tmp_path, secrets=[jira.api_token],
                        env=NOT_THE_TEST_CA)
    assert refused.returncode == 1
    failure = refused.result("TLS certificate")
    assert failure["status"] == "fail" and "127.0.0.1" in failure["detail"]
    assert failure["fix"].startswith("ca_bundle (TAP_JIRACLOUD_CA_BUNDLE)")
    trusted = run_check("tap-jiracloud-check", jira_config(jira, ca_bundle=str(sandbox_tls.ca_file)), tmp_path,
                        secrets=[jira.api_token], env=NOT_THE_TEST_CA)
    assert trusted.returncode == 0 and trusted.failures() == [], trusted.stdout
