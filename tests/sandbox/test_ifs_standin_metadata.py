"""$metadata is checked twice: structurally with lxml, and by python-odata, a V4 client nobody here wrote.

(SAP's pyodata reads OData V2 only, so it cannot judge V4 CSDL.)"""

import pytest
import requests
from lxml import etree
from odata import ODataService

from mlc_sandbox.ifs import model

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"
NS = {"edmx": EDMX, "edm": EDM}


@pytest.mark.parametrize("projection", sorted(model.SERVICES))
def test_csdl_structure(client, projection):
    response = client.get(projection, "$metadata")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/xml")
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{EDMX}}}Edmx" and root.get("Version") == "4.0"
    schema = root.find("edmx:DataServices/edm:Schema", NS)
    assert schema.get("Namespace") == f"IfsApp.{projection}"
    service = model.SERVICES[projection]
    enums = {e.get("Name"): [m.get("Name") for m in e.findall("edm:Member", NS)]
             for e in schema.findall("edm:EnumType", NS)}
    assert enums == {name: list(enum.members) for name, enum in service.enum_types.items()}
    types = {t.get("Name"): t for t in schema.findall("edm:EntityType", NS)}
    container = schema.find("edm:EntityContainer", NS)
    sets = {s.get("Name"): s for s in container.findall("edm:EntitySet", NS)}
    for entity in service.entities:
        entity_type = types[entity.type_name]
        assert [p.get("Name") for p in entity_type.findall("edm:Key/edm:PropertyRef", NS)] == list(entity.keys)
        properties = {p.get("Name"): p for p in entity_type.findall("edm:Property", NS)}
        for f in entity.fields:
            p = properties[f.name]
            expected_type = f"IfsApp.{projection}.{f.enum.name}" if f.enum else f.edm
            assert p.get("Type") == expected_type and p.get("Nullable") == str(f.nullable).lower()
            if f.edm == model.DECIMAL:
                assert p.get("Precision") == "38" and p.get("Scale") == "variable"
            if f.edm == model.STRING:
                assert int(p.get("MaxLength")) == f.max_length
        assert {"luname", "keyref", "Objgrants"} <= set(properties)
        for key in entity.keys:
            assert properties[key].get("Nullable") == "false"
        navigations = {n.get("Name"): n for n in entity_type.findall("edm:NavigationProperty", NS)}
        for nav in entity.navigations:
            target = model.ENTITY_BY_SET[nav.target_set].type_name
            element = navigations[nav.name]
            expected = f"IfsApp.{projection}.{target}"
            assert element.get("Type") == (f"Collection({expected})" if nav.collection else expected)
            partner = types[target].find(f"edm:NavigationProperty[@Name='{element.get('Partner')}']", NS)
            assert partner is not None and partner.get("Partner") == nav.name
            binding = sets[entity.entity_set].find(f"edm:NavigationPropertyBinding[@Path='{nav.name}']", NS)
            assert binding.get("Target") == nav.target_set
        assert sets[entity.entity_set].get("EntityType") == f"IfsApp.{projection}.{entity.type_name}"


def _third_party_service(sandbox, client, projection):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {client.token}"
    session.headers["X-Ifs-Time-Zone-Aware-Request"] = "true"
    return ODataService(sandbox.service_url(projection) + "/", session=session, reflect_entities=True)


@pytest.mark.parametrize("projection", sorted(model.SERVICES))
def test_python_odata_reads_every_service(sandbox, client, projection):
    service = _third_party_service(sandbox, client, projection)
    assert set(service.entities) == {e.entity_set for e in model.SERVICES[projection].entities}
    for entity in model.SERVICES[projection].entities:
        first = service.query(service.entities[entity.entity_set]).first()
        assert getattr(first, entity.keys[0]) is not None


def test_python_odata_filters_types_and_navigates(sandbox, client):
    service = _third_party_service(sandbox, client, "PurchaseOrderHandling")
    orders = service.entities["PurchaseOrderSet"]
    found = service.query(orders).filter(orders.VendorNo == "S10001").all()
    assert found and all(o.VendorNo == "S10001" for o in found)
    order = found[0]
    assert type(order.TotalNetAmount).__name__ == "Decimal"
    assert order.Objstate.name in model.PURCHASE_ORDER_STATE.members
    assert sum(line.NetAmount for line in order.PurchaseOrderLines) == order.TotalNetAmount
