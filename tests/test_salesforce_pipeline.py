"""IFS Cloud ⇄ Salesforce end to end through Meltano, against the IFS and Salesforce stand-ins: suppliers and customers as
Accounts, purchase orders as Orders with their lines, all upserted by external id (reruns create nothing); a changed
supplier updates its one Account; a customer edited in Salesforce lands in IFS with an ETag and does not bounce back; a
record Salesforce refuses fails alone, is audited with Salesforce's message and is redone once fixed."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from ml_connector_core.audit import AuditTrail
from mlc_sandbox.salesforce import SalesforceSandbox
from support.ifs import CLIENT_SECRET
from support.sealed import sealed_env
from support.meltano import meltano_run

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

IFS_TO_SALESFORCE = ["tap-ifscloud-salesforce", "salesforce-fields", "target-salesforce"]
SALESFORCE_TO_IFS = ["tap-sfdc", "salesforce-customers-to-ifs", "target-ifscloud-salesforce"]


@pytest.fixture
def salesforce():
    with SalesforceSandbox(port=0) as stand_in:
        yield stand_in


@pytest.fixture
def env(ifs, salesforce, tmp_path) -> dict:
    return pipeline_env(ifs, salesforce, tmp_path)


def pipeline_env(ifs, salesforce, tmp_path) -> dict:
    audit = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    return sealed_env({
        **os.environ,
        "TAP_IFSCLOUD_BASE_URL": ifs.base_url, "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_SALESFORCE_BASE_URL": salesforce.base_url, "TARGET_SALESFORCE_CLIENT_SECRET": salesforce.client_secret,
        "TARGET_SALESFORCE_AUDIT_URL": audit,
        "TAP_SFDC_BASE_URL": salesforce.base_url, "TAP_SFDC_CLIENT_SECRET": salesforce.client_secret,
        "TARGET_IFSCLOUD_BASE_URL": ifs.base_url, "TARGET_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_IFSCLOUD_AUDIT_URL": audit,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
    })



def by_external_id(salesforce, sobject: str, field: str) -> dict[str, dict]:
    rows = [r for r in salesforce.records(sobject) if r.get(field)]
    counts = Counter(r[field] for r in rows)
    assert max(counts.values(), default=1) == 1, f"duplicate {sobject}.{field}: {counts.most_common(3)}"
    return {r[field]: r for r in rows}


def ifs_writes(ifs) -> list[dict]:
    return [r for r in ifs.requests_log() if r.get("kind") == "data" and r["method"] in ("PATCH", "POST")]


def test_ifs_records_are_upserted_once_and_customer_edits_come_back_without_ping_pong(ifs, salesforce, env):
    meltano_run(env, IFS_TO_SALESFORCE)
    suppliers = ifs.all_rows("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"])
    customers = ifs.all_rows("CustomerHandling", "CustomerInfoSet", ["CustomerId"])
    orders = ifs.all_rows("PurchaseOrderHandling", "PurchaseOrderSet", ["OrderNo"])
    lines = ifs.all_rows("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", ["OrderNo", "LineNo", "ReleaseNo"])

    supplier_accounts = by_external_id(salesforce, "Account", "IFS_Supplier_Id__c")
    customer_accounts = by_external_id(salesforce, "Account", "IFS_Customer_Id__c")
    sf_orders = by_external_id(salesforce, "Order", "IFS_Order_No__c")
    sf_items = by_external_id(salesforce, "OrderItem", "IFS_Line_Key__c")
    assert set(supplier_accounts) == {s["SupplierId"] for s in suppliers}
    assert set(customer_accounts) == {c["CustomerId"] for c in customers}
    assert set(sf_orders) == {o["OrderNo"] for o in orders}
    assert set(sf_items) == {f"{l['OrderNo']}-{l['LineNo']}-{l['ReleaseNo']}" for l in lines}
    order = orders[0]
    assert sf_orders[order["OrderNo"]]["AccountId"] == supplier_accounts[order["VendorNo"]]["Id"]  # parent resolved
    line = next(l for l in lines if l["OrderNo"] == order["OrderNo"])
    item = sf_items[f"{line['OrderNo']}-{line['LineNo']}-{line['ReleaseNo']}"]
    assert item["OrderId"] == sf_orders[order["OrderNo"]]["Id"]
    assert str(item["UnitPrice"]) and supplier_accounts[order["VendorNo"]]["Type"] == "Supplier"
    ids_before = {r["Id"] for sobject in ("Account", "Order", "OrderItem") for r in salesforce.records(sobject)}

    # A rerun (look-back re-reads included) creates nothing.
    meltano_run(env, IFS_TO_SALESFORCE)
    assert {r["Id"] for s in ("Account", "Order", "OrderItem") for r in salesforce.records(s)} == ids_before

    # A changed supplier updates its one Account.
    supplier = suppliers[0]
    ifs.change("SupplierInfoGeneralSet", {"SupplierId": supplier["SupplierId"]}, {"Name": "Renamed Supplier AB"})
    meltano_run(env, IFS_TO_SALESFORCE)
    accounts = by_external_id(salesforce, "Account", "IFS_Supplier_Id__c")
    assert accounts[supplier["SupplierId"]]["Name"] == "Renamed Supplier AB"
    assert accounts[supplier["SupplierId"]]["Id"] == supplier_accounts[supplier["SupplierId"]]["Id"]
    assert {r["Id"] for s in ("Account", "Order", "OrderItem") for r in salesforce.records(s)} == ids_before

    # A customer edited in Salesforce lands in IFS, written with the ETag read just before.
    customer = customers[0]
    salesforce.edit("Account", customer_accounts[customer["CustomerId"]]["Id"], {"Name": "Edited In Salesforce Ltd"})
    ifs.clear_requests()
    meltano_run(env, SALESFORCE_TO_IFS)
    stored = ifs.get("CustomerHandling", f"CustomerInfoSet('{customer['CustomerId']}')")
    assert stored["Name"] == "Edited In Salesforce Ltd"
    [patch] = ifs_writes(ifs)
    assert patch["method"] == "PATCH" and customer["CustomerId"] in patch["path"]
    assert patch["headers"]["If-Match"].startswith('W/"')

    # No ping-pong: IFS → Salesforce sends the customer again (its change timestamp moved), Salesforce stores the same
    # values (and moves SystemModstamp), Salesforce → IFS finds nothing to change.
    meltano_run(env, IFS_TO_SALESFORCE)
    ifs.clear_requests()
    meltano_run(env, SALESFORCE_TO_IFS)
    assert ifs_writes(ifs) == []
    with AuditTrail(env["TARGET_IFSCLOUD_AUDIT_URL"]) as trail:
        last = trail.runs()[0]
        assert last.plugin == "target-ifscloud" and last.operations.get("update", 0) == 0


def test_a_record_salesforce_refuses_fails_alone_and_is_redone_once_fixed(ifs, salesforce, env):
    supplier = ifs.all_rows("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"])[0]
    too_long = "SE" + "9" * 43  # IFS allows 50 characters, Salesforce's AccountNumber 40
    ifs.change("SupplierInfoGeneralSet", {"SupplierId": supplier["SupplierId"]}, {"AssociationNo": too_long})
    meltano_run(env, IFS_TO_SALESFORCE, undelivered=True)  # a refused record: the run does not pass for success
    accounts = by_external_id(salesforce, "Account", "IFS_Supplier_Id__c")
    assert supplier["SupplierId"] not in accounts and len(accounts) > 1  # the others were kept
    with AuditTrail(env["TARGET_SALESFORCE_AUDIT_URL"]) as trail:
        [failed] = [e for e in trail.failures() if e.key.get("IFS_Supplier_Id__c") == supplier["SupplierId"]]
        assert "STRING_TOO_LONG" in failed.error and "AccountNumber" in failed.error
        assert failed.source["AccountNumber"] == too_long
    # The orders of that supplier could not be written either (their parent is missing): audited, not dropped.
    orders_of_supplier = [o for o in ifs.all_rows("PurchaseOrderHandling", "PurchaseOrderSet", ["OrderNo"])
                          if o["VendorNo"] == supplier["SupplierId"]]
    sf_orders = by_external_id(salesforce, "Order", "IFS_Order_No__c")
    assert not any(o["OrderNo"] in sf_orders for o in orders_of_supplier)

    ifs.change("SupplierInfoGeneralSet", {"SupplierId": supplier["SupplierId"]}, {"AssociationNo": "SE556677"})
    meltano_run(env, IFS_TO_SALESFORCE)
    accounts = by_external_id(salesforce, "Account", "IFS_Supplier_Id__c")
    assert accounts[supplier["SupplierId"]]["AccountNumber"] == "SE556677"
    sf_orders = by_external_id(salesforce, "Order", "IFS_Order_No__c")
    assert all(o["OrderNo"] in sf_orders for o in orders_of_supplier)  # redone after their parent arrived
    with AuditTrail(env["TARGET_SALESFORCE_AUDIT_URL"]) as trail:
        assert list(trail.failures()) == []


def test_both_directions_over_tls_trusting_the_ca_through_ca_bundle(start_ifs, sandbox_tls, tmp_path):
    """IFS and Salesforce serve HTTPS with a certificate of a CA only the plugins' ca_bundle names (REQUESTS_CA_BUNDLE
    stays the machine's bundle): tap-ifscloud, target-salesforce, tap-sfdc and target-ifscloud all trust it."""
    ifs = start_ifs(tls=sandbox_tls)
    with SalesforceSandbox(port=0, **sandbox_tls.server_options) as salesforce:
        ca_bundle = str(sandbox_tls.ca_file)
        env = {**pipeline_env(ifs, salesforce, tmp_path), "TAP_IFSCLOUD_CA_BUNDLE": ca_bundle,
               "TARGET_SALESFORCE_CA_BUNDLE": ca_bundle, "TAP_SFDC_CA_BUNDLE": ca_bundle,
               "TARGET_IFSCLOUD_CA_BUNDLE": ca_bundle}
        assert ifs.base_url.startswith("https://") and salesforce.base_url.startswith("https://")
        meltano_run(env, IFS_TO_SALESFORCE)
        customers = ifs.all_rows("CustomerHandling", "CustomerInfoSet", ["CustomerId"])
        customer_accounts = by_external_id(salesforce, "Account", "IFS_Customer_Id__c")
        assert set(customer_accounts) == {c["CustomerId"] for c in customers}
        customer = customers[0]
        salesforce.edit("Account", customer_accounts[customer["CustomerId"]]["Id"], {"Name": "Edited Over TLS Ltd"})
        meltano_run(env, SALESFORCE_TO_IFS)
        assert ifs.get("CustomerHandling", f"CustomerInfoSet('{customer['CustomerId']}')")["Name"] == "Edited Over TLS Ltd"
