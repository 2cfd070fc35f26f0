"""tap-sfdc against the Salesforce stand-in over real HTTP: customer Accounts read incrementally on SystemModstamp,
paged with nextRecordsUrl, decimals exact, an edit made in Salesforce picked up, the bookmark readable and never
moving back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mlc_sandbox.salesforce import SalesforceSandbox
from support.singer import assert_a_state_every, run_tap

FIELDS = ["Id", "Name", "IFS_Customer_Id__c", "BillingCountry", "Credit_Limit__c", "Type", "LastModifiedDate"]


@pytest.fixture
def sf():
    with SalesforceSandbox(port=0) as stand_in:
        yield stand_in


def config_for(sf, **extra) -> dict:
    return {"base_url": sf.base_url, "client_id": sf.client_id, "client_secret": sf.client_secret,
            "objects": {"Account": {"fields": FIELDS, "where": "IFS_Customer_Id__c != null"}},
            "start_date": "2000-01-01T00:00:00Z", **extra}


def customer(sf, n: int, credit: str = "1234567.89", **extra) -> str:
    fields = {"Name": f"Customer {n}", "IFS_Customer_Id__c": f"C{n}", "Type": "Customer", "BillingCountry": "SE",
              "Credit_Limit__c": credit, **extra}
    return sf.insert("Account", fields)


def test_first_run_reads_the_customers_with_exact_decimals_and_a_readable_bookmark(sf, tmp_path):
    customer(sf, 1, "1234567890123.45")
    sf.advance_clock(5)
    customer(sf, 2, "0.10")
    sf.insert("Account", {"Name": "A supplier", "IFS_Supplier_Id__c": "S1", "Type": "Supplier"})  # not a customer
    run = run_tap(tmp_path, config_for(sf), executable="tap-sfdc")
    records = run.records("account")
    assert [r["IFS_Customer_Id__c"] for r in records] == ["C1", "C2"]
    assert records[0]["Credit_Limit__c"] == Decimal("1234567890123.45") and records[1]["Credit_Limit__c"] == Decimal("0.10")
    assert '"Credit_Limit__c":1234567890123.45' in run.stdout.replace(" ", "")  # written digit for digit
    assert set(records[0]) == set(FIELDS) | {"SystemModstamp"}
    schema = run.schema("account")
    assert schema["key_properties"] == ["Id"] and schema["bookmark_properties"] == ["SystemModstamp"]
    credit = schema["schema"]["properties"]["Credit_Limit__c"]
    assert credit["type"] == ["number", "null"] and credit["x-sql-datatype"] == "decimal"
    assert schema["schema"]["properties"]["LastModifiedDate"]["format"] == "date-time"
    assert records[0]["LastModifiedDate"].endswith("Z")
    bookmark = run.bookmark("account")
    assert bookmark == records[-1]["SystemModstamp"] and bookmark.endswith(".000Z")
    assert "IFS_Customer_Id__c != null" in run.stderr and "ORDER BY SystemModstamp ASC, Id ASC" in run.stderr


def test_second_run_reads_only_what_changed_including_an_edit_made_in_salesforce(sf, tmp_path):
    first_id = customer(sf, 1)
    customer(sf, 2)
    first = run_tap(tmp_path, config_for(sf), executable="tap-sfdc")
    assert len(first.records("account")) == 2

    unchanged = run_tap(tmp_path, config_for(sf), executable="tap-sfdc", state=first.final_state)
    assert unchanged.records("account") == []  # rows at the bookmark second were emitted already
    assert unchanged.bookmark("account") == first.bookmark("account")

    sf.advance_clock(60)
    sf.edit("Account", first_id, {"Name": "Customer 1 (renamed by sales)", "Credit_Limit__c": 99999.99})
    customer(sf, 3)
    edited = run_tap(tmp_path, config_for(sf), executable="tap-sfdc", state=unchanged.final_state)
    records = {r["IFS_Customer_Id__c"]: r for r in edited.records("account")}
    assert sorted(records) == ["C1", "C3"]
    assert records["C1"]["Name"] == "Customer 1 (renamed by sales)"
    assert records["C1"]["Credit_Limit__c"] == Decimal("99999.99")
    assert edited.bookmark("account") > first.bookmark("account")


def test_paging_over_several_pages_reads_every_row_once(sf, tmp_path):
    sf.change_settings(query_batch_size=200)
    for n in range(450):
        customer(sf, n, f"{n}.25")
    run = run_tap(tmp_path, config_for(sf), executable="tap-sfdc")
    records = run.records("account")
    assert len(records) == 450 and len({r["Id"] for r in records}) == 450
    assert sum(Decimal(r["Credit_Limit__c"]) for r in records) == sum(Decimal(f"{n}.25") for n in range(450))
    pages = [r for r in sf.requests() if "/query" in r["path"]]
    assert len(pages) == 3


def test_the_bookmark_never_moves_back_and_can_be_moved_back_by_hand(sf, tmp_path):
    customer(sf, 1)
    future = {"bookmarks": {"account": {"replication_key": "SystemModstamp",
                                        "replication_key_value": "2099-01-01T00:00:00.000Z"}}}
    run = run_tap(tmp_path, config_for(sf), executable="tap-sfdc", state=future)
    assert run.records("account") == [] and run.bookmark("account") == "2099-01-01T00:00:00.000Z"

    by_hand = {"bookmarks": {"account": {"replication_key": "SystemModstamp",
                                         "replication_key_value": "2001-01-01T00:00:00Z"}}}
    again = run_tap(tmp_path, config_for(sf), executable="tap-sfdc", state=by_hand)
    assert [r["IFS_Customer_Id__c"] for r in again.records("account")] == ["C1"]


def test_unknown_fields_and_bad_conditions_are_named(sf, tmp_path):
    config = config_for(sf, objects={"Account": {"fields": ["Id", "Nmae"]}})
    bad = run_tap(tmp_path, config, executable="tap-sfdc", check=False)
    assert bad.returncode != 0 and "objects.Account.fields: Account has no field Nmae" in bad.stderr
    config = config_for(sf, objects={"Account": {"fields": ["Id"], "where": "Name = 'x' ORDER BY Name"}})
    bad = run_tap(tmp_path, config, executable="tap-sfdc", check=False)
    assert bad.returncode != 0 and "must be a condition only" in bad.stderr


def test_a_token_answer_and_a_query_page_cut_off_on_the_way_are_asked_again(sf, tmp_path):
    sf.change_settings(query_batch_size=200)
    for n in range(450):
        customer(sf, n)
    sf.add_fault("truncated", api="oauth")  # a session is issued, its answer arrives half
    sf.add_fault("truncated", path="/query/")  # the second page (nextRecordsUrl) arrives half
    run = run_tap(tmp_path, config_for(sf), executable="tap-sfdc")
    records = run.records("account")
    assert len(records) == 450 and len({r["Id"] for r in records}) == 450
    logged = sf.requests()
    assert [r["fault"] for r in logged if r["path"].endswith("/oauth2/token")] == ["truncated", None]
    pages = [r for r in logged if "/query" in r["path"]]
    assert [r["fault"] for r in pages] == [None, "truncated", None, None]
    assert pages[1]["path"] == pages[2]["path"]  # the cut-off page asked again, not skipped


def test_a_state_every_state_interval_records_with_the_bookmark_of_the_record_before_it(sf, tmp_path):
    """Mid-stream checkpoints (singer-sdk's default is one per 10,000 records): a run killed mid-stream re-reads at
    most the interval."""
    for n in range(10):
        customer(sf, n)
    run = run_tap(tmp_path, config_for(sf, state_interval_records=3), executable="tap-sfdc")
    assert len(run.records("account")) == 10
    assert assert_a_state_every(run, "account", 3, "SystemModstamp") == 3
