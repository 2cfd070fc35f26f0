"""Describe and the admin interface of the Salesforce stand-in: the object list, field shapes as Salesforce
describes them, the seeded price book, and edits made "as a person in Salesforce" moving the audit fields."""

from __future__ import annotations

import pytest

import salesforce_standin_client as standin

api, sf = standin.api, standin.sf  # fixtures


def fields_of(sf, api, sobject) -> dict[str, dict]:
    answer = api.get(f"{sf.api_url}/sobjects/{sobject}/describe")
    assert answer.status_code == 200
    document = answer.json()
    assert document["name"] == sobject
    return {f["name"]: f for f in document["fields"]}


def test_object_list(sf, api):
    listing = api.get(f"{sf.api_url}/sobjects").json()
    assert listing["maxBatchSize"] == 200
    prefixes = {o["name"]: o["keyPrefix"] for o in listing["sobjects"]}
    assert prefixes == {"Account": "001", "Contact": "003", "Order": "801", "OrderItem": "802", "Pricebook2": "01s",
                        "Product2": "01t", "PricebookEntry": "01u"}
    account = next(o for o in listing["sobjects"] if o["name"] == "Account")
    assert account["urls"]["describe"] == "/services/data/v62.0/sobjects/Account/describe"


def test_account_field_shapes(sf, api):
    fields = fields_of(sf, api, "Account")
    expected_keys = {"name", "type", "length", "nillable", "createable", "updateable", "externalId", "unique",
                     "referenceTo", "relationshipName", "defaultedOnCreate"}
    assert all(expected_keys <= set(f) for f in fields.values())
    assert fields["Id"]["type"] == "id" and not fields["Id"]["createable"] and fields["Id"]["length"] == 18
    name = fields["Name"]
    assert (name["type"], name["length"], name["nillable"], name["createable"]) == ("string", 255, False, True)
    supplier = fields["IFS_Supplier_Id__c"]
    assert (supplier["externalId"], supplier["unique"], supplier["length"], supplier["custom"]) == (True, True, 20, True)
    assert fields["IFS_Company__c"]["externalId"] is False
    assert [v["value"] for v in fields["Type"]["picklistValues"]] == ["Supplier", "Customer", "Partner", "Other"]
    assert fields["Credit_Limit__c"]["type"] == "currency" and fields["Credit_Limit__c"]["precision"] == 18
    assert fields["Credit_Limit__c"]["scale"] == 2 and fields["Payment_Terms__c"]["length"] == 40
    stamp = fields["SystemModstamp"]
    assert (stamp["type"], stamp["createable"], stamp["updateable"], stamp["nillable"]) == \
        ("datetime", False, False, False)
    assert fields["CurrencyIsoCode"]["defaultedOnCreate"] is True
    assert set(fields) >= {"BillingStreet", "BillingCity", "BillingPostalCode", "BillingCountry", "Phone", "Website",
                           "Description", "IFS_Customer_Id__c", "CreatedDate", "LastModifiedDate", "IsDeleted"}


def test_reference_and_order_field_shapes(sf, api):
    contact = fields_of(sf, api, "Contact")
    assert contact["AccountId"]["referenceTo"] == ["Account"] and contact["AccountId"]["relationshipName"] == "Account"
    assert contact["Email"]["type"] == "email" and contact["LastName"]["nillable"] is False
    order = fields_of(sf, api, "Order")
    total = order["TotalAmount"]
    assert (total["createable"], total["updateable"], total["calculated"]) == (False, False, True)
    assert order["EffectiveDate"]["type"] == "date" and order["IFS_Order_No__c"]["externalId"] is True
    item = fields_of(sf, api, "OrderItem")
    assert item["OrderId"]["relationshipName"] == "Order"
    assert (item["OrderId"]["createable"], item["OrderId"]["updateable"]) == (True, False)
    assert item["Quantity"]["type"] == "double" and item["IFS_Line_Key__c"]["unique"] is True


def test_seeded_price_book(sf, api):
    [book] = sf.records("Pricebook2")
    assert (book["Id"], book["IsStandard"], book["IsActive"]) == ("01s000000000001AAA", True, True)
    [entry] = sf.records("PricebookEntry")
    assert (entry["Id"], entry["Pricebook2Id"], entry["Name"]) == \
        ("01u000000000001AAA", "01s000000000001AAA", "IFS purchase line")
    assert api.get(f"{sf.api_url}/sobjects/PricebookEntry/01u000000000001").json()["Id"] == "01u000000000001AAA"


def test_admin_edits_move_the_audit_fields_as_a_person_would(sf, api):
    record_id = api.patch(f"{sf.api_url}/sobjects/Account/IFS_Customer_Id__c/C1", json={"Name": "Kund"}).json()["id"]
    [before] = sf.records("Account")
    sf.advance_clock(61)
    edited = sf.edit("Account", record_id, {"BillingCity": "Malmö"})
    assert edited["BillingCity"] == "Malmö"
    assert edited["SystemModstamp"] > before["SystemModstamp"]
    assert edited["LastModifiedDate"] > before["LastModifiedDate"]
    assert edited["LastModifiedById"] == sf.info()["ui_user_id"] != before["LastModifiedById"]
    inserted = sf.insert("Account", {"Name": "Made in Salesforce", "IFS_Customer_Id__c": "C2"})
    assert api.get(f"{sf.api_url}/sobjects/Account/{inserted}").json()["CreatedById"] == sf.info()["ui_user_id"]
    with pytest.raises(RuntimeError, match="REQUIRED_FIELD_MISSING"):
        sf.edit("Account", record_id, {"Name": None})
    with pytest.raises(RuntimeError, match="404"):
        sf.edit("Account", "0015e00000ZZZZZAAA", {"Name": "x"})
    sf.reset()
    assert sf.records("Account") == [] and len(sf.records("Pricebook2")) == 1
