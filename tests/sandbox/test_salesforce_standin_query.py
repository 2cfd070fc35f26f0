"""SOQL on the Salesforce stand-in: WHERE on SystemModstamp with datetime literals, parent fields, the operators of
the subset, COUNT() and COUNT(field), the Order object (whose name is also a keyword), paging through nextRecordsUrl,
queryAll, and Salesforce's error codes for malformed queries."""

from __future__ import annotations

import pytest

import salesforce_standin_client as standin

api, sf = standin.api, standin.sf  # fixtures


def query(sf, api, soql, resource="query", **headers):
    return api.get(f"{sf.api_url}/{resource}", params={"q": soql}, headers=headers)


def rows(sf, api, soql) -> list[dict]:
    answer = query(sf, api, soql)
    assert answer.status_code == 200, answer.text
    return answer.json()["records"]


def seed_accounts(sf, api, count: int) -> list[str]:
    records = [{"attributes": {"type": "Account"}, "IFS_Customer_Id__c": f"C{i:03}", "Name": f"Customer {i:03}",
                "Type": "Customer" if i % 2 else "Partner", "Credit_Limit__c": i * 10,
                "BillingCountry": None if i % 3 == 0 else "SE"} for i in range(count)]
    results = api.patch(f"{sf.api_url}/composite/sobjects/Account/IFS_Customer_Id__c",
                        json={"allOrNone": True, "records": records}).json()
    return [r["id"] for r in results]


def test_where_system_modstamp_sees_only_later_changes(sf, api):
    seed_accounts(sf, api, 5)
    [first] = rows(sf, api, "SELECT Id, SystemModstamp FROM Account WHERE IFS_Customer_Id__c = 'C001'")
    mark = first["SystemModstamp"]
    assert mark.endswith(".000+0000")
    sf.advance_clock(10)
    edited = sf.edit("Account", first["Id"], {"Phone": "08-123"})
    bookmark = mark.replace(".000+0000", "Z")
    changed = rows(sf, api, f"SELECT Id, Phone, SystemModstamp FROM Account WHERE SystemModstamp > {bookmark}")
    assert [(r["Id"], r["Phone"]) for r in changed] == [(first["Id"], "08-123")]
    assert changed[0]["SystemModstamp"] == edited["SystemModstamp"]
    assert len(rows(sf, api, f"SELECT Id FROM Account WHERE SystemModstamp >= {bookmark}")) == 5
    with_offset = bookmark.replace("Z", "+02:00")  # two hours earlier in UTC: everything is later
    assert len(rows(sf, api, f"SELECT Id FROM Account WHERE SystemModstamp > {with_offset}")) == 5
    with_millis = bookmark.replace("Z", ".999Z")
    assert len(rows(sf, api, f"SELECT Id FROM Account WHERE SystemModstamp > {with_millis}")) == 1
    assert len(rows(sf, api, "SELECT Id FROM Account WHERE SystemModstamp = TODAY OR SystemModstamp > TODAY")) == 5


def test_paging_with_next_records_url_across_several_pages(sf, api):
    ids = seed_accounts(sf, api, 10)
    sf.change_settings(query_batch_size=3)
    sf.set_api_usage(0)
    answer = query(sf, api, "SELECT Id, Name FROM Account ORDER BY Name").json()
    pages = [answer]
    while not pages[-1]["done"]:
        next_url = pages[-1]["nextRecordsUrl"]
        assert next_url.startswith("/services/data/v62.0/query/01g")
        pages.append(api.get(f"{sf.base_url}{next_url}").json())
    assert [len(p["records"]) for p in pages] == [3, 3, 3, 1]
    assert all(p["totalSize"] == 10 for p in pages) and "nextRecordsUrl" not in pages[-1]
    assert [r["Id"] for p in pages for r in p["records"]] == ids
    assert sf.info()["api_used"] == 4  # every page is an API call
    bad_locator = api.get(f"{sf.api_url}/query/01g5eXXXXXXXXXXXXX-3")
    assert bad_locator.status_code == 400 and bad_locator.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    hinted = query(sf, api, "SELECT Id FROM Account", **{"Sforce-Query-Options": "batchSize=50"}).json()
    assert len(hinted["records"]) == 10 and hinted["done"]  # Salesforce's minimum batch is 200


def test_parent_fields_and_operators(sf, api):
    seed_accounts(sf, api, 6)
    api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "O'Brien", "Account": {"IFS_Customer_Id__c": "C002"}})
    api.post(f"{sf.api_url}/sobjects/Contact", json={"LastName": "Lonely"})
    contacts = rows(sf, api, "SELECT LastName, Account.IFS_Customer_Id__c, Account.Name FROM Contact ORDER BY LastName")
    assert contacts[0]["Account"] is None
    assert contacts[1]["Account"]["IFS_Customer_Id__c"] == "C002" and contacts[1]["Account"]["Name"] == "Customer 002"
    assert contacts[1]["Account"]["attributes"]["type"] == "Account"
    assert [r["LastName"] for r in rows(sf, api, r"SELECT LastName FROM Contact WHERE LastName = 'o\'brien'")] == \
        ["O'Brien"]
    assert rows(sf, api, "SELECT Id FROM Contact WHERE Account.IFS_Customer_Id__c = 'C002'")[0]
    names = lambda soql: [r["Name"] for r in rows(sf, api, soql)]  # noqa: E731
    assert names("SELECT Name FROM Account WHERE IFS_Customer_Id__c IN ('C001', 'c004')") == \
        ["Customer 001", "Customer 004"]
    assert names("SELECT Name FROM Account WHERE Name LIKE '%00_' AND Type = 'Customer' AND Credit_Limit__c >= 30") \
        == ["Customer 003", "Customer 005"]
    assert names("SELECT Name FROM Account WHERE BillingCountry = null") == ["Customer 000", "Customer 003"]
    assert names("SELECT Name FROM Account WHERE (Type = 'Partner' OR Credit_Limit__c > 40) AND BillingCountry != null") \
        == ["Customer 002", "Customer 004", "Customer 005"]
    assert names("SELECT Name FROM Account WHERE NOT Type = 'Partner' ORDER BY Name DESC LIMIT 2") == \
        ["Customer 005", "Customer 003"]
    assert names("SELECT Name FROM Account ORDER BY BillingCountry NULLS LAST, Name DESC LIMIT 2 OFFSET 3") == \
        ["Customer 001", "Customer 003"]
    assert names("SELECT Name FROM Account WHERE IsDeleted = false AND IFS_Customer_Id__c NOT IN ('C000')")[0] == \
        "Customer 001"


def test_query_all_includes_deleted_rows(sf, api):
    ids = seed_accounts(sf, api, 3)
    api.delete(f"{sf.api_url}/sobjects/Account/{ids[0]}")
    assert len(rows(sf, api, "SELECT Id FROM Account")) == 2
    everything = query(sf, api, "SELECT Id, IsDeleted FROM Account", resource="queryAll").json()["records"]
    assert [(r["Id"], r["IsDeleted"]) for r in everything] == [(ids[0], True), (ids[1], False), (ids[2], False)]


@pytest.mark.parametrize("soql, code, text", [
    ("SELECT Id FRM Account", "MALFORMED_QUERY", "\nSELECT Id FRM Account\n          ^\nERROR at Row:1:Column:11\n"
                                                 "unexpected token: FRM"),
    ("SELECT Id, Nmae FROM Account", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'."),
    ("SELECT Id FROM Acount", "INVALID_TYPE", "sObject type 'Acount' is not supported."),
    ("SELECT Id FROM Account WHERE SystemModstamp > '2024-01-01T00:00:00Z'", "INVALID_FIELD",
     "value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in "
     "quotes"),
    ("SELECT Id FROM Account WHERE Name = 'a' AND Type = 'b' OR Phone = 'c'", "MALFORMED_QUERY", "unexpected token: OR"),
    ("SELECT FIELDS(ALL) FROM Account", "MALFORMED_QUERY", "unexpected token: ("),
    ("SELECT SUM(Credit_Limit__c) FROM Account", "MALFORMED_QUERY", "unexpected token: ("),
    ("SELECT COUNT(), Name FROM Account", "MALFORMED_QUERY", "unexpected token: ,"),
    ("SELECT Name, COUNT() FROM Account", "MALFORMED_QUERY", "unexpected token: COUNT"),
    ("SELECT COUNT() FROM Account ORDER BY Name", "MALFORMED_QUERY", "unexpected token: ORDER"),
    ("SELECT Name, COUNT(Id) FROM Account", "MALFORMED_QUERY", "Field must be grouped or aggregated: Name"),
    ("SELECT COUNT(Nmae) FROM Account", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'."),
    ("SELECT Id FROM Where", "MALFORMED_QUERY", "unexpected token: Where"),
    ("SELECT Id FROM Account WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
    ("SELECT Id FROM Account WHERE Name = 'unterminated", "MALFORMED_QUERY", "unexpected token"),
    ("", "MALFORMED_QUERY", "A query string has to be specified"),
])
def test_malformed_queries(sf, api, soql, code, text):
    answer = query(sf, api, soql)
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["errorCode"] == code and text in error["message"]


def test_count_answers_total_size_without_records(sf, api):
    seed_accounts(sf, api, 7)
    everything = query(sf, api, "SELECT COUNT() FROM Account").json()
    assert everything == {"totalSize": 7, "done": True, "records": []}
    partners = query(sf, api, "select count() from Account where Type = 'Partner'").json()
    assert partners["totalSize"] == 4 and partners["records"] == []
    assert query(sf, api, "SELECT COUNT() FROM Account LIMIT 5").json()["totalSize"] == 5  # LIMIT caps the count
    ids = [r["Id"] for r in rows(sf, api, "SELECT Id FROM Account")]
    api.delete(f"{sf.api_url}/sobjects/Account/{ids[0]}")
    assert query(sf, api, "SELECT COUNT() FROM Account").json()["totalSize"] == 6
    assert query(sf, api, "SELECT COUNT() FROM Account", resource="queryAll").json()["totalSize"] == 7


def test_count_of_a_field_is_an_aggregate_result(sf, api):
    seed_accounts(sf, api, 7)  # BillingCountry is empty on every third account (0, 3, 6)
    answer = query(sf, api, "SELECT COUNT(Id), COUNT(BillingCountry) countries, COUNT(Phone) FROM Account").json()
    assert answer == {"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "AggregateResult"}, "expr0": 7, "countries": 4, "expr1": 0}]}
    filtered = query(sf, api, "SELECT COUNT(Name) FROM Account WHERE Credit_Limit__c >= 30 LIMIT 1").json()
    assert filtered["records"][0]["expr0"] == 4  # LIMIT applies to the one aggregated row, not to the rows counted


def test_order_is_an_object_and_order_by_still_sorts(sf, api):
    account = api.post(f"{sf.api_url}/sobjects/Account", json={"Name": "Nordic Steel AB"}).json()["id"]
    for number, day in (("P2", "2026-01-02"), ("P1", "2026-01-01"), ("P3", "2026-01-03")):
        created = api.post(f"{sf.api_url}/sobjects/Order", json={
            "AccountId": account, "EffectiveDate": day, "Status": "Draft", "IFS_Order_No__c": number})
        assert created.status_code == 201, created.text
    assert [r["IFS_Order_No__c"] for r in rows(sf, api, "SELECT IFS_Order_No__c FROM Order")] == ["P2", "P1", "P3"]
    ordered = rows(sf, api, "SELECT Id, IFS_Order_No__c, Account.Name FROM Order ORDER BY EffectiveDate DESC")
    assert [r["IFS_Order_No__c"] for r in ordered] == ["P3", "P2", "P1"]
    assert ordered[0]["Account"]["Name"] == "Nordic Steel AB"
    drafts = rows(sf, api, "select Id from order where Status = 'Draft' order by IFS_Order_No__c limit 2")
    assert len(drafts) == 2
    assert query(sf, api, "SELECT COUNT() FROM Order WHERE EffectiveDate > 2026-01-01").json()["totalSize"] == 2
