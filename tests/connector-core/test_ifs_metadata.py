"""$metadata as IFS writes it: which properties a client may not set."""

from pathlib import Path

from ml_connector_core.ifs_metadata import parse_metadata

# A projection's CSDL with the annotations IFS may put on properties (the stand-in's carries none).
CSDL = (Path(__file__).parents[1] / "support" / "ifs_annotated_metadata.xml").read_bytes()


def test_computed_and_read_permission_properties_are_read_only():
    entity = parse_metadata(CSDL, "PurchaseOrderHandling.svc").entity_set("PurchaseOrderSet", "PurchaseOrderHandling.svc")
    assert {name: prop.read_only for name, prop in entity.properties.items()} == {
        "OrderNo": False, "ChangedDate": True, "Objstate": True, "NoteText": False, "Cf_Jira_Key": False}
