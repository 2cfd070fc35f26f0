"""Single-record writes on the Salesforce stand-in: upsert by external id (201 / 200 / 300), relationships by external
id, Salesforce's per-field errors, create / read / update / delete by Id, and the audit fields every write moves."""

from __future__ import annotations

import pytest

import salesforce_standin_client as standin

api, sf = standin.api, standin.sf  # fixtures


def test_upsert_by_external_id_creates_then_updates(sf, api):
    url = f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/S10017"
    created = api.patch(url, json={"Name": "Nordic Steel AB", "Type": "Supplier", "Credit_Limit__c": 2500.456})
    assert created.status_code == 201
    body = created.json()
    assert body["success"] is True and body["errors"] == [] and body["created"] is True
    assert len(body["id"]) == 18 and body["id"].startswith("001")
    updated = api.patch(url, json={"Name": "Nordic Steel Group AB", "IFS_Supplier_Id__c": "S10017"})
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    [row] = sf.records("Account")
    assert row["Name"] == "Nordic Steel Group AB" and row["Type"] == "Supplier"
    assert row["Credit_Limit__c"] == 2500.46 and row["IFS_Supplier_Id__c"] == "S10017"
    assert row["CurrencyIsoCode"] == "SEK" and row["IsDeleted"] is False
    by_external_id = api.get(url)
    assert by_external_id.status_code == 200 and by_external_id.json()["Id"] == body["id"]
    assert api.patch(f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/s10017", json={}).status_code == 200


def test_identical_re_upsert_still_moves_system_modstamp(sf, api):
    url = f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/S1"
    fields = {"Name": "Acme", "Payment_Terms__c": "30 days net"}
    record_id = api.patch(url, json=fields).json()["id"]
    [before] = sf.records("Account")
    sf.advance_clock(5)
    assert api.patch(url, json=fields).status_code == 200
    [after] = sf.records("Account")
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] > before["LastModifiedDate"]
    assert after["CreatedDate"] == before["CreatedDate"] and after["Id"] == record_id
    assert after["SystemModstamp"].endswith(".000+0000")
    assert {k: v for k, v in after.items() if k not in ("SystemModstamp", "LastModifiedDate")} == \
        {k: v for k, v in before.items() if k not in ("SystemModstamp", "LastModifiedDate")}


def test_several_matches_answer_300_with_the_record_urls(sf, api):
    first = sf.insert("Account", {"Name": "One", "IFS_Customer_Id__c": "C1"})
    second = sf.insert("Account", {"Name": "Two", "IFS_Customer_Id__c": "C1"}, allow_duplicate_external_ids=True)
    url = f"{sf.api_url}/sobjects/Account/IFS_Customer_Id__c/C1"
    several = api.patch(url, json={"Name": "Three"})
    assert several.status_code == 300
    assert sorted(several.json()) == sorted(f"/services/data/v62.0/sobjects/Account/{i}" for i in (first, second))
    assert sorted(r["Name"] for r in sf.records("Account")) == ["One", "Two"]
    assert api.get(url).status_code == 300
    with pytest.raises(RuntimeError, match="DUPLICATE_VALUE"):
        sf.insert("Account", {"Name": "Four", "IFS_Customer_Id__c": "C1"})


def test_external_id_in_body_update_only_and_unknown_external_field(sf, api):
    url = f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/S1"
    mismatch = api.patch(url, json={"Name": "Acme", "IFS_Supplier_Id__c": "S2"})
    assert mismatch.status_code == 400 and mismatch.json()[0]["errorCode"] == "INVALID_FIELD"
    only_update = api.patch(f"{url}?updateOnly=true", json={"Name": "Acme"})
    assert only_update.status_code == 404
    not_external = api.patch(f"{sf.api_url}/sobjects/Account/IFS_Company__c/10", json={"Name": "Acme"})
    assert not_external.status_code == 404
    assert not_external.json()[0]["message"] == \
        "Provided external ID field does not exist or is not accessible: IFS_Company__c"
    assert sf.records("Account") == []


def test_relationship_by_external_id(sf, api):
    account_id = api.patch(f"{sf.api_url}/sobjects/Account/IFS_Customer_Id__c/C100",
                           json={"Name": "Kund AB"}).json()["id"]
    contact = api.patch(f"{sf.api_url}/sobjects/Contact/IFS_Customer_Id__c/C100",
                        json={"LastName": "Berg", "Account": {"IFS_Customer_Id__c": "c100"}})
    assert contact.status_code == 201
    assert sf.records("Contact")[0]["AccountId"] == account_id
    missing = api.patch(f"{sf.api_url}/sobjects/Contact/IFS_Customer_Id__c/C200",
                        json={"LastName": "Holm", "Account": {"IFS_Supplier_Id__c": "S99"}})
    assert missing.status_code == 400
    assert missing.json() == [{"message": "Foreign key external ID: S99 not found for field IFS_Supplier_Id__c in "
                                          "entity Account", "errorCode": "INVALID_FIELD", "fields": []}]
    not_external = api.patch(f"{sf.api_url}/sobjects/Contact/IFS_Customer_Id__c/C200",
                             json={"LastName": "Holm", "Account": {"IFS_Company__c": "10"}})
    assert not_external.status_code == 400 and not_external.json()[0]["errorCode"] == "INVALID_FIELD"
    assert len(sf.records("Contact")) == 1


@pytest.mark.parametrize("fields, code, message, error_fields", [
    ({"Type": "Customer"}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"]),
    ({"Name": "A", "Foo__c": 1}, "INVALID_FIELD", "No such column 'Foo__c' on sobject of type Account", []),
    ({"Name": "A" * 256}, "STRING_TOO_LONG", f"Account Name: data value too large: {'A' * 256} (max length=255)",
     ["Name"]),
    ({"Name": "A", "CreatedDate": "2024-01-01T00:00:00Z", "SystemModstamp": "2024-01-01T00:00:00Z"},
     "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: CreatedDate, SystemModstamp. Please check "
     "the security settings of this field and verify that it is read/write for your profile or permission set.",
     ["CreatedDate", "SystemModstamp"]),
    ({"Name": "A", "Type": "Vendor"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
     "Account Type: bad value for restricted picklist field: Vendor", ["Type"]),
    ({"Name": "A", "Credit_Limit__c": "lots"}, "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Credit Limit: value not of required type: lots", ["Credit_Limit__c"]),
    ({"Name": "A", "AccountNumber": {"nested": 1}}, "INVALID_TYPE_ON_FIELD_IN_RECORD",
     "Account Number: value not of required type: {'nested': 1}", ["AccountNumber"]),
])
def test_single_write_errors(sf, api, fields, code, message, error_fields):
    answer = api.patch(f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/S1", json=fields)
    assert answer.status_code == 400
    assert answer.json() == [{"message": message, "errorCode": code, "fields": error_fields}]
    assert sf.records("Account") == []


def test_more_field_errors(sf, api):
    account_id = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "A"}).json()["id"]
    email = api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "B", "Email": "not-an-address"})
    assert email.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    malformed = api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "B", "AccountId": "xyz"})
    assert malformed.json() == [{"message": "Account ID: id value of incorrect type: xyz", "errorCode": "MALFORMED_ID",
                                 "fields": ["AccountId"]}]
    wrong_object = api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "B", "AccountId": "01s000000000001AAA"})
    assert wrong_object.json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    no_such = api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "B", "AccountId": "0015e00000ZZZZZAAA"})
    assert no_such.json()[0]["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    by_15_chars = api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "B", "AccountId": account_id[:15]})
    assert by_15_chars.status_code == 201
    assert sf.records("Contact")[0]["AccountId"] == account_id
    not_json = api.post(f"{sf.api_url}/sobjects/Account", data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_unique_external_id_on_update_answers_duplicate_value(sf, api):
    first = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "A", "IFS_Customer_Id__c": "C1"}).json()["id"]
    second = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "B"}).json()["id"]
    clash = api.patch(f"{sf.api_url}/sobjects/Account/{second}", json={"IFS_Customer_Id__c": "c1"})
    assert clash.status_code == 400
    assert clash.json() == [{"message": f"duplicate value found: IFS_Customer_Id__c duplicates value on record with "
                                        f"id: {first}", "errorCode": "DUPLICATE_VALUE",
                             "fields": ["IFS_Customer_Id__c"]}]


def test_create_read_update_delete_by_id(sf, api):
    created = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "Acme", "Phone": "", "Website": "acme.se"})
    assert created.status_code == 201 and created.json()["success"] is True and "created" not in created.json()
    record_id = created.json()["id"]
    url = f"{sf.api_url}/sobjects/Account/{record_id}"
    record = api.get(url).json()
    assert record["attributes"] == {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{record_id}"}
    assert record["Phone"] is None  # an empty text is stored as null
    selected = api.get(url, params={"fields": "name,Website"}).json()  # Id follows the fields asked for
    assert list(selected.items()) == [("attributes", record["attributes"]), ("Name", "Acme"), ("Website", "acme.se"),
                                      ("Id", record_id)]
    unknown = api.get(url, params={"fields": "Name,Nmae"})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    assert unknown.json()[0]["message"].startswith("No such column 'Nmae' on entity 'Account'.")
    changed = api.patch(url, json={"Name": "Acme AB"})
    assert changed.status_code == 204 and changed.content == b""
    assert api.get(url).json()["Name"] == "Acme AB"
    assert api.delete(url).status_code == 204
    gone = api.get(url)
    assert gone.status_code == 404 and gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert sf.records("Account") == []
    assert [r["IsDeleted"] for r in sf.records("Account", include_deleted=True)] == [True]
    assert api.get(f"{sf.api_url}/sobjects/Account/0015e00000ZZZZZAAA").status_code == 404
