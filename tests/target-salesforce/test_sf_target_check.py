"""target-salesforce-check as its own process against the Salesforce stand-in: the sobjects setting of meltano.yml
fits; a wrong secret, an object or external id field that does not exist, a field that is no External ID, a default
that cannot be set and an API version the org does not serve each get their own line; nothing is written."""

from __future__ import annotations

import pytest

from mlc_sandbox.salesforce import SalesforceSandbox
from support.check import assert_table_all_pass, only_reads, run_check

CHECK = "target-salesforce-check"
SOBJECTS = {
    "sf_supplier_accounts": {"sobject": "Account", "external_id_field": "IFS_Supplier_Id__c"},
    "sf_customer_accounts": {"sobject": "Account", "external_id_field": "IFS_Customer_Id__c"},
    "sf_orders": {"sobject": "Order", "external_id_field": "IFS_Order_No__c",
                  "defaults": {"Pricebook2Id": "01s000000000001AAA"}},
    "sf_order_items": {"sobject": "OrderItem", "external_id_field": "IFS_Line_Key__c",
                       "defaults": {"PricebookEntryId": "01u000000000001AAA"}},
}


@pytest.fixture(scope="module")
def salesforce():
    with SalesforceSandbox(port=0) as stand_in:
        yield stand_in


def config_for(salesforce, **changes) -> dict:
    return {"base_url": salesforce.base_url, "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret, "sobjects": SOBJECTS, **changes}


def test_a_fitting_configuration_passes_reading_only(salesforce, tmp_path):
    before = len(salesforce.requests())
    run = run_check(CHECK, config_for(salesforce), tmp_path, secrets=[salesforce.client_secret],
                    output_format="table")
    checks = assert_table_all_pass(run, "Salesforce")
    assert checks[:3] == ["token", "API version", "API usage"]
    assert {"object Account", "object OrderItem", "external id Account.IFS_Supplier_Id__c",
            "external id OrderItem.IFS_Line_Key__c", "default Order.Pricebook2Id", "reference Order.Account",
            "reference OrderItem.Order"} <= set(checks)
    assert "OrderId → Order by Order.IFS_Order_No__c" in run.stdout
    only_reads(salesforce.requests()[before:], allowed_posts=("/services/oauth2/token",))
    assert salesforce.records("Account") == [] and salesforce.records("Order") == []


def test_a_wrong_client_secret(salesforce, tmp_path):
    wrong = "wrong-consumer-secret"
    run = run_check(CHECK, config_for(salesforce, client_secret=wrong), tmp_path,
                    secrets=[wrong, salesforce.client_secret])
    assert run.returncode == 1
    [failure] = run.results
    assert failure["check"] == "token" and "invalid_client" in failure["detail"]
    assert failure["fix"].startswith("client_secret (TARGET_SALESFORCE_CLIENT_SECRET)")


def test_objects_external_ids_and_defaults_that_do_not_fit(salesforce, tmp_path):
    sobjects = {
        **SOBJECTS,
        "sf_supplier_accounts": {"sobject": "Account", "external_id_field": "IFS_Vendor_Id__c"},
        "sf_customer_contacts": {"sobject": "Contact", "external_id_field": "LastName"},
        "sf_suppliers": {"sobject": "Supplier__c", "external_id_field": "IFS_Supplier_Id__c"},
        "sf_orders": {**SOBJECTS["sf_orders"], "defaults": {"TotalAmount": 0}},
    }
    run = run_check(CHECK, config_for(salesforce, sobjects=sobjects), tmp_path, secrets=[salesforce.client_secret])
    assert run.returncode == 1
    failures = {f["check"]: f for f in run.failures()}
    assert sorted(failures) == ["default Order.TotalAmount", "external id Account.IFS_Vendor_Id__c",
                                "external id Contact.LastName", "object Supplier__c"]
    missing = failures["external id Account.IFS_Vendor_Id__c"]
    assert "Account has no field IFS_Vendor_Id__c (its external ids: IFS_Supplier_Id__c, IFS_Customer_Id__c)" \
        in missing["detail"]
    assert missing["fix"] == "sobjects.sf_supplier_accounts.external_id_field (TARGET_SALESFORCE_SOBJECTS)"
    assert failures["external id Contact.LastName"]["detail"] == "Contact.LastName is not marked External ID"
    assert failures["object Supplier__c"]["fix"].startswith("sobjects.sf_suppliers.sobject (TARGET_SALESFORCE_SOBJECTS)")
    assert "calculated" in failures["default Order.TotalAmount"]["detail"]
    # the reference from Order to Account still resolves by the customer id, and says which one does not
    reference = run.result("reference Order.Account")
    assert reference["status"] == "pass" and "not by IFS_Vendor_Id__c" in reference["detail"]


def test_an_api_version_the_org_does_not_serve(salesforce, tmp_path):
    run = run_check(CHECK, config_for(salesforce, api_version="v99.0"), tmp_path, secrets=[salesforce.client_secret])
    assert run.returncode == 1
    failure = run.result("API version")
    assert failure["status"] == "fail" and "v99.0 is not served by this org (newest: v68.0)" in failure["detail"]
    assert failure["fix"].startswith("api_version (TARGET_SALESFORCE_API_VERSION)")


def test_api_usage_above_the_stop_share_fails_and_above_slowdown_warns(tmp_path):
    with SalesforceSandbox(port=0, daily_api_limit=1000) as salesforce:
        salesforce.set_api_usage(850)
        config = config_for(salesforce, api_usage_slowdown_seconds=0)
        warned = run_check(CHECK, config, tmp_path, secrets=[salesforce.client_secret])
        assert warned.returncode == 0
        usage = warned.result("API usage")
        assert usage["status"] == "warn" and usage["detail"].startswith("851/1000 API requests")
        salesforce.set_api_usage(950)
        stopped = run_check(CHECK, config, tmp_path, secrets=[salesforce.client_secret])
        assert stopped.returncode == 1
        assert [f["check"] for f in stopped.failures()] == ["API usage"]  # nothing further is asked
        assert stopped.result("API usage")["fix"].endswith("api_usage_stop_share (TARGET_SALESFORCE_API_USAGE_STOP_SHARE)")
