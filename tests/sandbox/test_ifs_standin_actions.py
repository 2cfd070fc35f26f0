"""Bound actions (the only way a client moves Objstate), the read-only fields of PATCH, and their CSDL."""

import json

import pytest
import requests
from lxml import etree
from odata import ODataService

from mlc_sandbox.ifs import model

from ifs_standin_client import Client, query

ORDERS = "PurchaseOrderHandling"
RELEASE = "IfsApp.PurchaseOrderHandling.PurchaseOrder_Release"
NS = {"edmx": "http://docs.oasis-open.org/odata/ns/edmx", "edm": "http://docs.oasis-open.org/odata/ns/edm"}


def call(client: Client, projection: str, path: str, if_match: str | None, body="{}",
         method: str = "POST") -> requests.Response:
    headers = {"Authorization": f"Bearer {client.token}", "X-Ifs-Time-Zone-Aware-Request": "true",
               "Content-Type": "application/json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    return client.http.request(method, client.url(projection, path), data=body, headers=headers)


def first_in_state(client: Client, projection: str, entity_set: str, state: str) -> tuple[dict, str]:
    """A generated record in `state`, and its ETag."""
    found = client.json(projection, entity_set, query(filter=f"Objstate eq '{state}'", top=1))["value"]
    assert found, f"no {entity_set} in {state}"
    return found[0], found[0]["@odata.etag"]


def test_action_moves_the_state_and_bumps_etag_and_change_column(fresh):
    client = Client(fresh())
    order, etag = first_in_state(client, ORDERS, "PurchaseOrderSet", "Planned")
    path = f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')"

    released = call(client, ORDERS, f"{path}/{RELEASE}", etag)
    assert released.status_code == 204 and released.content == b""
    new_etag = released.headers["ETag"]
    assert new_etag != etag
    after = client.get(ORDERS, path)
    assert after.headers["ETag"] == new_etag
    assert after.json()["Objstate"] == "Released" and after.json()["ChangedDate"] > order["ChangedDate"]

    confirmed = call(client, ORDERS, f"{path}/IfsApp.PurchaseOrderHandling.PurchaseOrder_Confirm", new_etag)
    assert confirmed.status_code == 204 and confirmed.headers["ETag"] != new_etag
    assert client.json(ORDERS, path)["Objstate"] == "Confirmed"


def test_action_in_a_state_that_does_not_allow_it(fresh):
    client = Client(fresh())
    order, etag = first_in_state(client, ORDERS, "PurchaseOrderSet", "Closed")
    path = f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')"
    refused = call(client, ORDERS, f"{path}/{RELEASE}", etag)
    assert refused.status_code == 400
    message = f"The purchase order {order['OrderNo']} cannot be released in state Closed."
    assert refused.json()["error"] == {"code": "ODP_BAD_REQUEST", "message": message,
                                       "details": [{"code": "ODP_BAD_REQUEST", "message": message}]}
    unchanged = client.get(ORDERS, path)
    assert unchanged.json()["Objstate"] == "Closed" and unchanged.headers["ETag"] == etag

    head, head_etag = first_in_state(client, "ManSuppInvoiceHandling", "PostingProposalHeadSet", "Posted")
    key = f"Company='{head['Company']}',InvoiceNo='{head['InvoiceNo']}'"
    refused = call(client, "ManSuppInvoiceHandling",
                   f"PostingProposalHeadSet({key})/IfsApp.ManSuppInvoiceHandling.PostingProposalHead_Authorize",
                   head_etag)
    assert refused.status_code == 400 and refused.json()["error"]["message"] == (
        f"The posting proposal (Company={head['Company']}, InvoiceNo={head['InvoiceNo']}) cannot be authorized "
        "in state Posted.")


def test_action_preconditions(fresh):
    client = Client(fresh())
    order, etag = first_in_state(client, ORDERS, "PurchaseOrderSet", "Planned")
    path = f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')"

    missing = call(client, ORDERS, f"{path}/{RELEASE}", None)
    assert missing.status_code == 428 and missing.json()["error"]["code"] == "ODP_MISSING_PRECONDITION"
    client.http.patch(client.url(ORDERS, path), json={"NoteText": "changed meanwhile"},
                      headers={"Authorization": f"Bearer {client.token}", "If-Match": etag}).raise_for_status()
    stale = call(client, ORDERS, f"{path}/{RELEASE}", etag)
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "ODP_PRECONDITION_FAILED"
    assert client.json(ORDERS, path)["Objstate"] == "Planned"
    assert call(client, ORDERS, f"{path}/{RELEASE}", "*").status_code == 204
    assert client.json(ORDERS, path)["Objstate"] == "Released"


def test_unknown_actions_methods_and_parameters(fresh):
    client = Client(fresh())
    order, etag = first_in_state(client, ORDERS, "PurchaseOrderSet", "Planned")
    path = f"PurchaseOrderSet(OrderNo='{order['OrderNo']}')"
    for name in ("IfsApp.PurchaseOrderHandling.PurchaseOrder_Fly", "IfsApp.OtherHandling.PurchaseOrder_Release",
                 "IfsApp.PurchaseOrderHandling.ActiveSeparate_Release"):
        response = call(client, ORDERS, f"{path}/{name}", "*")
        assert response.status_code == 404 and name in response.json()["error"]["message"]
    assert call(client, ORDERS, f"AccountSet/{RELEASE}", "*").status_code == 404
    assert call(client, ORDERS, f"PurchaseOrderSet(OrderNo='P9999999')/{RELEASE}", "*").status_code == 404
    assert call(client, ORDERS, f"{path}/{RELEASE}", "*", method="GET").status_code == 405
    with_parameters = call(client, ORDERS, f"{path}/{RELEASE}", "*", body='{"Reason": "x"}')
    assert with_parameters.status_code == 400
    assert call(client, ORDERS, f"{path}/{RELEASE}", "*", body="").status_code == 204


def _action_cases():
    for entity_set, (_, actions) in model.BOUND_ACTIONS.items():
        for action in actions:
            yield pytest.param(entity_set, action, id=f"{entity_set}-{action.name}")


@pytest.mark.parametrize("entity_set, action", list(_action_cases()))
def test_every_action_follows_the_table(fresh, entity_set, action):
    ifs = fresh()
    client = Client(ifs)
    entity = model.ENTITY_BY_SET[entity_set]
    name = f"{entity.namespace}.{entity.type_name}_{action.name}"
    created = ifs.create(entity_set, {"VendorNo": "S10001"} if entity_set == "PurchaseOrderSet" else
                         {"InvoiceNo": "ACT-1"} if entity_set == "PostingProposalHeadSet" else {})
    key = {k: created[k] for k in entity.keys}
    predicate = ",".join(f"{k}='{v}'" if isinstance(v, str) else f"{k}={v}" for k, v in key.items())
    path = f"{entity_set}({predicate})"
    for state in entity.state_enum.members:
        ifs.change(entity_set, key, {"Objstate": state})
        response = call(client, entity.projection, f"{path}/{name}", "*")
        if state in action.from_states:
            assert response.status_code == 204, (state, response.text)
            assert client.json(entity.projection, path)["Objstate"] == action.to_state
        else:
            assert response.status_code == 400, state
            assert response.json()["error"]["message"].endswith(f"in state {state}.")
            assert client.json(entity.projection, path)["Objstate"] == state


def test_patch_cannot_change_objstate_or_the_change_column(fresh):
    ifs = fresh()
    client = Client(ifs)
    path = "PurchaseOrderSet(OrderNo='P1000010')"
    headers = {"Authorization": f"Bearer {client.token}", "If-Match": "*", "X-Ifs-Time-Zone-Aware-Request": "true"}
    for body, message in (({"Objstate": "Closed"}, "Objstate cannot be changed with PATCH: call an action"),
                          ({"ChangedDate": "2030-01-01T00:00:00Z", "NoteText": "x"},
                           "ChangedDate cannot be changed with PATCH: IFS sets it on every change")):
        response = client.http.patch(client.url(ORDERS, path), json=body, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["details"][0]["message"] == message
    assert client.json(ORDERS, path)["NoteText"] != "x"
    jira = client.http.patch(client.url(ORDERS, path), json={"Cf_Jira_Key": "PROC-3", "Cf_Jira_Status": "In Review"},
                             headers=headers)
    assert jira.status_code == 200 and jira.json()["Cf_Jira_Status"] == "In Review"
    # the admin interface still sets anything (tests arrange states with it)
    assert ifs.change("PurchaseOrderSet", {"OrderNo": "P1000010"}, {"Objstate": "Closed"})["Objstate"] == "Closed"


def test_csdl_declares_the_custom_fields_and_bound_actions(client):
    for projection, entity, custom in (("PurchaseOrderHandling", model.PURCHASE_ORDER,
                                        {"Cf_Project_Ref": "20", "Cf_Supplier_Tier": "20", "Cf_Gl_Account": "20",
                                         "Cf_Cost_Center": "20", "Cf_Jira_Key": "20", "Cf_Jira_Status": "50"}),
                                       ("ActiveWorkOrdersHandling", model.WORK_ORDER,
                                        {"Cf_Gl_Account": "20", "Cf_Jira_Key": "20", "Cf_Jira_Status": "50"})):
        schema = etree.fromstring(client.get(projection, "$metadata").content).find("edmx:DataServices/edm:Schema",
                                                                                   NS)
        entity_type = schema.find(f"edm:EntityType[@Name='{entity.type_name}']", NS)
        properties = {p.get("Name"): p for p in entity_type.findall("edm:Property", NS)}
        for name, length in custom.items():
            assert properties[name].get("Type") == "Edm.String" and properties[name].get("MaxLength") == length
            assert properties[name].get("Nullable") == "true"
        actions = {a.get("Name"): a for a in schema.findall("edm:Action", NS)}
        assert set(actions) == {f"{entity.type_name}_{a.name}" for a in model.BOUND_ACTIONS[entity.entity_set][1]}
        for action in actions.values():
            assert action.get("IsBound") == "true"
            [parameter] = action.findall("edm:Parameter", NS)
            assert (parameter.get("Name"), parameter.get("Type"), parameter.get("Nullable")) == (
                "it", f"IfsApp.{projection}.{entity.type_name}", "false")
    for projection in ("AccountsHandling", "VoucherHandling"):
        schema = etree.fromstring(client.get(projection, "$metadata").content)
        assert schema.findall(".//edm:Action", NS) == []


def test_python_odata_reads_metadata_with_actions_and_custom_fields(sandbox, client):
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {client.token}", "X-Ifs-Time-Zone-Aware-Request": "true"})
    service = ODataService(sandbox.service_url(ORDERS) + "/", session=session, reflect_entities=True)
    orders = service.entities["PurchaseOrderSet"]
    order = service.query(orders).filter(orders.OrderNo == "P1000001").first()
    assert order.Cf_Supplier_Tier in ("STRATEGIC", "PREFERRED", "STANDARD", "SPOT")
    assert order.Cf_Jira_Key is None
    assert json.loads(client.get(ORDERS, "PurchaseOrderSet(OrderNo='P1000001')").text)["Cf_Gl_Account"] == \
        order.Cf_Gl_Account
