"""tap-sfdc-check as its own process against the Salesforce stand-in: objects that exist and are queryable, fields
that exist, the stream's own SOQL run with LIMIT 1; a wrong secret, an unknown object or field and a WHERE Salesforce
refuses each get their own line."""

from __future__ import annotations

import pytest

from mlc_sandbox.salesforce import SalesforceSandbox
from support.check import assert_table_all_pass, only_reads, run_check

CHECK = "tap-sfdc-check"
OBJECTS = {"Account": {"fields": ["Name", "IFS_Customer_Id__c", "BillingCountry"], "where": "IFS_Customer_Id__c != null"}}


@pytest.fixture(scope="module")
def salesforce():
    with SalesforceSandbox(port=0) as stand_in:
        stand_in.insert("Account", {"Name": "Nordic Tools AB", "IFS_Customer_Id__c": "C1000", "BillingCountry": "SE"})
        yield stand_in


def config_for(salesforce, **changes) -> dict:
    return {"base_url": salesforce.base_url, "client_id": salesforce.client_id,
            "client_secret": salesforce.client_secret, "objects": OBJECTS, **changes}


def test_a_fitting_configuration_passes_reading_only(salesforce, tmp_path):
    before = len(salesforce.requests())
    run = run_check(CHECK, config_for(salesforce), tmp_path, secrets=[salesforce.client_secret],
                    output_format="table")
    assert assert_table_all_pass(run, "Salesforce") == ["token", "API version", "API usage", "object Account",
                                                        "query Account"]
    assert "WHERE (IFS_Customer_Id__c != null) ORDER BY SystemModstamp ASC, Id ASC LIMIT 1 runs (a row comes back)" \
        in run.stdout
    only_reads(salesforce.requests()[before:], allowed_posts=("/services/oauth2/token",))


def test_a_wrong_client_secret(salesforce, tmp_path):
    wrong = "wrong-consumer-secret"
    run = run_check(CHECK, config_for(salesforce, client_secret=wrong), tmp_path, secrets=[wrong])
    assert run.returncode == 1
    assert [(f["check"], f["fix"].split(":")[0]) for f in run.failures()] == [
        ("token", "client_secret (TAP_SFDC_CLIENT_SECRET)")]


def test_unknown_objects_fields_and_conditions(salesforce, tmp_path):
    objects = {"Account": {"fields": ["Name", "Colour__c"]},
               "Contact": {"fields": ["LastName"], "where": "Nope__c = 1"},
               "Widget__c": {"fields": ["Name"]}}
    run = run_check(CHECK, config_for(salesforce, objects=objects), tmp_path, secrets=[salesforce.client_secret])
    assert run.returncode == 1
    failures = {f["check"]: f for f in run.failures()}
    assert sorted(failures) == ["object Account", "object Widget__c", "query Contact"]
    assert "Account has no field Colour__c" in failures["object Account"]["detail"]
    assert failures["object Account"]["fix"] == "objects.Account.fields (TAP_SFDC_OBJECTS)"
    assert "No such column 'Nope__c' on entity 'Contact'" in failures["query Contact"]["detail"]
    assert failures["query Contact"]["fix"].startswith("objects.Contact.where (TAP_SFDC_OBJECTS)")
    assert failures["object Widget__c"]["fix"].startswith("objects.Widget__c (TAP_SFDC_OBJECTS)")
    assert run.result("object Contact")["status"] == "pass"
