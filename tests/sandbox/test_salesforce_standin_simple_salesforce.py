"""The Salesforce stand-in driven by simple-salesforce (the most-used third-party Python client) over HTTPS, the way
its users drive a real org: client-credentials login against the org's My Domain, query/query_all on Account and
Order, COUNT(), create/update/upsert by external id/delete, sObject Collections retrieve, the Composite resource,
describe, limits(), updated/deleted, another API version, and a session that expires under it.

simple-salesforce only speaks https and builds its token URL as https://<domain>.salesforce.com, so the org gets a
My Domain name: the stand-in serves a certificate for it (from a test CA the client trusts through
REQUESTS_CA_BUNDLE) and the client's requests session resolves that name to the stand-in's loopback port, as a DNS
entry would; the Host header, SNI and the certificate check keep the My Domain name. The direct-session form
(instance_url + session_id from one's own OAuth call) runs against the stand-in's own address with the CA the
sandbox_tls fixture gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
import trustme
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (SalesforceAuthenticationFailed, SalesforceMalformedRequest,
                                          SalesforceResourceNotFound)

from mlc_sandbox.salesforce import SalesforceSandbox
from support.tls import SandboxTls, make_tls

MY_DOMAIN = "mlc-test.my.salesforce.com"  # simple-salesforce's domain="mlc-test.my"


class MyDomainRoute(HTTPAdapter):
    """Sends https://<my domain>/... to the stand-in's loopback address, as a DNS entry for the org's My Domain would:
    the request keeps the name in its Host header, the TLS handshake in SNI and in the certificate check."""

    def __init__(self, my_domain: str, address: tuple[str, int]):
        self.my_domain, self.address = my_domain, address
        super().__init__()

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["host"] == self.my_domain:
            host_params = {**host_params, "host": self.address[0], "port": self.address[1]}
            pool_kwargs = {**pool_kwargs, "server_hostname": self.my_domain, "assert_hostname": self.my_domain}
        return host_params, pool_kwargs

    def send(self, request, **kwargs):
        request.headers["Host"] = self.my_domain
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def my_domain_tls(tmp_path_factory) -> SandboxTls:
    """A test CA and a certificate for the org's My Domain (and the loopback address the admin client uses)."""
    folder = tmp_path_factory.mktemp("my-domain-tls")
    ca = trustme.CA(organization_name="ml-connector test CA (Salesforce My Domain)")
    server = ca.issue_cert(MY_DOMAIN, "127.0.0.1", "localhost")
    tls = SandboxTls(ca_file=folder / "ca.pem", cert_file=folder / "chain.pem", key_file=folder / "key.pem")
    ca.cert_pem.write_to_path(str(tls.ca_file))
    server.private_key_pem.write_to_path(str(tls.key_file))
    tls.cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    return tls


@pytest.fixture
def org(my_domain_tls, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE override a session's verify, and simple-salesforce builds on a session
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(my_domain_tls.ca_file))
    with SalesforceSandbox(port=0, **my_domain_tls.server_options) as sf:
        yield sf


def my_domain_session(sf) -> requests.Session:
    session = requests.Session()
    session.mount(f"https://{MY_DOMAIN}", MyDomainRoute(MY_DOMAIN, ("127.0.0.1", int(sf.base_url.rsplit(":", 1)[1]))))
    return session


def connect(sf, version: str | None = None, secret: str | None = None) -> Salesforce:
    """simple-salesforce's client-credentials login, as documented: consumer key and secret plus the My Domain."""
    options = {"version": version} if version else {}
    return Salesforce(consumer_key=sf.client_id, consumer_secret=secret or sf.client_secret, domain="mlc-test.my",
                      session=my_domain_session(sf), **options)


@pytest.fixture
def client(org) -> Salesforce:
    return connect(org)


def seed_order(client: Salesforce, account_id: str, number: str, day: str) -> str:
    return client.Order.create({"AccountId": account_id, "EffectiveDate": day, "Status": "Draft",
                                "Pricebook2Id": "01s000000000001AAA", "IFS_Order_No__c": number})["id"]


def test_login_with_client_credentials_and_a_session_that_expires(org, client):
    assert client.sf_instance == MY_DOMAIN  # the token's instance_url: the org's My Domain
    assert client.base_url == f"https://{MY_DOMAIN}/services/data/v59.0/"  # simple-salesforce's default version
    token_requests = [e for e in org.requests() if e["path"] == "/services/oauth2/token"]
    assert [e["status"] for e in token_requests] == [200]
    created = client.Account.create({"Name": "Nordic Steel AB"})
    org.expire_sessions()  # as an admin ending every session: the client logs in again and retries
    assert client.Account.get(created["id"])["Name"] == "Nordic Steel AB"
    statuses = [(e["path"].rsplit("/", 2)[-2:], e["status"]) for e in org.requests()]
    assert statuses[-3:] == [(["Account", created["id"]], 401), (["oauth2", "token"], 200),
                             (["Account", created["id"]], 200)]


def test_a_wrong_secret_is_refused_at_login(org):
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid_client"):
        connect(org, secret="wrong")


def test_the_org_certificate_is_checked(my_domain_tls, tmp_path, monkeypatch):
    """Verification is on: a CA bundle without the test CA, or a certificate without the My Domain name, fails."""
    with SalesforceSandbox(port=0, **my_domain_tls.server_options) as sf:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(make_tls(tmp_path / "other").ca_file))
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            connect(sf)
    loopback_only = make_tls(tmp_path / "loopback")  # a certificate for 127.0.0.1 and localhost, not the My Domain
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(loopback_only.ca_file))
    with SalesforceSandbox(port=0, **loopback_only.server_options) as sf:
        with pytest.raises(requests.exceptions.SSLError, match="doesn.t match"):
            connect(sf)


def test_records_created_updated_upserted_and_deleted(org, client):
    created = client.Account.create({"Name": "Nordic Steel AB", "IFS_Supplier_Id__c": "S1", "Type": "Supplier"})
    assert created["success"] is True
    assert client.Account.update(created["id"], {"Phone": "08-123"}) == 204
    assert client.Account.upsert("IFS_Supplier_Id__c/S1", {"Name": "Nordic Steel AB (SE)"}) == 200
    assert client.Account.upsert("IFS_Supplier_Id__c/S2", {"Name": "Baltic Metals"}) == 201
    by_external_id = client.Account.get_by_custom_id("IFS_Supplier_Id__c", "S1")
    assert (by_external_id["Id"], by_external_id["Name"], by_external_id["Phone"]) == \
        (created["id"], "Nordic Steel AB (SE)", "08-123")
    with pytest.raises(SalesforceMalformedRequest) as refused:
        client.Account.create({"Name": "Acme", "Type": "Vendor"})
    assert refused.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert client.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as gone:
        client.Account.get(created["id"])
    assert gone.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert [r["Name"] for r in org.records("Account")] == ["Baltic Metals"]


def test_query_and_query_all_on_account_and_order(org, client):
    account = client.Account.create({"Name": "Nordic Steel AB"})["id"]
    for number in range(7):
        seed_order(client, account, f"P{number}", f"2026-12-0{number + 1}")
    org.change_settings(query_batch_size=3)  # query_all follows nextRecordsUrl through three pages
    everything = client.query_all("SELECT Id, IFS_Order_No__c, Account.Name FROM Order ORDER BY EffectiveDate DESC")
    assert everything["totalSize"] == 7 and everything["done"] is True
    assert [r["IFS_Order_No__c"] for r in everything["records"]] == [f"P{n}" for n in range(6, -1, -1)]
    assert everything["records"][0]["Account"]["Name"] == "Nordic Steel AB"
    first_page = client.query("SELECT Id FROM Order")
    assert len(first_page["records"]) == 3 and first_page["done"] is False
    following = client.query_more(first_page["nextRecordsUrl"], identifier_is_url=True)
    assert len(following["records"]) == 3
    deleted = everything["records"][0]["Id"]
    client.Order.delete(deleted)
    assert client.query_all("SELECT Id FROM Order")["totalSize"] == 6
    with_deleted = client.query_all("SELECT Id, IsDeleted FROM Order", include_deleted=True)
    assert {(r["Id"], r["IsDeleted"]) for r in with_deleted["records"] if r["IsDeleted"]} == {(deleted, True)}
    accounts = client.query("SELECT Id, Name FROM Account WHERE Name LIKE 'Nordic%'")
    assert [r["Id"] for r in accounts["records"]] == [account]


def test_count(org, client):
    account = client.Account.create({"Name": "Acme"})["id"]
    for number in range(4):
        seed_order(client, account, f"P{number}", "2026-12-01")
    assert client.query("SELECT COUNT() FROM Account") == {"totalSize": 1, "done": True, "records": []}
    assert client.query("SELECT COUNT() FROM Order WHERE Status = 'Draft'")["totalSize"] == 4
    aggregate = client.query("SELECT COUNT(Id) orders, COUNT(Description) FROM Order")
    assert aggregate["records"] == [{"attributes": {"type": "AggregateResult"}, "orders": 4, "expr0": 0}]


def test_collections_retrieve_and_composite(org, client):
    ids = [client.Account.create({"Name": name})["id"] for name in ("A", "B")]
    retrieved = client.restful("composite/sobjects/Account", params={"ids": ",".join(ids + ["001000000000000AAA"]),
                                                                     "fields": "Name"})
    assert [r and r["Name"] for r in retrieved] == ["A", "B", None]
    posted = client.restful("composite/sobjects/Account", method="POST", json={"ids": ids[::-1], "fields": ["Name"]})
    assert [r["Name"] for r in posted] == ["B", "A"]
    base = f"/services/data/v{client.sf_version}"
    answer = client.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{base}/sobjects/Account", "referenceId": "account",
         "body": {"Name": "Composite AB"}},
        {"method": "POST", "url": f"{base}/sobjects/Order", "referenceId": "order",
         "body": {"AccountId": "@{account.id}", "EffectiveDate": "2026-12-07", "Status": "Draft"}},
        {"method": "GET", "url": f"{base}/query?q=SELECT+Id,+Account.Name+FROM+Order", "referenceId": "orders"}]})
    results = {r["referenceId"]: r for r in answer["compositeResponse"]}
    assert [r["httpStatusCode"] for r in answer["compositeResponse"]] == [201, 201, 200]
    assert results["orders"]["body"]["records"][0]["Account"]["Name"] == "Composite AB"
    failed = client.restful("composite", method="POST", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{base}/sobjects/Account", "referenceId": "a", "body": {"Name": "Rolled back"}},
        {"method": "POST", "url": f"{base}/sobjects/Order", "referenceId": "o", "body": {"AccountId": "@{a.id}"}}]})
    assert [r["body"][0]["errorCode"] for r in failed["compositeResponse"]] == ["PROCESSING_HALTED",
                                                                               "REQUIRED_FIELD_MISSING"]
    assert sorted(r["Name"] for r in org.records("Account")) == ["A", "B", "Composite AB"]


def test_describe_and_limits(org, client):
    described = client.describe()
    assert {"Account", "Order", "OrderItem"} <= {o["name"] for o in described["sobjects"]}
    order = client.Order.describe()
    fields = {f["name"]: f for f in order["fields"]}
    assert fields["IFS_Order_No__c"]["externalId"] is True and fields["Status"]["type"] == "picklist"
    limits = client.limits()
    assert len(limits) > 40
    assert limits["DailyApiRequests"]["Max"] == 15000
    used = org.info()["api_used"]
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - used
    assert client.api_usage["api-usage"].used == used and client.api_usage["api-usage"].total == 15000


def test_updated_and_deleted(org, client):
    kept = client.Account.create({"Name": "Kept"})["id"]
    doomed = client.Account.create({"Name": "Doomed"})["id"]
    start = datetime.strptime(org.record("Account", kept)["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    start = start.replace(second=0) - timedelta(minutes=1)
    org.advance_clock(60)
    client.Account.delete(doomed)
    org.advance_clock(3600)
    end = start + timedelta(minutes=30)
    updated = client.Account.updated(start, end)
    assert updated == {"ids": [kept], "latestDateCovered": end.strftime("%Y-%m-%dT%H:%M:00.000+0000")}
    deleted = client.Account.deleted(start.astimezone(timezone(timedelta(hours=1))), end)  # any offset
    assert [r["id"] for r in deleted["deletedRecords"]] == [doomed]


@pytest.mark.parametrize("version", ["66.0", "68.0"])
def test_a_newer_api_version(org, version):
    client = connect(org, version=version)
    created = client.Account.create({"Name": "Acme"})
    record = client.Account.get(created["id"])
    assert record["attributes"]["url"] == f"/services/data/v{version}/sobjects/Account/{created['id']}"
    found = client.query("SELECT Id FROM Order")
    assert found == {"totalSize": 0, "done": True, "records": []}
    versions = client.restful("", method="GET")
    assert versions["limits"] == f"/services/data/v{version}/limits"
    assert f"/services/data/v{version}/" in {e["path"] for e in org.requests()}


def test_a_direct_session_with_the_sandbox_ca(sandbox_tls, monkeypatch):
    """instance_url + session_id from one's own client-credentials call: the stand-in's own https address, trusted
    through the CA the sandbox_tls fixture gives."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox_tls.ca_file))
    with SalesforceSandbox(port=0, **sandbox_tls.server_options) as sf:
        assert sf.base_url.startswith("https://127.0.0.1:")
        token = requests.post(sf.token_url, data={"grant_type": "client_credentials", "client_id": sf.client_id,
                                                  "client_secret": sf.client_secret}).json()
        assert token["instance_url"] == sf.base_url
        client = Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="62.0")
        client.Account.create({"Name": "Direct AB"})
        assert client.query("SELECT Name FROM Account")["records"][0]["Name"] == "Direct AB"
