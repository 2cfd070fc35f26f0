"""target-ifscloud-check against the stand-in: the routes of a good configuration fit; a missing custom field, a
projection not granted, a missing action and a wrong secret each get their own line; the secret is never printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.ifs import CLIENT_ID, CLIENT_SECRET, REALM
from support.singer import BIN

ROUTES = {  # as the flows in meltano.yml configure them
    "jira_purchase_orders": {"projection": "PurchaseOrderHandling", "entity_set": "PurchaseOrderSet",
                             "fields": ["Cf_Jira_Key", "Cf_Jira_Status"]},
    "ifs_customers_from_salesforce": {"projection": "CustomerHandling", "entity_set": "CustomerInfoSet",
                                      "fields": ["Name", "Country", "AssociationNo"]},
    "ifs_posting_proposals": {"projection": "ManSuppInvoiceHandling", "entity_set": "PostingProposalHeadSet",
                              "mode": "create", "flag_field": "po_discrepancies"},
    "ifs_suppliers_from_jaggaer": {"projection": "SupplierHandling", "entity_set": "SupplierInfoGeneralSet",
                                   "fields": ["Name", "Country"], "state_field": "wanted_state",
                                   "actions": {"Active": "Activate", "Blocked": "Block", "Inactive": "Deactivate"}},
}


def config_for(ifs, tmp_path, streams: dict, **extra) -> dict:
    return {"base_url": ifs.base_url, "realm": REALM, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "streams": streams, "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **extra}


def run_check(tmp_path, config: dict) -> tuple[int, dict[str, dict], str]:
    path = tmp_path / "check-config.json"
    path.write_text(json.dumps(config))
    completed = subprocess.run([str(BIN / "target-ifscloud-check"), "--config", str(path), "--format", "json"],
                               capture_output=True, text=True, timeout=300)
    assert CLIENT_SECRET not in completed.stdout + completed.stderr
    return completed.returncode, {r["check"]: r for r in json.loads(completed.stdout)}, completed.stderr


@pytest.fixture
def restricted(start_ifs):
    return start_ifs(scale=200, seed=7, profile="restricted")


def test_the_routes_of_the_flows_fit_and_nothing_is_written(ifs, tmp_path):
    status, checks, _ = run_check(tmp_path, config_for(ifs, tmp_path, ROUTES))
    assert status == 0, checks
    assert set(checks) == {"token"} | {f"route {name}" for name in ROUTES}
    assert all(r["status"] == "pass" for r in checks.values())
    assert checks["token"]["detail"].endswith("valid for 180 s")
    assert checks["route jira_purchase_orders"]["detail"] == (
        "PurchaseOrderHandling.svc/PurchaseOrderSet readable (update); writes Cf_Jira_Key, Cf_Jira_Status")
    assert checks["route ifs_suppliers_from_jaggaer"]["detail"].endswith(
        "actions SupplierInfoGeneral_Activate, SupplierInfoGeneral_Block, SupplierInfoGeneral_Deactivate present")
    assert {r["method"] for r in ifs.requests_log() if "/projection/" in r["path"]} == {"GET"}
    assert not (tmp_path / "audit.sqlite").exists()


def test_a_custom_field_missing_in_ifs_fails_its_route(ifs, tmp_path):
    routes = {**ROUTES, "jira_purchase_orders": {**ROUTES["jira_purchase_orders"],
                                                 "fields": ["Cf_Jira_Key", "Cf_Jira_Sprint"]}}
    status, checks, _ = run_check(tmp_path, config_for(ifs, tmp_path, routes))
    assert status == 1
    failures = {name: r for name, r in checks.items() if r["status"] == "fail"}
    assert list(failures) == ["route jira_purchase_orders"]
    route = failures["route jira_purchase_orders"]
    assert route["detail"] == ("streams.jira_purchase_orders.fields: PurchaseOrderHandling.svc/PurchaseOrderSet has "
                               "no field(s) Cf_Jira_Sprint")
    assert route["fix"].startswith("add Cf_Jira_Sprint to PurchaseOrderSet in IFS")


def test_a_missing_bound_action_fails_its_route(ifs, tmp_path):
    routes = {"ifs_suppliers_from_jaggaer": {**ROUTES["ifs_suppliers_from_jaggaer"], "actions": {"Blocked": "Freeze"}}}
    status, checks, _ = run_check(tmp_path, config_for(ifs, tmp_path, routes))
    assert status == 1
    route = checks["route ifs_suppliers_from_jaggaer"]
    assert route["status"] == "fail"
    assert "has no bound action SupplierInfoGeneral_Freeze (its actions: Activate, Block, Deactivate)" in route["detail"]
    assert route["fix"].startswith("set streams.ifs_suppliers_from_jaggaer.actions.Blocked to one of its actions")


def test_projections_not_granted_or_not_there_fail_their_routes(restricted, tmp_path):
    routes = {**ROUTES, "ifs_vouchers": {"projection": "VoucherHandling", "entity_set": "VoucherSet",
                                         "fields": ["Text"]}}
    status, checks, _ = run_check(tmp_path, config_for(restricted, tmp_path, routes))
    assert status == 1
    vouchers = checks["route ifs_vouchers"]
    assert vouchers["status"] == "fail" and "HTTP 403" in vouchers["detail"]
    assert vouchers["fix"] == ("grant the IFS service user a permission set that includes VoucherHandling, or set "
                               "streams.ifs_vouchers.projection (in TARGET_IFSCLOUD_STREAMS)")
    suppliers = checks["route ifs_suppliers_from_jaggaer"]  # SuppliersHandling in this release
    assert suppliers["status"] == "fail" and "HTTP 404" in suppliers["detail"]
    assert suppliers["fix"].startswith("set streams.ifs_suppliers_from_jaggaer.projection (in TARGET_IFSCLOUD_STREAMS)")
    assert checks["route jira_purchase_orders"]["status"] == "pass"


def test_a_wrong_secret_is_one_line_naming_client_secret(ifs, tmp_path):
    wrong = "not-the-secret-4711"
    status, checks, stderr = run_check(tmp_path, config_for(ifs, tmp_path, ROUTES, client_secret=wrong))
    assert status == 1
    assert list(checks) == ["token"]
    assert checks["token"]["fix"].startswith("set client_secret (TARGET_IFSCLOUD_CLIENT_SECRET)")
    assert wrong not in json.dumps(checks) + stderr



def test_a_field_metadata_marks_read_only_is_refused_with_what_to_change():
    """The stand-in's $metadata carries no such annotation; IFS's may (Core.Computed, Core.Permissions Read)."""
    from ml_connector_core.ifs_metadata import parse_metadata
    from target_ifscloud.writer import StreamConfigError, plan_stream

    document = (Path(__file__).parents[1] / "support" / "ifs_annotated_metadata.xml").read_bytes()
    metadata = parse_metadata(document, "PurchaseOrderHandling.svc")
    route = {"projection": "PurchaseOrderHandling", "entity_set": "PurchaseOrderSet", "fields": ["NoteText", "ChangedDate"]}
    with pytest.raises(StreamConfigError) as refused:
        plan_stream("notes", route, ["OrderNo"], [], lambda projection, name: metadata.entity_set(name, projection))
    assert str(refused.value) == ("streams.notes.fields: $metadata of PurchaseOrderHandling.svc/PurchaseOrderSet marks "
                                  "ChangedDate as not writable")
    assert refused.value.fix == "take ChangedDate out of streams.notes.fields"
