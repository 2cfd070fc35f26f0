"""sObject Collections on the Salesforce stand-in: upsert of up to 200 records by external id with per-record results
in order (the good records stored, the bad ones with Salesforce's errors), allOrNone rollback, the 200-record cap,
create / update / delete collections, retrieve by ids (GET and the POST form)."""

from __future__ import annotations

import salesforce_standin_client as standin

api, sf = standin.api, standin.sf  # fixtures


def account(supplier_id, **fields) -> dict:
    record = {"attributes": {"type": "Account"}, "Name": f"Supplier {supplier_id}", **fields}
    if supplier_id is not None:
        record["IFS_Supplier_Id__c"] = supplier_id
    return record


def upsert(sf, api, records, all_or_none=False, sobject="Account", field="IFS_Supplier_Id__c"):
    return api.patch(f"{sf.api_url}/composite/sobjects/{sobject}/{field}",
                     json={"allOrNone": all_or_none, "records": records})


def codes(results) -> list:
    return [r["errors"][0]["statusCode"] if r["errors"] else None for r in results]


def test_per_record_errors_in_order_while_the_others_are_stored(sf, api):
    existing = upsert(sf, api, [account("S7", Phone="08-1")]).json()[0]["id"]
    records = [
        account("S1"),
        {"attributes": {"type": "Account"}, "IFS_Supplier_Id__c": "S2"},  # no Name
        account("S3", Foo__c="x"),
        account("S4", Payment_Terms__c="x" * 41),
        account("S5", TotalAmount=1, CreatedById="0055e000001MLCbAAO"),
        account("S6"),
        account("s6", Name="Same id, other case"),
        account("S7", Phone="08-2"),
        account(None),
        account("S8", Type="Vendor"),
    ]
    answer = upsert(sf, api, records)
    assert answer.status_code == 200
    results = answer.json()
    assert codes(results) == [None, "REQUIRED_FIELD_MISSING", "INVALID_FIELD", "STRING_TOO_LONG", "INVALID_FIELD",
                              "DUPLICATE_EXTERNAL_ID", "DUPLICATE_EXTERNAL_ID", None, "MISSING_ARGUMENT",
                              "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    assert results[0]["success"] is True and results[0]["created"] is True
    assert results[7] == {"id": existing, "success": True, "errors": [], "created": False}
    assert results[1] == {"success": False, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING",
                                                        "message": "Required fields are missing: [Name]",
                                                        "fields": ["Name"]}]}
    assert results[2]["errors"][0]["message"] == "No such column 'Foo__c' on sobject of type Account"
    assert results[3]["errors"][0]["message"] == f"Payment Terms: data value too large: {'x' * 41} (max length=40)"
    # TotalAmount is not an Account field; CreatedById is read-only: the first complaint is the unknown column
    assert results[5]["errors"][0] == {"statusCode": "DUPLICATE_EXTERNAL_ID",
                                       "message": "Duplicate external id specified: S6",
                                       "fields": ["IFS_Supplier_Id__c"]}
    assert results[8]["errors"][0]["message"] == "IFS_Supplier_Id__c not specified"
    stored = {r["IFS_Supplier_Id__c"]: r for r in sf.records("Account")}
    assert set(stored) == {"S1", "S7"} and stored["S7"]["Phone"] == "08-2"
    assert [e["error_codes"] for e in sf.requests() if "/composite/" in e["path"]][-1] == \
        [c for c in codes(results) if c]


def test_read_only_fields_in_a_collection(sf, api):
    results = upsert(sf, api, [account("S1", CreatedById="0055e000001MLCbAAO"), account("S2")]).json()
    assert results[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert results[0]["errors"][0]["fields"] == ["CreatedById"]
    assert results[1]["success"] is True


def test_rerun_updates_the_same_records(sf, api):
    records = [account(f"S{i}", Credit_Limit__c=i * 100) for i in range(50)]
    first = upsert(sf, api, records).json()
    second = upsert(sf, api, records).json()
    assert all(r["created"] for r in first) and not any(r["created"] for r in second)
    assert [r["id"] for r in first] == [r["id"] for r in second]
    assert len(sf.records("Account")) == 50


def test_all_or_none_rolls_back_every_record(sf, api):
    upsert(sf, api, [account("S1", Phone="1")])
    before = sf.records("Account")
    answer = upsert(sf, api, [account("S1", Phone="2"), account("S2"), account("S3", Type="Vendor")],
                    all_or_none=True)
    assert answer.status_code == 200
    results = answer.json()
    rolled_back = {"success": False, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                 "message": "Record rolled back because not all records were valid "
                                                            "and the request was using AllOrNone header",
                                                 "fields": []}]}
    assert results[:2] == [rolled_back, rolled_back]
    assert results[2]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf.records("Account") == before
    good = upsert(sf, api, [account("S1", Phone="2"), account("S2")], all_or_none=True).json()
    assert [r["success"] for r in good] == [True, True]
    assert sorted(r["Phone"] or "" for r in sf.records("Account")) == ["", "2"]


def test_more_than_200_records_are_refused(sf, api):
    answer = upsert(sf, api, [account(f"S{i}") for i in range(201)])
    assert answer.status_code == 400
    assert answer.json() == [{"message": "record limit reached. cannot submit more than 200 records into this call",
                              "errorCode": "EXCEEDED_ID_LIMIT"}]
    assert sf.records("Account") == []
    assert len(upsert(sf, api, [account(f"S{i}") for i in range(200)]).json()) == 200


def test_records_must_name_the_type_of_the_url(sf, api):
    contact = {"attributes": {"type": "Contact"}, "LastName": "Berg", "IFS_Supplier_Id__c": "S1"}
    mixed = upsert(sf, api, [account("S0"), contact])
    assert mixed.status_code == 400 and mixed.json()[0]["errorCode"] == "INVALID_TYPE"
    untyped = upsert(sf, api, [{"Name": "A", "IFS_Supplier_Id__c": "S1"}])
    assert untyped.status_code == 400 and untyped.json()[0]["errorCode"] == "INVALID_TYPE"
    not_external = upsert(sf, api, [account("S1")], field="Name")
    assert not_external.status_code == 404
    assert sf.records("Account") == []


def test_create_update_and_delete_collections(sf, api):
    created = api.post(f"{sf.api_url}/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "A"}, {"attributes": {"type": "Contact"}, "LastName": "B"},
        {"attributes": {"type": "Account"}}]}).json()
    assert [r["success"] for r in created] == [True, True, False]
    account_id, contact_id = created[0]["id"], created[1]["id"]
    updated = api.patch(f"{sf.api_url}/composite/sobjects", json={"records": [
        {"attributes": {"type": "Account"}, "Id": account_id, "Name": "A2"},
        {"attributes": {"type": "Account"}, "Id": "0015e00000ZZZZZAAA", "Name": "nobody"}]}).json()
    assert [r["success"] for r in updated] == [True, False]
    assert updated[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert sf.records("Account")[0]["Name"] == "A2"
    deleted = api.delete(f"{sf.api_url}/composite/sobjects", params={"ids": f"{account_id},{contact_id}"}).json()
    assert deleted == [{"id": account_id, "success": True, "errors": []},
                       {"id": contact_id, "success": True, "errors": []}]
    assert sf.records("Account") == [] and sf.records("Contact") == []
    again = api.delete(f"{sf.api_url}/composite/sobjects", params={"ids": account_id}).json()
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


def test_retrieve_by_ids_answers_one_record_or_null_per_id(sf, api):
    created = api.post(f"{sf.api_url}/composite/sobjects", json={"records": [
        {"attributes": {"type": "Account"}, "Name": "A", "Phone": "1"},
        {"attributes": {"type": "Account"}, "Name": "B"},
        {"attributes": {"type": "Account"}, "Name": "Gone"},
        {"attributes": {"type": "Contact"}, "LastName": "C"}]}).json()
    first, second, gone, contact = [r["id"] for r in created]
    api.delete(f"{sf.api_url}/sobjects/Account/{gone}")
    wanted = [second, "0015e00000ZZZZZAAA", first, contact, gone, "nonsense", first[:15]]
    answer = api.get(f"{sf.api_url}/composite/sobjects/Account", params={"ids": ",".join(wanted),
                                                                          "fields": "name,Phone"})
    assert answer.status_code == 200
    url = f"/services/data/v62.0/sobjects/Account/{first}"
    assert answer.json() == [
        {"attributes": {"type": "Account", "url": f"/services/data/v62.0/sobjects/Account/{second}"}, "Name": "B",
         "Phone": None, "Id": second},
        None,
        {"attributes": {"type": "Account", "url": url}, "Name": "A", "Phone": "1", "Id": first},
        None, None, None,
        {"attributes": {"type": "Account", "url": url}, "Name": "A", "Phone": "1", "Id": first}]
    posted = api.post(f"{sf.api_url}/composite/sobjects/Account", json={"ids": [first, second], "fields": ["Id"]})
    assert [r["Id"] for r in posted.json()] == [first, second] and list(posted.json()[0]) == ["attributes", "Id"]


def test_retrieve_refusals(sf, api):
    account = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "A"}).json()["id"]
    url = f"{sf.api_url}/composite/sobjects/Account"
    unknown = api.get(url, params={"ids": account, "fields": "Name,Nmae"})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    no_fields = api.get(url, params={"ids": account})
    assert no_fields.status_code == 400 and no_fields.json()[0]["message"] == "fields not specified"
    assert api.post(url, json={"fields": ["Name"]}).json()[0]["message"] == "ids not specified"
    too_many = api.post(url, json={"ids": [account] * 2001, "fields": ["Name"]})
    assert too_many.status_code == 400 and too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert len(api.post(url, json={"ids": [account] * 2000, "fields": ["Name"]}).json()) == 2000
    assert api.post(url, json={"ids": account, "fields": ["Name"]}).json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    assert api.get(f"{sf.api_url}/composite/sobjects/Nothing__c", params={"ids": account, "fields": "Id"}) \
        .status_code == 404
