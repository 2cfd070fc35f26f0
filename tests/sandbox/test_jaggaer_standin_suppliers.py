"""Suppliers in the JAGGAER stand-in over real HTTP: create, read, full replace, lookup by externalId, 409 on a taken
externalId, validation with field paths, and lastModified moving on every write (also an unchanged PUT and an edit
by procurement)."""

from __future__ import annotations

import re

import jaggaer_standin_client as standin
from jaggaer_standin_client import errors_of, exact

api, jaggaer = standin.api, standin.jaggaer  # fixtures

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_create_answers_the_stored_supplier(api):
    created = api.supplier("S1", taxId="SE556000000001", paymentTerms="30 NET", category="IT")
    assert created["id"] == "SUP-000001"
    assert {k: created[k] for k in ("externalId", "name", "country", "currency", "status", "taxId", "paymentTerms",
                                    "category")} == {
        "externalId": "S1", "name": "Supplier S1", "country": "SE", "currency": "SEK", "status": "ACTIVE",
        "taxId": "SE556000000001", "paymentTerms": "30 NET", "category": "IT"}
    assert STAMP.match(created["createdAt"]) and created["lastModified"] == created["createdAt"]
    assert api.created("suppliers", {"externalId": "S2", "name": "Bare", "country": "NO"})["currency"] is None
    read = api.call("GET", "suppliers/SUP-000001")
    assert read.status_code == 200 and exact(read) == created
    assert api.jg.suppliers() == [created, exact(api.call("GET", "suppliers/SUP-000002"))]


def test_lookup_by_external_id_is_exact(api):
    api.supplier("S1")
    api.supplier("S10")
    found = api.listing("suppliers", externalId="S1")
    assert [s["externalId"] for s in found["items"]] == ["S1"]
    assert found["totalItems"] == 1 and found["hasMore"] is False
    assert api.listing("suppliers", externalId="s1")["items"] == []
    assert api.listing("suppliers", externalId="S99") == {"items": [], "page": 1, "pageSize": 100, "totalItems": 0,
                                                         "hasMore": False}


def test_taken_external_id_is_409_and_nothing_changes(api):
    api.supplier("S1")
    second = api.call("POST", "suppliers", {"externalId": "S1", "name": "Again", "country": "SE"})
    assert second.status_code == 409
    assert errors_of(second) == [("DUPLICATE_EXTERNAL_ID", "externalId")]
    assert "S1" in second.json()["errors"][0]["message"]
    other = api.supplier("S2")
    clash = api.call("PUT", f"suppliers/{other['id']}", {"externalId": "S1", "name": "Clash", "country": "SE"})
    assert clash.status_code == 409
    assert [s["name"] for s in api.jg.suppliers()] == ["Supplier S1", "Supplier S2"]


def test_put_replaces_every_writable_field(api):
    created = api.supplier("S1", taxId="T-1", category="IT")
    replaced = api.call("PUT", f"suppliers/{created['id']}",
                        {"externalId": "S1-NEW", "name": "Renamed", "country": "DK", "status": "BLOCKED",
                         "id": "SUP-999999", "createdAt": "2000-01-01T00:00:00.000Z"})
    assert replaced.status_code == 200, replaced.text
    body = exact(replaced)
    assert body["id"] == created["id"] and body["createdAt"] == created["createdAt"]
    assert (body["externalId"], body["name"], body["country"], body["status"]) == ("S1-NEW", "Renamed", "DK", "BLOCKED")
    assert body["taxId"] is None and body["category"] is None and body["currency"] is None
    assert api.listing("suppliers", externalId="S1")["items"] == []
    assert api.listing("suppliers", externalId="S1-NEW")["items"] == [body]
    assert api.supplier("S1")["id"] == "SUP-000002"  # the old externalId is free again


def test_unknown_supplier_id_is_404(api):
    for answer in (api.call("GET", "suppliers/SUP-000042"),
                   api.call("PUT", "suppliers/SUP-000042", {"externalId": "S", "name": "N", "country": "SE"})):
        assert answer.status_code == 404 and errors_of(answer)[0][0] == "NOT_FOUND"


def test_validation_names_every_problem(api):
    answer = api.call("POST", "suppliers", {"name": "x" * 201, "country": "Sweden", "currency": "kr", "status": "OK",
                                            "taxId": 12})
    assert answer.status_code == 422
    assert sorted(errors_of(answer)) == sorted([
        ("VALIDATION_FAILED", "externalId"), ("VALIDATION_FAILED", "name"), ("VALIDATION_FAILED", "country"),
        ("VALIDATION_FAILED", "currency"), ("VALIDATION_FAILED", "status"), ("VALIDATION_FAILED", "taxId")])
    messages = {e["field"]: e["message"] for e in answer.json()["errors"]}
    assert "201" in messages["name"] and "200" in messages["name"]
    assert "ACTIVE" in messages["status"] and "'OK'" in messages["status"]
    assert api.jg.suppliers() == []


def test_malformed_json_is_400(api):
    for body in ('{"externalId": "S1",', '["not", "an", "object"]'):
        answer = api.call("POST", "suppliers", body)
        assert answer.status_code == 400 and errors_of(answer) == [("MALFORMED_JSON", None)]


def test_every_write_moves_last_modified(api):
    created = api.supplier("S1")
    same = {k: created[k] for k in ("externalId", "name", "country", "currency")}
    stamps = [created["lastModified"]]
    for _ in range(5):  # unchanged PUTs, back to back (faster than the clock's millisecond)
        answer = api.call("PUT", f"suppliers/{created['id']}", same)
        assert answer.status_code == 200
        stamps.append(answer.json()["lastModified"])
    stamps.append(api.jg.edit_supplier(created["id"], {"status": "BLOCKED"})["lastModified"])
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    final = exact(api.call("GET", f"suppliers/{created['id']}"))
    assert final["lastModified"] == stamps[-1] and final["createdAt"] == created["createdAt"]
    assert final["status"] == "BLOCKED" and final["name"] == "Supplier S1"


def test_edit_by_procurement_is_checked(api):
    created = api.supplier("S1")
    try:
        api.jg.edit_supplier(created["id"], {"country": "sweden", "rating": 5})
    except RuntimeError as refused:
        assert "422" in str(refused) and "rating" in str(refused)
    else:
        raise AssertionError("an edit with an unknown field was accepted")
    try:
        api.jg.edit_supplier(created["id"], {"country": "sweden"})
    except RuntimeError as refused:
        assert "422" in str(refused) and "country" in str(refused)
    else:
        raise AssertionError("an edit with a bad country was accepted")
    assert api.jg.suppliers() == [created]
