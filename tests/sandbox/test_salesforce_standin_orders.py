"""Orders on the Salesforce stand-in: Salesforce's price-book rules for order products (price book set on the Order,
the entry from that price book), TotalAmount rolled up and read-only, activation, and items upserted by external id
with the Order found by its external id."""

from __future__ import annotations

import pytest
import requests

import salesforce_standin_client as standin

STANDARD_BOOK = "01s000000000001AAA"
STANDARD_ENTRY = "01u000000000001AAA"

sf = standin.sf  # fixture


@pytest.fixture
def api(sf) -> requests.Session:
    session = standin.session_for(sf)
    session.headers["Content-Type"] = "application/json"
    return session


@pytest.fixture
def supplier(sf, api) -> str:
    return api.patch(f"{sf.api_url}/sobjects/Account/IFS_Supplier_Id__c/S1", json={"Name": "Supplier"}).json()["id"]


def order(sf, api, number, **fields):
    body = {"Account": {"IFS_Supplier_Id__c": "S1"}, "EffectiveDate": "2026-11-02", "Status": "Draft", **fields}
    return api.patch(f"{sf.api_url}/sobjects/Order/IFS_Order_No__c/{number}", json=body)


def items(sf, api, *lines):
    records = [{"attributes": {"type": "OrderItem"}, "IFS_Line_Key__c": key, "Order": {"IFS_Order_No__c": number},
                "PricebookEntryId": entry, "Quantity": quantity, "UnitPrice": price}
               for key, number, entry, quantity, price in lines]
    answer = api.patch(f"{sf.api_url}/composite/sobjects/OrderItem/IFS_Line_Key__c",
                       json={"allOrNone": False, "records": records})
    assert answer.status_code == 200
    return answer.json()


def test_order_items_need_the_price_book_on_the_order(sf, api, supplier):
    assert order(sf, api, "P1").status_code == 201
    [refused] = items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 2, 10))
    assert refused == {"success": False, "errors": [{"statusCode": "FIELD_INTEGRITY_EXCEPTION",
                                                     "message": "Price Book Not Set on Order", "fields": []}]}
    assert sf.records("OrderItem") == []
    assert order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK).status_code == 200
    [stored] = items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 2, 10))
    assert stored["success"] is True and stored["created"] is True


def test_the_entry_must_come_from_the_orders_price_book(sf, api, supplier):
    book = api.post(f"{sf.api_url}/sobjects/Pricebook2", json={"Name": "Purchasing", "IsActive": True}).json()["id"]
    product = api.post(f"{sf.api_url}/sobjects/Product2", json={"Name": "Bolts", "IsActive": True}).json()["id"]
    no_standard = api.post(f"{sf.api_url}/sobjects/PricebookEntry",
                           json={"Pricebook2Id": book, "Product2Id": product, "UnitPrice": 1, "IsActive": True})
    assert no_standard.json()[0]["errorCode"] == "STANDARD_PRICE_NOT_DEFINED"
    other_entry = api.post(f"{sf.api_url}/sobjects/PricebookEntry",
                           json={"Pricebook2Id": book, "Product2Id": "01t000000000001AAA", "UnitPrice": 1,
                                 "IsActive": True}).json()["id"]
    order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK)
    [refused] = items(sf, api, ("P1-1", "P1", other_entry, 1, 5))
    assert refused["errors"] == [{"statusCode": "FIELD_INTEGRITY_EXCEPTION", "fields": ["PricebookEntryId"],
                                  "message": "field integrity exception: PricebookEntryId (pricebook entry is in a "
                                             "different pricebook than the one assigned to the Order, or Order has "
                                             "no pricebook assigned)"}]
    entry_names = {r["Id"]: r["Name"] for r in sf.records("PricebookEntry")}
    assert entry_names[other_entry] == "IFS purchase line"


def test_total_amount_rolls_up_and_is_read_only(sf, api, supplier):
    order_id = order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK).json()["id"]
    [before] = sf.records("Order")
    assert before["TotalAmount"] == 0
    sf.advance_clock(3)
    results = items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 2, 10.5), ("P1-2", "P1", STANDARD_ENTRY, 3, 1))
    assert [r["success"] for r in results] == [True, True]
    [after] = sf.records("Order")
    assert after["TotalAmount"] == 24.0 and after["SystemModstamp"] > before["SystemModstamp"]
    assert {r["OrderId"] for r in sf.records("OrderItem")} == {order_id}
    # the same lines again, Order reference included: accepted (create-only fields unchanged), no new items
    again = items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 4, 10.5), ("P1-2", "P1", STANDARD_ENTRY, 3, 1))
    assert [r["created"] for r in again] == [False, False]
    assert len(sf.records("OrderItem")) == 2 and sf.records("Order")[0]["TotalAmount"] == 45.0
    refused = order(sf, api, "P1", TotalAmount=5)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    api.post(f"{sf.api_url}/sobjects/Order", json={"AccountId": supplier, "EffectiveDate": "2026-11-03",
                                                   "Status": "Draft", "IFS_Order_No__c": "P2"})
    moved = items(sf, api, ("P1-1", "P2", STANDARD_ENTRY, 4, 10.5))
    assert moved[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert moved[0]["errors"][0]["fields"] == ["OrderId"]


def test_required_order_fields_and_unknown_order(sf, api, supplier):
    missing = api.patch(f"{sf.api_url}/sobjects/Order/IFS_Order_No__c/P1", json={"AccountId": supplier})
    assert missing.json() == [{"message": "Required fields are missing: [EffectiveDate, Status]",
                               "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["EffectiveDate", "Status"]}]
    bad_date = order(sf, api, "P1", EffectiveDate="2026-13-01")
    assert bad_date.json()[0]["errorCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"
    [unknown] = items(sf, api, ("P9-1", "P9", STANDARD_ENTRY, 1, 1))
    assert unknown["errors"][0]["message"] == \
        "Foreign key external ID: P9 not found for field IFS_Order_No__c in entity Order"


def test_activation_rules(sf, api, supplier):
    refused = order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK, Status="Activated")
    assert refused.status_code == 400
    assert refused.json()[0]["message"] == "You can't activate an order without order products."
    order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK)
    items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 1, 1))
    book = api.post(f"{sf.api_url}/sobjects/Pricebook2", json={"Name": "Other", "IsActive": True}).json()["id"]
    other_book = order(sf, api, "P1", Pricebook2Id=book)
    assert other_book.status_code == 400 and other_book.json()[0]["fields"] == ["Pricebook2Id"]
    assert order(sf, api, "P1", Status="Activated").status_code == 200
    [locked] = items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 2, 1))
    assert locked["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert sf.records("OrderItem")[0]["Quantity"] == 1.0
    assert order(sf, api, "P1", Status="Draft").status_code == 200
    assert items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 2, 1))[0]["success"] is True


def test_deleting_an_order_deletes_its_items(sf, api, supplier):
    order_id = order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK).json()["id"]
    items(sf, api, ("P1-1", "P1", STANDARD_ENTRY, 1, 1))
    assert api.delete(f"{sf.api_url}/sobjects/Order/{order_id}").status_code == 204
    assert sf.records("Order") == [] and sf.records("OrderItem") == []
    again = order(sf, api, "P1", Pricebook2Id=STANDARD_BOOK)
    assert again.status_code == 201 and again.json()["id"] != order_id
