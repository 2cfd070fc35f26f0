"""The Composite resource on the Salesforce stand-in: subrequests in order with @{ref.field} references between them,
one API request for all, allOrNone false (dependent subrequests halted, the others run) and true (everything rolled
back, collections inside too), the 25/5 subrequest limits and malformed requests refused as a whole."""

from __future__ import annotations

import salesforce_standin_client as standin

api, sf = standin.api, standin.sf  # fixtures

V = "/services/data/v62.0"
HALTED = [{"errorCode": "PROCESSING_HALTED",
           "message": "The transaction was rolled back since another operation in the same transaction failed."}]


def composite(sf, api, subrequests, all_or_none=False, **extra):
    return api.post(f"{sf.api_url}/composite", json={"allOrNone": all_or_none, "compositeRequest": subrequests,
                                                      **extra})


def sub(method, url, reference_id, body=None, **extra):
    request = {"method": method, "url": f"{V}{url}", "referenceId": reference_id, **extra}
    if body is not None:
        request["body"] = body
    return request


def by_reference(answer) -> dict:
    return {result["referenceId"]: result for result in answer.json()["compositeResponse"]}


def test_references_chain_subrequests_in_one_api_request(sf, api):
    sf.set_api_usage(0)
    answer = composite(sf, api, [
        sub("POST", "/sobjects/Account", "newAccount", {"Name": "Nordic Steel AB", "IFS_Supplier_Id__c": "S1"}),
        sub("POST", "/sobjects/Contact", "newContact", {"LastName": "Berg", "AccountId": "@{newAccount.id}"}),
        sub("GET", "/sobjects/Account/@{newAccount.id}?fields=Name,IFS_Supplier_Id__c", "readBack"),
        sub("GET", "/query?q=SELECT+Id,+Account.Name+FROM+Contact+WHERE+AccountId+=+'@{newAccount.id}'", "contacts"),
        sub("PATCH", "/sobjects/Account/@{newAccount.id}", "describeIt",
            {"Description": "@{readBack.Name} has @{contacts.totalSize} contact(s)"}),
        sub("PATCH", "/sobjects/Account/IFS_Supplier_Id__c/S2", "upserted", {"Name": "Baltic Metals"}),
    ])
    assert answer.status_code == 200 and answer.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    results = by_reference(answer)
    account_id = results["newAccount"]["body"]["id"]
    assert results["newAccount"] == {"body": {"id": account_id, "success": True, "errors": []},
                                     "httpHeaders": {"Location": f"{V}/sobjects/Account/{account_id}"},
                                     "httpStatusCode": 201, "referenceId": "newAccount"}
    assert results["readBack"]["httpStatusCode"] == 200
    assert results["readBack"]["body"]["IFS_Supplier_Id__c"] == "S1"
    assert results["contacts"]["body"]["records"][0]["Account"]["Name"] == "Nordic Steel AB"
    assert (results["describeIt"]["httpStatusCode"], results["describeIt"]["body"]) == (204, None)
    assert results["upserted"]["httpStatusCode"] == 201 and results["upserted"]["body"]["created"] is True
    [contact] = sf.records("Contact")
    assert contact["AccountId"] == account_id
    stored = {r["Name"]: r for r in sf.records("Account")}
    assert stored["Nordic Steel AB"]["Description"] == "Nordic Steel AB has 1 contact(s)"
    assert "Baltic Metals" in stored
    api_requests = [e["path"] for e in sf.requests() if e["path"].startswith("/services/data")]
    assert api_requests == [f"{V}/composite"]  # the subrequests are no requests of their own


def test_without_all_or_none_only_dependent_subrequests_are_halted(sf, api):
    answer = composite(sf, api, [
        sub("POST", "/sobjects/Account", "badAccount", {"Name": "Acme", "Type": "Vendor"}),
        sub("POST", "/sobjects/Contact", "dependent", {"LastName": "Berg", "AccountId": "@{badAccount.id}"}),
        sub("POST", "/sobjects/Account", "goodAccount", {"Name": "Good AB"}),
        sub("GET", "/sobjects/Account/@{goodAccount.id}", "missingField", None),
        sub("PATCH", "/sobjects/Account/@{goodAccount.id}", "usesMissing", {"Phone": "@{missingField.Nmae}"}),
    ])
    results = by_reference(answer)
    assert results["badAccount"]["httpStatusCode"] == 400
    assert results["badAccount"]["body"][0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results["dependent"] == {"body": [{"errorCode": "PROCESSING_HALTED", "message": "Invalid reference "
                                              "specified. No value for badAccount.id found in badAccount."}],
                                    "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "dependent"}
    assert results["goodAccount"]["httpStatusCode"] == 201 and results["missingField"]["httpStatusCode"] == 200
    assert results["usesMissing"]["body"][0]["message"].startswith(
        "Invalid reference specified. No value for missingField.Nmae found in missingField.")
    assert [r["Name"] for r in sf.records("Account")] == ["Good AB"] and sf.records("Contact") == []


def test_all_or_none_rolls_back_every_subrequest(sf, api):
    existing = sf.insert("Account", {"Name": "Before", "Phone": "1"})
    answer = composite(sf, api, [
        sub("PATCH", f"/sobjects/Account/{existing}", "update", {"Phone": "2"}),
        sub("POST", "/sobjects/Account", "create", {"Name": "Created"}),
        sub("POST", "/sobjects/Contact", "bad", {"LastName": "Berg", "Email": "not an address"}),
        sub("POST", "/sobjects/Account", "after", {"Name": "Never"}),
    ], all_or_none=True)
    results = by_reference(answer)
    assert results["bad"]["body"][0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    for reference_id in ("update", "create", "after"):
        assert (results[reference_id]["httpStatusCode"], results[reference_id]["body"]) == (400, HALTED)
    assert [(r["Name"], r["Phone"]) for r in sf.records("Account")] == [("Before", "1")]
    assert sf.records("Contact") == []


def test_all_or_none_applies_to_collections_inside(sf, api):
    records = [{"attributes": {"type": "Account"}, "Name": "One", "IFS_Supplier_Id__c": "S1"},
               {"attributes": {"type": "Account"}, "Name": "Two", "IFS_Supplier_Id__c": "S2", "Type": "Vendor"}]
    collection = {"allOrNone": False, "records": records}
    outer_false = composite(sf, api, [sub("PATCH", "/composite/sobjects/Account/IFS_Supplier_Id__c", "upsert",
                                          collection)])
    [result] = outer_false.json()["compositeResponse"]
    assert result["httpStatusCode"] == 200 and [r["success"] for r in result["body"]] == [True, False]
    assert [r["Name"] for r in sf.records("Account")] == ["One"]
    records[0]["Name"] = "One changed"
    outer_true = composite(sf, api, [
        sub("PATCH", "/composite/sobjects/Account/IFS_Supplier_Id__c", "upsert", collection),
        sub("POST", "/sobjects/Account", "other", {"Name": "Other"}),
    ], all_or_none=True)
    results = by_reference(outer_true)
    assert [r["success"] for r in results["upsert"]["body"]] == [False, False]
    assert results["upsert"]["body"][0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results["other"]["body"] == HALTED
    assert [r["Name"] for r in sf.records("Account")] == ["One"]


def test_subrequest_limits(sf, api):
    too_many = composite(sf, api, [sub("POST", "/sobjects/Account", f"a{i}", {"Name": f"A{i}"}) for i in range(26)])
    assert too_many.status_code == 200
    assert too_many.json() == {"compositeResponse": [{
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": "The request can’t contain more than 25 operations."}],
        "httpHeaders": {}, "httpStatusCode": 400, "referenceId": None}]}
    queries = [sub("GET", "/query?q=SELECT+Id+FROM+Account", f"q{i}") for i in range(6)]
    too_many_queries = composite(sf, api, queries + [sub("POST", "/sobjects/Account", "a", {"Name": "A"})])
    assert too_many_queries.json()["compositeResponse"][0]["body"][0]["errorCode"] == "LIMIT_EXCEEDED"
    assert sf.records("Account") == []
    twenty_five = composite(sf, api, queries[:5] + [sub("POST", "/sobjects/Account", f"a{i}", {"Name": f"A{i}"})
                                                    for i in range(20)])
    assert [r["httpStatusCode"] for r in twenty_five.json()["compositeResponse"]] == [200] * 5 + [201] * 20


def test_malformed_requests_are_refused_whole(sf, api):
    bad_reference = composite(sf, api, [sub("POST", "/sobjects/Account", "refNewAccount[1]", {"Name": "A"})])
    assert bad_reference.status_code == 400
    assert bad_reference.json() == [{"message": "Provided referenceId ('refNewAccount[1]') must start with a letter "
                                                "or a number, and it can contain only letters, numbers and "
                                                "underscores ('_').", "errorCode": "JSON_PARSER_ERROR"}]
    duplicate = composite(sf, api, [sub("POST", "/sobjects/Account", "a", {"Name": "A"}),
                                    sub("POST", "/sobjects/Account", "a", {"Name": "B"})])
    inherited_header = composite(sf, api, [sub("GET", "/limits", "l", httpHeaders={"Authorization": "Bearer x"})])
    no_list = api.post(f"{sf.api_url}/composite", json={"allOrNone": True})
    wrong_method = composite(sf, api, [sub("get", "/sobjects/Account", "a")])
    for refused in (duplicate, inherited_header, no_list, wrong_method):
        assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "JSON_PARSER_ERROR", refused.text
    assert sf.records("Account") == []


def test_resources_a_subrequest_cannot_reach(sf, api):
    answer = composite(sf, api, [sub("GET", "/limits", "limits"), sub("GET", "/sobjects/Nothing__c", "unknown"),
                                 sub("PUT", "/sobjects/Account", "wrongMethod"),
                                 sub("GET", "/sobjects/Account/describe", "describe")])
    codes = [(r["httpStatusCode"], r["body"][0]["errorCode"] if r["httpStatusCode"] >= 400 else None)
             for r in answer.json()["compositeResponse"]]
    assert codes == [(404, "NOT_FOUND"), (404, "NOT_FOUND"), (405, "METHOD_NOT_ALLOWED"), (200, None)]


def test_the_composite_resources_listed_are_served(sf, api):
    listed = api.get(f"{sf.api_url}/").json()
    assert listed["composite"] == f"{V}/composite"
    served = api.get(f"{sf.base_url}{listed['composite']}").json()
    assert served == {"sobjects": f"{V}/composite/sobjects"}
    for url in list(listed.values()) + list(served.values()):
        method = "POST" if url.endswith("/composite/sobjects") else "GET"
        body = {"records": []} if method == "POST" else None
        assert api.request(method, f"{sf.base_url}{url}", json=body).status_code != 404, url
