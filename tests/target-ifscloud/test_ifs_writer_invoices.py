"""Invoices as IFS posting proposals through target-ifscloud, against the IFS stand-in over real HTTP: a head and its
lines in one run, an invoice never posted twice, lines refused for a missing head failed with IFS's message and redone
by the next run after their head, and records flagged by a flag field (written, audited with the flag, warned about,
counted) without the flag reaching IFS."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import pytest
import requests

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from mlc_sandbox.ifs import IfsSandbox
from support.singer import BIN, record_message, run_target, schema_message, state_message

SVC = "ManSuppInvoiceHandling"
HEADS, LINES = "ifs_posting_proposals", "ifs_posting_proposal_lines"
HEAD = {"Company": {"type": ["string"]}, "InvoiceNo": {"type": ["string"]}, "Identity": {"type": ["string"]},
        "InvoiceDate": {"type": ["string"], "format": "date"}, "DueDate": {"type": ["string"], "format": "date"},
        "NetAmount": {"type": ["number"]}, "VatAmount": {"type": ["number"]}, "GrossAmount": {"type": ["number"]},
        "po_discrepancies": {"type": ["array", "string", "null"], "items": {"type": "string"}}}
LINE = {"Company": {"type": ["string"]}, "InvoiceNo": {"type": ["string"]}, "LineNo": {"type": ["integer"]},
        "Account": {"type": ["string"]}, "CurrencyAmount": {"type": ["number"]}, "Amount": {"type": ["number"]},
        "Text": {"type": ["string", "null"]}}
STREAMS = {
    HEADS: {"projection": SVC, "entity_set": "PostingProposalHeadSet", "mode": "create",
            "flag_field": "po_discrepancies"},
    LINES: {"projection": SVC, "entity_set": "PostingProposalLineSet", "mode": "create"},
}


@pytest.fixture
def ifs(sandbox_data_dir):
    with IfsSandbox(scale=60, seed=11, port=0, data_dir=sandbox_data_dir, rate_limit=0) as stand_in:
        yield stand_in


def config_for(ifs, tmp_path, **extra) -> dict:
    return {"base_url": ifs.base_url, "realm": "mlc", "client_id": "mlc-sandbox-client",
            "client_secret": "mlc-sandbox-secret", "streams": STREAMS, "flow": "jaggaer-invoices-to-ifs",
            "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **extra}


def head(invoice_no: str, gross: str = "1250.00", **extra) -> dict:
    gross_amount = Decimal(gross)
    net = (gross_amount / Decimal("1.25")).quantize(Decimal("0.01"))
    return {"Company": "10", "InvoiceNo": invoice_no, "Identity": "S10001", "InvoiceDate": "2026-11-02",
            "DueDate": "2026-12-02", "NetAmount": net, "VatAmount": gross_amount - net, "GrossAmount": gross_amount,
            **extra}


def line(invoice_no: str, line_no: int, amount: str, account: str = "4010") -> dict:
    return {"Company": "10", "InvoiceNo": invoice_no, "LineNo": line_no, "Account": account,
            "CurrencyAmount": Decimal(amount), "Amount": Decimal(amount), "Text": f"JAGGAER line {line_no}"}


def invoices_input(*invoices: tuple[dict, list[dict]]) -> list[dict]:
    """Both SCHEMAs first, then each invoice's head followed by its lines, as the JAGGAER flow sends them."""
    messages = [schema_message(HEADS, HEAD, ["Company", "InvoiceNo"]),
                schema_message(LINES, LINE, ["Company", "InvoiceNo", "LineNo"])]
    for invoice, lines in invoices:
        messages.append(record_message(HEADS, invoice))
        messages += [record_message(LINES, one) for one in lines]
    return messages


def send(tmp_path, config, messages, **kwargs):
    return run_target(tmp_path, config, messages, executable="target-ifscloud", **kwargs)


def nothing_new() -> list[dict]:
    """What the flow sends when no invoice changed: both SCHEMAs, then the STATE that closes the tap's sync."""
    return invoices_input() + [state_message({"bookmarks": {"invoices": {"replication_key_value": "2026-11-30"}}})]


def read(ifs, path: str) -> requests.Response:
    token = requests.post(ifs.token_url, data={"grant_type": "client_credentials", "client_id": ifs.client_id,
                                               "client_secret": ifs.client_secret}).json()["access_token"]
    return requests.get(f"{ifs.service_url(SVC)}/{path}", headers={"Authorization": f"Bearer {token}"})


def lines_in_ifs(ifs, invoice_no: str) -> list[dict]:
    response = read(ifs, f"PostingProposalHeadSet(Company='10',InvoiceNo='{invoice_no}')/PostingProposalLines")
    response.raise_for_status()
    return sorted(response.json(parse_float=Decimal)["value"], key=lambda row: row["LineNo"])


def posts(ifs) -> list[dict]:
    return [r for r in ifs.requests() if r["kind"] == "data" and r["method"] in ("POST", "PATCH")]


def entries(config, stream=None):
    return list(AuditTrail(config["audit_url"]).entries(stream=stream))


INVOICE_A = (head("JAG-A-1", "1250.00"), [line("JAG-A-1", 1, "600.00"), line("JAG-A-1", 2, "400.00", "4020")])
INVOICE_B = (head("JAG-B-1", "125.00"), [line("JAG-B-1", 1, "100.00")])


def test_lines_right_after_their_head_find_it_and_an_invoice_never_posts_twice(ifs, tmp_path):
    config = config_for(ifs, tmp_path)
    ifs.clear_requests()
    send(tmp_path, config, invoices_input(INVOICE_A, INVOICE_B))
    assert len(posts(ifs)) == 5  # two heads, three lines: one create each, in input order
    assert [(e.stream, e.operation, e.outcome) for e in entries(config)] == [
        (HEADS, "insert", "succeeded"), (LINES, "insert", "succeeded"), (LINES, "insert", "succeeded"),
        (HEADS, "insert", "succeeded"), (LINES, "insert", "succeeded")]
    stored = lines_in_ifs(ifs, "JAG-A-1")
    assert [(row["LineNo"], row["Account"], row["Amount"]) for row in stored] == [
        (1, "4010", Decimal("600")), (2, "4020", Decimal("400"))]

    ifs.clear_requests()
    send(tmp_path, config, invoices_input(INVOICE_A, INVOICE_B))
    assert posts(ifs) == []
    second_run = AuditTrail(config["audit_url"]).runs(1)[0]
    assert second_run.status == "succeeded"
    assert [(e.operation, e.outcome) for e in entries(config) if e.run_id == second_run.run_id] == [
        ("unchanged", "succeeded")] * 5
    assert lines_in_ifs(ifs, "JAG-A-1") == stored and len(lines_in_ifs(ifs, "JAG-B-1")) == 1


def test_an_invoice_sent_again_with_other_amounts_is_not_changed(ifs, tmp_path):
    """mode create: what IFS holds for an invoice is never overwritten, whatever arrives later."""
    config = config_for(ifs, tmp_path)
    send(tmp_path, config, invoices_input(INVOICE_B))
    ifs.clear_requests()
    changed_head = {**INVOICE_B[0], "GrossAmount": Decimal("999.00")}
    send(tmp_path, config, invoices_input((changed_head, [line("JAG-B-1", 1, "799.20")])))
    assert posts(ifs) == []
    assert read(ifs, "PostingProposalHeadSet(Company='10',InvoiceNo='JAG-B-1')").json(
        parse_float=Decimal)["GrossAmount"] == Decimal("125")
    assert lines_in_ifs(ifs, "JAG-B-1")[0]["Amount"] == Decimal("100")


def test_lines_refused_for_a_missing_head_fail_with_ifs_message_and_are_redone_after_it_next_run(ifs, tmp_path):
    config = config_for(ifs, tmp_path, max_tries=2)
    # The head cannot be created in this run: IFS answers 503 to every try.
    ifs.add_fault("status", count=2, status=503, method="POST", path_contains="PostingProposalHeadSet")
    result = send(tmp_path, config, invoices_input(INVOICE_A), expected_exit=EXIT_UNDELIVERED)
    trail = AuditTrail(config["audit_url"])
    failed = list(trail.failures())
    assert [(e.stream, e.key.get("LineNo")) for e in failed] == [(HEADS, None), (LINES, 1), (LINES, 2)]
    assert "503" in failed[0].error
    for refused in failed[1:]:
        assert "IFS refused to create PostingProposalLineSet" in refused.error
        assert "HTTP 400" in refused.error
        assert ("PostingProposalHeadSet has no record with Company=10, InvoiceNo=JAG-A-1: create the posting "
                "proposal first") in refused.error
        assert refused.source == next(one for one in INVOICE_A[1] if one["LineNo"] == refused.key["LineNo"])
    assert trail.runs(1)[0].status == "failed" and "3 record(s) could not be written" in result.stderr  # none delivered
    assert read(ifs, "PostingProposalHeadSet(Company='10',InvoiceNo='JAG-A-1')").status_code == 404

    ifs.clear_faults()
    ifs.clear_requests()
    send(tmp_path, config, nothing_new())  # nothing new: the failures are redone, the head first
    created = [r["path"].rsplit("/", 1)[-1] for r in posts(ifs)]
    assert created == ["PostingProposalHeadSet", "PostingProposalLineSet", "PostingProposalLineSet"]
    assert [(row["LineNo"], row["Amount"]) for row in lines_in_ifs(ifs, "JAG-A-1")] == [
        (1, Decimal("600")), (2, Decimal("400"))]
    assert list(trail.failures()) == [] and trail.runs(1)[0].status == "succeeded"
    redo_run = trail.runs(1)[0].run_id
    # Each redone record's own entry (the run also holds, per failed entry, the answer that marks it replayed).
    assert [(e.stream, e.operation) for e in entries(config) if e.run_id == redo_run and e.replay_of is None] == [
        (HEADS, "insert"), (LINES, "insert"), (LINES, "insert")]

    ifs.clear_requests()
    send(tmp_path, config, invoices_input(INVOICE_A))  # the same invoice once more: nothing posts twice
    assert posts(ifs) == []


def test_a_line_whose_head_never_came_stays_failed_until_the_head_is_written(ifs, tmp_path):
    config = config_for(ifs, tmp_path)
    orphan = line("JAG-C-1", 1, "80.00")
    send(tmp_path, config, invoices_input()[1:] + [record_message(LINES, orphan)], check=False)
    trail = AuditTrail(config["audit_url"])
    [refused] = list(trail.failures(stream=LINES))
    assert "create the posting proposal first" in refused.error
    # The head comes in the next run: the line, redone before the input, is refused again and stays failed (not lost).
    send(tmp_path, config, invoices_input((head("JAG-C-1", "100.00"), [])), check=False)
    assert [e.id for e in trail.failures(stream=LINES)] == [refused.id]
    send(tmp_path, config, nothing_new())
    assert list(trail.failures()) == []
    assert [(row["LineNo"], row["Amount"]) for row in lines_in_ifs(ifs, "JAG-C-1")] == [(1, Decimal("80"))]


def test_a_flagged_invoice_is_written_audited_with_its_flag_warned_about_and_counted(ifs, tmp_path):
    config = config_for(ifs, tmp_path)
    price = "line 2: invoiced 400.00, ordered 380.00"
    flagged = head("JAG-F-1", po_discrepancies=price)
    listed = head("JAG-F-2", po_discrepancies=["line 1: quantity 12, received 10", "line 1: price 8.50, ordered 8.00"])
    clean = head("JAG-F-3", po_discrepancies="")
    clean_list = head("JAG-F-4", po_discrepancies=[])
    ifs.clear_requests()
    result = send(tmp_path, config, invoices_input((flagged, [line("JAG-F-1", 1, "600.00")]), (listed, []),
                                                   (clean, []), (clean_list, [])))
    for invoice_no in ("JAG-F-1", "JAG-F-2", "JAG-F-3", "JAG-F-4"):
        stored = read(ifs, f"PostingProposalHeadSet(Company='10',InvoiceNo='{invoice_no}')")
        assert stored.status_code == 200, stored.text
    head_bodies = [r for r in posts(ifs) if r["path"].endswith("/PostingProposalHeadSet")]
    assert len(head_bodies) == 4
    by_invoice = {e.key["InvoiceNo"]: e for e in entries(config, HEADS)}
    assert all(e.outcome == "succeeded" and e.operation == "insert" for e in by_invoice.values())
    assert all("po_discrepancies" not in e.payload[1]["body"] for e in by_invoice.values())  # GET, then the POST
    assert by_invoice["JAG-F-1"].error == f"flagged: {price}"
    assert by_invoice["JAG-F-2"].error == ("flagged: line 1: quantity 12, received 10; line 1: price 8.50, "
                                           "ordered 8.00")
    assert by_invoice["JAG-F-3"].error is None and by_invoice["JAG-F-4"].error is None
    assert by_invoice["JAG-F-1"].source["po_discrepancies"] == price
    warnings = [text for text in result.stderr.splitlines() if "flagged by po_discrepancies" in text]
    assert len(warnings) == 2
    assert "WARNING" in warnings[0] and HEADS in warnings[0] and "'InvoiceNo': 'JAG-F-1'" in warnings[0]
    assert price in warnings[0]
    trail = AuditTrail(config["audit_url"])
    [run] = trail.runs(1)
    assert run.status == "succeeded" and run.summary["flagged_records"] == 2 and "failed" not in run.summary
    assert list(trail.failures()) == []

    shown = subprocess.run([str(BIN / "mlc-audit"), "--url", config["audit_url"], "show",
                            str(by_invoice["JAG-F-1"].id)], capture_output=True, text=True, check=True).stdout
    assert "outcome:" in shown and "succeeded" in shown
    assert f"error:\n    flagged: {price}" in shown

    # Sent again: nothing is written, and the flag is still on the (unchanged) entry and in the run's count.
    ifs.clear_requests()
    send(tmp_path, config, invoices_input((flagged, [])))
    assert posts(ifs) == []
    again = [e for e in entries(config, HEADS) if e.run_id == trail.runs(1)[0].run_id]
    assert [(e.operation, e.error) for e in again] == [("unchanged", f"flagged: {price}")]
    assert trail.runs(1)[0].summary["flagged_records"] == 1


def test_a_flagged_record_redone_after_a_failure_carries_its_flag(ifs, tmp_path):
    config = config_for(ifs, tmp_path, max_tries=2)
    ifs.add_fault("status", count=2, status=503, method="POST", path_contains="PostingProposalHeadSet")
    send(tmp_path, config, invoices_input((head("JAG-F-9", po_discrepancies="no purchase order"), [])),
         expected_exit=EXIT_UNDELIVERED)
    trail = AuditTrail(config["audit_url"])
    [failed] = list(trail.failures())
    assert "503" in failed.error
    assert trail.runs(1)[0].summary["flagged_records"] == 0
    result = send(tmp_path, config, nothing_new())
    redo_run = trail.runs(1)[0]
    [redone] = [e for e in entries(config, HEADS) if e.run_id == redo_run.run_id and e.replay_of is None]
    assert (redone.operation, redone.outcome, redone.error) == ("insert", "succeeded", "flagged: no purchase order")
    assert redo_run.summary["flagged_records"] == 1 and "no purchase order" in result.stderr


def test_a_flag_field_listed_in_fields_is_written_too(ifs, tmp_path):
    ifs.create("PurchaseOrderSet", {"OrderNo": "PF1"})
    config = config_for(ifs, tmp_path)
    config["streams"] = {"jira_purchase_orders": {
        "projection": "PurchaseOrderHandling", "entity_set": "PurchaseOrderSet",
        "fields": ["Cf_Jira_Key", "Cf_Jira_Status"], "flag_field": "Cf_Jira_Status"}}
    properties = {"OrderNo": {"type": ["string"]}, "Cf_Jira_Key": {"type": ["string", "null"]},
                  "Cf_Jira_Status": {"type": ["string", "null"]}}
    send(tmp_path, config, [schema_message("jira_purchase_orders", properties, ["OrderNo"]),
                            record_message("jira_purchase_orders",
                                           {"OrderNo": "PF1", "Cf_Jira_Key": "FIN-9", "Cf_Jira_Status": "Blocked"})])
    token = requests.post(ifs.token_url, data={"grant_type": "client_credentials", "client_id": ifs.client_id,
                                               "client_secret": ifs.client_secret}).json()["access_token"]
    stored = requests.get(f"{ifs.service_url('PurchaseOrderHandling')}/PurchaseOrderSet('PF1')",
                          headers={"Authorization": f"Bearer {token}"}).json()
    assert (stored["Cf_Jira_Key"], stored["Cf_Jira_Status"]) == ("FIN-9", "Blocked")
    [entry] = entries(config, "jira_purchase_orders")
    assert (entry.operation, entry.outcome, entry.error) == ("update", "succeeded", "flagged: Blocked")
