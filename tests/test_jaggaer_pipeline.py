"""IFS Cloud ⇄ JAGGAER end to end through Meltano, against the IFS and JAGGAER stand-ins: suppliers, then purchase orders
with their lines (GL account, cost centre, units mapped in mappers/jaggaer.meltano.yml), never a duplicate; invoices back
into IFS as posting proposals with their lines, once, an invoice that disagrees with its order flagged in the audit trail
and in the proposal's note; supplier changes both ways without ping-pong."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from ml_connector_core.audit import AuditTrail
from mlc_sandbox.jaggaer import JaggaerSandbox
from support.ifs import CLIENT_SECRET
from support.sealed import sealed_env
from support.meltano import meltano_run

# Meltano runs in this project share its .meltano/run: scripts/test runs these one after another.
pytestmark = pytest.mark.meltano

IFS_TO_JAGGAER = ["tap-ifscloud-jaggaer", "jaggaer-fields", "target-jaggaer"]
JAGGAER_TO_IFS = ["tap-jaggaer", "jaggaer-fields-to-ifs", "target-ifscloud-jaggaer"]
INVOICES = "ManSuppInvoiceHandling"


@pytest.fixture
def jaggaer():
    with JaggaerSandbox(port=0, rate_limit=0) as stand_in:
        yield stand_in


@pytest.fixture
def env(ifs, jaggaer, tmp_path) -> dict:
    return pipeline_env(ifs, jaggaer, tmp_path)


def pipeline_env(ifs, jaggaer, tmp_path) -> dict:
    audit = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    return sealed_env({
        **os.environ,
        "TAP_IFSCLOUD_BASE_URL": ifs.base_url, "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_JAGGAER_BASE_URL": jaggaer.base_url, "TARGET_JAGGAER_CLIENT_SECRET": jaggaer.client_secret,
        "TARGET_JAGGAER_AUDIT_URL": audit,
        # the stand-in runs without a rate limit here; the client-side budget (300/min by default) would only pace the test
        "TARGET_JAGGAER_REQUESTS_PER_MINUTE": "100000", "TAP_JAGGAER_REQUESTS_PER_MINUTE": "100000",
        "TAP_JAGGAER_BASE_URL": jaggaer.base_url, "TAP_JAGGAER_CLIENT_SECRET": jaggaer.client_secret,
        "TARGET_IFSCLOUD_BASE_URL": ifs.base_url, "TARGET_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TARGET_IFSCLOUD_AUDIT_URL": audit,
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
    })



def jaggaer_writes(jaggaer) -> list[dict]:
    """Writes JAGGAER accepted (refused ones, such as redone failures refused again, change nothing)."""
    return [r for r in jaggaer.requests()
            if r["method"] in ("POST", "PUT") and r["path"].startswith("/api/") and r["status"] < 300]


def ifs_writes(ifs) -> list[dict]:
    return [r for r in ifs.requests_log() if r.get("kind") == "data" and r["method"] in ("PATCH", "POST")]


def invoice_for(order: dict, number: str, *, extra_quantity: Decimal = Decimal(0)) -> dict:
    lines = []
    for n, line in enumerate(order["lines"], start=1):
        quantity = Decimal(str(line["quantity"])) + (extra_quantity if n == 1 else 0)
        price = Decimal(str(line["unitPrice"]))
        lines.append({"lineNumber": n, "description": line["description"], "quantity": str(quantity),
                      "unitPrice": str(price), "amount": str(quantity * price), "glAccount": line["glAccount"],
                      "costCenter": line.get("costCenter"), "poLineNumber": line["lineNumber"]})
    net = sum(Decimal(line["amount"]) for line in lines)
    return {"invoiceNumber": number, "supplierExternalId": order["supplierExternalId"],
            "purchaseOrderExternalId": order["externalId"], "invoiceDate": "2026-11-20", "dueDate": "2026-12-20",
            "netAmount": str(net), "taxAmount": str(net / 4), "grossAmount": str(net * 5 / 4), "lines": lines}


def test_suppliers_then_orders_go_to_jaggaer_once(ifs, jaggaer, env):
    # Every run of this flow exits non-zero: the orders JAGGAER refuses (below) stay refused until fixed in IFS.
    meltano_run(env, IFS_TO_JAGGAER, undelivered=True)
    suppliers = ifs.all_rows("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"])
    orders = ifs.all_rows("PurchaseOrderHandling", "PurchaseOrderSet", ["OrderNo"])
    lines = ifs.all_rows("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", ["OrderNo", "LineNo", "ReleaseNo"])
    in_jaggaer = {s["externalId"]: s for s in jaggaer.suppliers()}
    assert sorted(in_jaggaer) == sorted(s["SupplierId"] for s in suppliers)
    pos = {p["externalId"]: p for p in jaggaer.purchase_orders()}
    # JAGGAER refuses orders of blocked suppliers and unit prices with more than 10 decimals (the IFS stand-in makes some
    # on purpose): those are failed in the audit trail with JAGGAER's message, never rounded, never dropped.
    with AuditTrail(env["TARGET_JAGGAER_AUDIT_URL"]) as trail:
        refused = {e.key["externalId"]: e.error for e in trail.failures(stream="jaggaer_purchase_orders")}
    assert set(pos) | set(refused) == {o["OrderNo"] for o in orders} and not set(pos) & set(refused)
    blocked = {s["SupplierId"] for s in suppliers if s["Objstate"] == "Blocked"}
    assert {o["OrderNo"] for o in orders if o["VendorNo"] in blocked} <= set(refused)
    assert all("SUPPLIER_BLOCKED" in error or "more than 10 decimal places" in error for error in refused.values())
    assert len(pos) > len(orders) / 2
    order = next(o for o in orders if o["NoOfLines"] > 1 and o["OrderNo"] in pos)
    po = pos[order["OrderNo"]]
    assert po["supplierExternalId"] == order["VendorNo"] and po["companyCode"] == order["Company"]
    order_lines = [l for l in lines if l["OrderNo"] == order["OrderNo"]]
    assert len(po["lines"]) == len(order_lines)
    assert {line["glAccount"] for line in po["lines"]} == {order["Cf_Gl_Account"]}
    assert {Decimal(str(line["unitPrice"])) for line in po["lines"]} == {Decimal(str(l["BuyUnitPrice"])) for l in order_lines}
    assert sum(len(p["lines"]) for p in pos.values()) == len([l for l in lines if l["OrderNo"] in pos])

    jaggaer.clear_requests()
    meltano_run(env, IFS_TO_JAGGAER, undelivered=True)  # the look-back re-reads: nothing differs, nothing is written
    assert jaggaer_writes(jaggaer) == []
    assert len(jaggaer.purchase_orders()) == len(pos) and len(jaggaer.suppliers()) == len(suppliers)


def test_invoices_post_once_as_posting_proposals_and_a_mismatch_is_flagged(ifs, jaggaer, env):
    meltano_run(env, IFS_TO_JAGGAER, undelivered=True)
    orders = [p for p in jaggaer.purchase_orders() if len(p["lines"]) >= 2 and p["status"] == "OPEN"][:2]
    matching = jaggaer.submit_invoice(invoice_for(orders[0], "INV-1001"))
    mismatched = jaggaer.submit_invoice(invoice_for(orders[1], "INV-2002", extra_quantity=Decimal(5)))
    ifs.clear_requests()
    meltano_run(env, JAGGAER_TO_IFS)

    for invoice in (matching, mismatched):
        invoice_no = f"{invoice['supplierExternalId']}:{invoice['invoiceNumber']}"
        key = f"Company='{invoice['companyCode']}',InvoiceNo='{invoice_no}'"
        head = ifs.get(INVOICES, f"PostingProposalHeadSet({key})")
        assert head["Identity"] == invoice["supplierExternalId"]
        assert head["PurchaseOrderNo"] == invoice["purchaseOrderExternalId"]
        assert Decimal(str(head["GrossAmount"])) == Decimal(str(invoice["grossAmount"]))
        stored_lines = ifs.get(INVOICES, f"PostingProposalHeadSet({key})/PostingProposalLines")["value"]
        assert sorted((l["LineNo"], l["Account"], Decimal(str(l["Amount"]))) for l in stored_lines) == sorted(
            (l["lineNumber"], l["glAccount"], Decimal(str(l["amount"]))) for l in invoice["lines"])
        if invoice is matching:
            assert head["NoteText"] is None
        else:
            assert head["NoteText"].startswith("Differs from its purchase order: ") and "quantity" in head["NoteText"]
    with AuditTrail(env["TARGET_IFSCLOUD_AUDIT_URL"]) as trail:
        flagged = [e for e in trail.entries(stream="ifs_posting_proposals") if (e.error or "").startswith("flagged: ")]
        assert [e.key["InvoiceNo"] for e in flagged] == [f"{mismatched['supplierExternalId']}:INV-2002"]

    ifs.clear_requests()
    meltano_run(env, JAGGAER_TO_IFS)  # the look-back re-reads both invoices: nothing posts twice
    assert ifs_writes(ifs) == []


def test_supplier_changes_flow_both_ways_without_ping_pong(ifs, jaggaer, env):
    meltano_run(env, IFS_TO_JAGGAER, undelivered=True)
    supplier = next(s for s in jaggaer.suppliers() if s["status"] == "ACTIVE")
    jaggaer.edit_supplier(supplier["id"], {"name": "Renamed In JAGGAER AB", "status": "BLOCKED"})
    ifs.clear_requests()
    meltano_run(env, JAGGAER_TO_IFS)
    stored = ifs.get("SupplierHandling", f"SupplierInfoGeneralSet('{supplier['externalId']}')")
    assert (stored["Name"], stored["Objstate"]) == ("Renamed In JAGGAER AB", "Blocked")  # a PATCH, then the Block action
    assert all(w["headers"]["If-Match"].startswith('W/"') for w in ifs_writes(ifs))

    # IFS's change timestamp moved: the supplier goes to JAGGAER again, but JAGGAER already holds those values.
    jaggaer.clear_requests()
    meltano_run(env, IFS_TO_JAGGAER, undelivered=True)
    assert [w for w in jaggaer_writes(jaggaer) if "/suppliers" in w["path"]] == []
    ifs.clear_requests()
    meltano_run(env, JAGGAER_TO_IFS)
    assert ifs_writes(ifs) == []


def test_both_directions_over_tls_trusting_the_ca_through_ca_bundle(start_ifs, sandbox_tls, tmp_path):
    """IFS and JAGGAER serve HTTPS with a certificate of a CA only the plugins' ca_bundle names (REQUESTS_CA_BUNDLE
    stays the machine's bundle): tap-ifscloud, target-jaggaer, tap-jaggaer and target-ifscloud all trust it."""
    ifs = start_ifs(tls=sandbox_tls)
    with JaggaerSandbox(port=0, rate_limit=0, **sandbox_tls.server_options) as jaggaer:
        ca_bundle = str(sandbox_tls.ca_file)
        env = {**pipeline_env(ifs, jaggaer, tmp_path), "TAP_IFSCLOUD_CA_BUNDLE": ca_bundle,
               "TARGET_JAGGAER_CA_BUNDLE": ca_bundle, "TAP_JAGGAER_CA_BUNDLE": ca_bundle,
               "TARGET_IFSCLOUD_CA_BUNDLE": ca_bundle}
        assert ifs.base_url.startswith("https://") and jaggaer.base_url.startswith("https://")
        meltano_run(env, IFS_TO_JAGGAER, undelivered=True)  # JAGGAER refuses some orders on purpose (see above)
        suppliers = ifs.all_rows("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"])
        assert sorted(s["externalId"] for s in jaggaer.suppliers()) == sorted(s["SupplierId"] for s in suppliers)
        supplier = next(s for s in jaggaer.suppliers() if s["status"] == "ACTIVE")
        jaggaer.edit_supplier(supplier["id"], {"name": "Renamed Over TLS AB"})
        meltano_run(env, JAGGAER_TO_IFS)
        stored = ifs.get("SupplierHandling", f"SupplierInfoGeneralSet('{supplier['externalId']}')")
        assert stored["Name"] == "Renamed Over TLS AB"
