"""target-ifscloud against the IFS stand-in over real HTTP: field updates guarded by ETags, nothing sent when IFS already
holds the values, creations, state actions, conflicts settled without overwriting anyone, token expiry, a 429 storm,
failed records redone by the next run, secrets kept out of the audit trail and the logs."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import requests

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from mlc_sandbox.ifs import IfsSandbox
from support.replay import replay_the_failed_run
from support.singer import record_message, run_target, schema_message, state_message

PO_SVC = "PurchaseOrderHandling"
SECRET = "mlc-sandbox-secret"

JIRA_PO = {"OrderNo": {"type": ["string"]}, "Cf_Jira_Key": {"type": ["string", "null"]},
           "Cf_Jira_Status": {"type": ["string", "null"]}}
CUSTOMER = {"CustomerId": {"type": ["string"]}, "Name": {"type": ["string"]},
            "CreditLimit": {"type": ["number", "null"]}, "Country": {"type": ["string", "null"]}}
PO_STATE = {"OrderNo": {"type": ["string"]}, "Cf_Jira_Status": {"type": ["string", "null"]},
            "WantedState": {"type": ["string", "null"]}}
WORK_ORDER = {"WoNo": {"type": ["integer"]}, "Cf_Gl_Account": {"type": ["string", "null"]},
              "Cf_Jira_Key": {"type": ["string", "null"]}, "Wanted": {"type": ["string", "null"]}}


@pytest.fixture
def ifs(sandbox_data_dir, request):
    """The stand-in; parametrized indirectly with "counter", a tenant whose ETags carry a change counter as objversion
    instead of a timestamp (opaque either way: nothing may read it as a time)."""
    profile = {"etag_objversion": getattr(request, "param", "timestamp")}
    with IfsSandbox(scale=60, seed=11, port=0, data_dir=sandbox_data_dir, rate_limit=0, profile=profile) as stand_in:
        yield stand_in


BOTH_ETAG_KINDS = pytest.mark.parametrize("ifs", ["timestamp", "counter"], indirect=True)


def config_for(ifs, tmp_path, streams: dict, **extra) -> dict:
    return {"base_url": ifs.base_url, "realm": "mlc", "client_id": "mlc-sandbox-client", "client_secret": SECRET,
            "streams": streams, "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **extra}


JIRA_STREAMS = {"jira_purchase_orders": {"projection": PO_SVC, "entity_set": "PurchaseOrderSet"}}


def send(tmp_path, config, stream, properties, keys, records, *, closing_state=None, **kwargs):
    messages = [schema_message(stream, properties, keys)] + [record_message(stream, r) for r in records]
    if closing_state is not None:
        messages.append(state_message(closing_state))
    return run_target(tmp_path, config, messages, executable="target-ifscloud", **kwargs)


#: What a tap sends when nothing changed: the SCHEMA, then the STATE that closes its sync.
NOTHING_NEW = {"bookmarks": {"jira_purchase_orders": {"replication_key_value": "2026-11-30T00:00:00Z"}}}


def read(ifs, projection, path) -> dict:
    token = requests.post(ifs.token_url, data={"grant_type": "client_credentials", "client_id": ifs.client_id,
                                               "client_secret": ifs.client_secret}).json()["access_token"]
    response = requests.get(f"{ifs.service_url(projection)}/{path}", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json(parse_float=Decimal)


def entries(config, stream):
    return list(AuditTrail(config["audit_url"]).entries(stream=stream))


def writes(ifs, method="PATCH", contains=""):
    return [r for r in ifs.requests() if r["kind"] == "data" and r["method"] == method and contains in r["path"]]


def new_order(ifs, order_no, **fields) -> dict:
    return ifs.create("PurchaseOrderSet", {"OrderNo": order_no, **fields})


@BOTH_ETAG_KINDS
def test_a_jira_status_is_patched_with_the_etag_read_and_a_rerun_sends_nothing(ifs, tmp_path):
    new_order(ifs, "PJ1")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    record = {"OrderNo": "PJ1", "Cf_Jira_Key": "FIN-101", "Cf_Jira_Status": "In Progress"}
    ifs.clear_requests()
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [record])
    log = [r for r in ifs.requests() if r["kind"] == "data" and "PurchaseOrderSet('PJ1')" in r["path"]]
    assert [(r["method"], r["status"]) for r in log] == [("GET", 200), ("PATCH", 200)]
    stored = read(ifs, PO_SVC, "PurchaseOrderSet('PJ1')")
    assert (stored["Cf_Jira_Key"], stored["Cf_Jira_Status"]) == ("FIN-101", "In Progress")
    [written] = entries(config, "jira_purchase_orders")
    assert (written.operation, written.outcome, written.attempts) == ("update", "succeeded", 1)
    assert written.version == stored["@odata.etag"]
    assert written.destination == "PurchaseOrderHandling.svc/PurchaseOrderSet('PJ1')"
    get, patch = written.payload
    assert patch["method"] == "PATCH" and patch["body"] == {"Cf_Jira_Key": "FIN-101", "Cf_Jira_Status": "In Progress"}
    assert patch["if_match"] == log[1]["headers"]["If-Match"] != written.version  # the ETag read, not the new one
    assert written.source == record

    ifs.clear_requests()
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [record])
    assert writes(ifs) == []
    assert [e.operation for e in entries(config, "jira_purchase_orders")] == ["update", "unchanged"]
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PJ1')")["@odata.etag"] == stored["@odata.etag"]


def test_only_the_owned_fields_that_differ_are_sent(ifs, tmp_path):
    new_order(ifs, "PJ2", Cf_Jira_Key="FIN-7", NoteText="kept")
    config = config_for(ifs, tmp_path, {"jira_purchase_orders": {
        "projection": PO_SVC, "entity_set": "PurchaseOrderSet", "fields": ["Cf_Jira_Key", "Cf_Jira_Status"]}})
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"],
         [{"OrderNo": "PJ2", "Cf_Jira_Key": "FIN-7", "Cf_Jira_Status": "Done"}])
    [written] = entries(config, "jira_purchase_orders")
    assert written.payload[-1]["body"] == {"Cf_Jira_Status": "Done"}
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PJ2')")["NoteText"] == "kept"


def test_upsert_creates_a_customer_once_and_decimals_compare_exactly(ifs, tmp_path):
    config = config_for(ifs, tmp_path, {"sf_customers": {
        "projection": "CustomerHandling", "entity_set": "CustomerInfoSet", "mode": "upsert"}})
    record = {"CustomerId": "SF-0001", "Name": "Acme AB", "CreditLimit": Decimal("12.50"), "Country": "SE"}
    send(tmp_path, config, "sf_customers", CUSTOMER, ["CustomerId"], [record])
    stored = read(ifs, "CustomerHandling", "CustomerInfoSet('SF-0001')")
    assert (stored["Name"], stored["CreditLimit"]) == ("Acme AB", Decimal("12.5"))
    ifs.clear_requests()
    send(tmp_path, config, "sf_customers", CUSTOMER, ["CustomerId"], [record])
    assert writes(ifs, "PATCH") == [] and writes(ifs, "POST") == []
    assert [(e.operation, e.outcome) for e in entries(config, "sf_customers")] == [
        ("insert", "succeeded"), ("unchanged", "succeeded")]
    send(tmp_path, config, "sf_customers", CUSTOMER, ["CustomerId"], [{**record, "Name": "Acme Nordic AB"}])
    assert read(ifs, "CustomerHandling", "CustomerInfoSet('SF-0001')")["Name"] == "Acme Nordic AB"
    assert entries(config, "sf_customers")[-1].operation == "update"


def test_create_mode_creates_what_is_missing_and_never_changes_what_exists(ifs, tmp_path):
    ifs.create("CustomerInfoSet", {"CustomerId": "SF-0002", "Name": "Already There"})
    config = config_for(ifs, tmp_path, {"sf_customers": {
        "projection": "CustomerHandling", "entity_set": "CustomerInfoSet", "mode": "create"}})
    send(tmp_path, config, "sf_customers", CUSTOMER, ["CustomerId"],
         [{"CustomerId": "SF-0002", "Name": "Other Name"}, {"CustomerId": "SF-0003", "Name": "New Customer"}])
    assert read(ifs, "CustomerHandling", "CustomerInfoSet('SF-0002')")["Name"] == "Already There"
    assert read(ifs, "CustomerHandling", "CustomerInfoSet('SF-0003')")["Name"] == "New Customer"
    assert [e.operation for e in entries(config, "sf_customers")] == ["unchanged", "insert"]
    assert writes(ifs, "PATCH") == []


def test_states_move_through_bound_actions_and_refusals_fail_only_their_record(ifs, tmp_path):
    for order_no in ("PA1", "PA2", "PA3", "PA4"):
        new_order(ifs, order_no)
    config = config_for(ifs, tmp_path, {"jira_po_states": {
        "projection": PO_SVC, "entity_set": "PurchaseOrderSet", "state_field": "WantedState",
        "actions": {"Released": "Release", "Closed": "Close"}}})
    result = send(tmp_path, config, "jira_po_states", PO_STATE, ["OrderNo"], [
        {"OrderNo": "PA1", "Cf_Jira_Status": "Approved", "WantedState": "Released"},
        {"OrderNo": "PA2", "WantedState": "Closed"},       # IFS refuses: a planned order cannot be closed
        {"OrderNo": "PA3", "WantedState": "Confirmed"},    # no action is configured for it
        {"OrderNo": "PA4", "WantedState": "Planned"},      # already there
    ], expected_exit=EXIT_UNDELIVERED)
    pa1 = read(ifs, PO_SVC, "PurchaseOrderSet('PA1')")
    assert (pa1["Objstate"], pa1["Cf_Jira_Status"]) == ("Released", "Approved")
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PA2')")["Objstate"] == "Planned"
    [action] = writes(ifs, "POST", "PurchaseOrderSet('PA1')")
    assert action["path"].endswith("/IfsApp.PurchaseOrderHandling.PurchaseOrder_Release")
    by_key = {e.key["OrderNo"]: e for e in entries(config, "jira_po_states")}
    assert by_key["PA1"].outcome == "succeeded" and by_key["PA1"].version == pa1["@odata.etag"]
    assert by_key["PA2"].outcome == "failed" and "cannot be closed in state Planned" in by_key["PA2"].error
    assert by_key["PA3"].outcome == "failed" and "no action is configured for Confirmed" in by_key["PA3"].error
    assert (by_key["PA4"].operation, by_key["PA4"].outcome) == ("unchanged", "succeeded")
    trail = AuditTrail(config["audit_url"])
    assert trail.runs(1)[0].status == "partial"  # read to the end, two records not delivered
    assert "could not be written" in result.stderr


def test_work_orders_are_addressed_by_their_integer_key(ifs, tmp_path):
    wo_no = ifs.create("ActiveSeparateSet", {"ErrDescr": "Pump leaks"})["WoNo"]
    config = config_for(ifs, tmp_path, {"jira_work_orders": {
        "projection": "ActiveWorkOrdersHandling", "entity_set": "ActiveSeparateSet", "state_field": "Wanted",
        "actions": {"Released": "Release"}}})
    send(tmp_path, config, "jira_work_orders", WORK_ORDER, ["WoNo"],
         [{"WoNo": wo_no, "Cf_Gl_Account": "4010", "Cf_Jira_Key": "OPS-9", "Wanted": "Released"}])
    stored = read(ifs, "ActiveWorkOrdersHandling", f"ActiveSeparateSet({wo_no})")
    assert (stored["Cf_Gl_Account"], stored["Cf_Jira_Key"], stored["Objstate"]) == ("4010", "OPS-9", "Released")


def test_an_unknown_record_fails_alone_and_the_rest_is_written(ifs, tmp_path):
    new_order(ifs, "PU1")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [
        {"OrderNo": "NOPE-1", "Cf_Jira_Status": "Done"}, {"OrderNo": "PU1", "Cf_Jira_Status": "Done"}],
         expected_exit=EXIT_UNDELIVERED)
    failed, written = entries(config, "jira_purchase_orders")
    assert failed.outcome == "failed" and "no PurchaseOrderSet record with OrderNo=NOPE-1" in failed.error
    assert written.outcome == "succeeded"
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PU1')")["Cf_Jira_Status"] == "Done"
    assert writes(ifs, "POST") == []  # update mode never creates


def _run_with_a_change_between_read_and_write(ifs, tmp_path, config, record, changes, **options):
    """The PATCH is held back by the stand-in while the record changes in IFS through the admin interface."""
    ifs.add_fault("delay", count=1, delay_seconds=3, method="PATCH", path_contains=f"('{record['OrderNo']}')")
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("run", send(
        tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [record], **options)))
    runner.start()
    while ifs.admin("GET", "faults")["faults"]:  # the held PATCH has taken the fault
        time.sleep(0.05)
    ifs.change("PurchaseOrderSet", {"OrderNo": record["OrderNo"]}, changes)
    runner.join()
    return outcome["run"]


@BOTH_ETAG_KINDS
def test_a_412_after_someone_changed_other_fields_is_applied_again(ifs, tmp_path):
    new_order(ifs, "PC1")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    _run_with_a_change_between_read_and_write(
        ifs, tmp_path, config, {"OrderNo": "PC1", "Cf_Jira_Key": "FIN-5", "Cf_Jira_Status": "Blocked"},
        {"NoteText": "changed by a buyer"})
    stored = read(ifs, PO_SVC, "PurchaseOrderSet('PC1')")
    assert (stored["NoteText"], stored["Cf_Jira_Status"]) == ("changed by a buyer", "Blocked")
    assert [r["status"] for r in writes(ifs, "PATCH", "('PC1')")] == [412, 200]
    [written] = entries(config, "jira_purchase_orders")
    assert (written.outcome, written.operation, written.attempts) == ("succeeded", "update", 2)
    assert written.version == stored["@odata.etag"]


def test_a_412_after_someone_changed_an_owned_field_never_overwrites_it(ifs, tmp_path):
    new_order(ifs, "PC2")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    _run_with_a_change_between_read_and_write(
        ifs, tmp_path, config, {"OrderNo": "PC2", "Cf_Jira_Key": "FIN-6", "Cf_Jira_Status": "Blocked"},
        {"Cf_Jira_Status": "Closed by finance"}, expected_exit=EXIT_UNDELIVERED)
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PC2')")["Cf_Jira_Status"] == "Closed by finance"
    assert [r["status"] for r in writes(ifs, "PATCH", "('PC2')")] == [412]
    [failed] = entries(config, "jira_purchase_orders")
    assert failed.outcome == "failed"
    assert "Cf_Jira_Status: IFS now holds 'Closed by finance' (it held null when read), the record wants 'Blocked'" \
        in failed.error


def test_tokens_expiring_and_revoked_mid_run_lose_nothing(sandbox_data_dir, tmp_path):
    with IfsSandbox(scale=60, seed=11, port=0, data_dir=sandbox_data_dir, rate_limit=0, token_ttl=1) as ifs:
        orders = [f"PT{n}" for n in range(12)]
        ifs.create_many("PurchaseOrderSet", [{"OrderNo": no} for no in orders])
        config = config_for(ifs, tmp_path, JIRA_STREAMS)
        # The first PATCH is held while every token is revoked, so it arrives with a dead token: 401, new token.
        ifs.add_fault("delay", count=1, delay_seconds=2, method="PATCH")
        runner = threading.Thread(target=send, args=(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"],
                                                     [{"OrderNo": no, "Cf_Jira_Status": "Seen"} for no in orders]))
        runner.start()
        while ifs.admin("GET", "faults")["faults"]:
            time.sleep(0.05)
        ifs.revoke_tokens()
        runner.join()
        assert all(read(ifs, PO_SVC, f"PurchaseOrderSet('{no}')")["Cf_Jira_Status"] == "Seen" for no in orders)
        assert [r["status"] for r in ifs.requests() if r["kind"] == "data"].count(401) >= 1
        assert len([r for r in ifs.requests() if r["kind"] == "token"]) >= 2
        assert {e.outcome for e in entries(config, "jira_purchase_orders")} == {"succeeded"}


def test_a_429_storm_is_waited_out(ifs, tmp_path):
    new_order(ifs, "PS1")
    new_order(ifs, "PS2")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    ifs.add_fault("rate_limit", count=4, retry_after=1)
    result = send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"],
                  [{"OrderNo": "PS1", "Cf_Jira_Status": "Done"}, {"OrderNo": "PS2", "Cf_Jira_Status": "Done"}])
    assert [r["status"] for r in ifs.requests() if r["kind"] == "data"].count(429) == 4
    assert "Waiting " not in result.stderr and "Backing off" not in result.stderr  # short waits: nothing at INFO
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PS1')")["Cf_Jira_Status"] == "Done"
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PS2')")["Cf_Jira_Status"] == "Done"
    assert {e.outcome for e in entries(config, "jira_purchase_orders")} == {"succeeded"}


def test_a_metadata_document_cut_off_on_the_way_is_asked_again(ifs, tmp_path):
    new_order(ifs, "PS4")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    ifs.add_fault("malformed", count=1, path_contains="$metadata")  # the first half of the XML, 200
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [{"OrderNo": "PS4", "Cf_Jira_Status": "Done"}])
    metadata = [r for r in ifs.requests() if "$metadata" in r["path"]]
    assert [r["fault"] for r in metadata] == ["malformed", None]
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PS4')")["Cf_Jira_Status"] == "Done"
    assert {e.outcome for e in entries(config, "jira_purchase_orders")} == {"succeeded"}


def test_a_long_wait_is_announced_once(ifs, tmp_path):
    new_order(ifs, "PS3")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    ifs.add_fault("rate_limit", count=1, retry_after=6, method="PATCH")
    result = send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"],
                  [{"OrderNo": "PS3", "Cf_Jira_Status": "Done"}])
    waits = [line for line in result.stderr.splitlines() if "Waiting " in line]
    assert len(waits) == 1, result.stderr
    assert f"before retrying PATCH {ifs.base_url}/" in waits[0] and "/PurchaseOrderSet('PS3') " in waits[0]
    assert waits[0].endswith("(HTTP 429, Retry-After 6), attempt 2 of 8")
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PS3')")["Cf_Jira_Status"] == "Done"


def test_a_failed_record_is_redone_first_by_the_next_run_and_only_once(ifs, tmp_path):
    new_order(ifs, "PR1")
    config = config_for(ifs, tmp_path, JIRA_STREAMS, max_tries=2)
    ifs.add_fault("status", count=10, status=503, method="PATCH")
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [{"OrderNo": "PR1", "Cf_Jira_Status": "Paid"}],
         expected_exit=EXIT_UNDELIVERED)
    trail = AuditTrail(config["audit_url"])
    [failed] = list(trail.failures(stream="jira_purchase_orders"))
    assert "503" in failed.error and failed.source == {"OrderNo": "PR1", "Cf_Jira_Status": "Paid"}
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PR1')")["Cf_Jira_Status"] is None
    ifs.clear_faults()
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [],
         closing_state=NOTHING_NEW)  # nothing new; the failure is redone
    assert read(ifs, PO_SVC, "PurchaseOrderSet('PR1')")["Cf_Jira_Status"] == "Paid"
    assert list(trail.failures(stream="jira_purchase_orders")) == []
    assert trail.runs(1)[0].status == "succeeded"
    ifs.clear_requests()
    send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], [], closing_state=NOTHING_NEW)
    assert writes(ifs, "PATCH") == []


def test_secrets_never_reach_the_audit_trail_or_the_logs(ifs, tmp_path):
    new_order(ifs, "PX1")
    config = config_for(ifs, tmp_path, JIRA_STREAMS)
    result = send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"],
                  [{"OrderNo": "PX1", "Cf_Jira_Status": "Done"}, {"OrderNo": "PX-missing", "Cf_Jira_Status": "Done"}],
                  expected_exit=EXIT_UNDELIVERED)
    assert SECRET not in result.stderr and SECRET not in result.stdout
    audit_bytes = b"".join(path.read_bytes() for path in tmp_path.glob("audit.sqlite*"))
    assert SECRET.encode() not in audit_bytes
    assert b"Bearer" not in audit_bytes and b"Authorization" not in audit_bytes
    assert result.stdout.strip() == ""  # no STATE came in, so none goes out


PROPOSAL = {"Company": {"type": ["string"]}, "InvoiceNo": {"type": ["string"]}, "Identity": {"type": ["string"]},
            "InvoiceDate": {"type": ["string"], "format": "date"}, "DueDate": {"type": ["string"], "format": "date"},
            "NetAmount": {"type": ["number"]}, "VatAmount": {"type": ["number"]}, "GrossAmount": {"type": ["number"]},
            "Stage": {"type": ["string", "null"]}}


def test_a_jaggaer_invoice_becomes_a_posting_proposal_sent_for_authorization_once(ifs, tmp_path):
    config = config_for(ifs, tmp_path, {"jaggaer_invoices": {
        "projection": "ManSuppInvoiceHandling", "entity_set": "PostingProposalHeadSet", "mode": "create",
        "state_field": "Stage", "actions": {"AwaitingAuthorization": "SendForAuthorization"}}})
    invoice = {"Company": "10", "InvoiceNo": "JAG-O'Brien-1", "Identity": "S10001", "InvoiceDate": "2026-11-02",
               "DueDate": "2026-12-02", "NetAmount": Decimal("1000.10"), "VatAmount": Decimal("250.025"),
               "GrossAmount": Decimal("1250.125"), "Stage": "AwaitingAuthorization"}
    for _ in range(2):
        send(tmp_path, config, "jaggaer_invoices", PROPOSAL, ["Company", "InvoiceNo"], [invoice])
    stored = read(ifs, "ManSuppInvoiceHandling", "PostingProposalHeadSet(Company='10',InvoiceNo='JAG-O''Brien-1')")
    assert (stored["Objstate"], stored["GrossAmount"], stored["DueDate"]) == (
        "AwaitingAuthorization", Decimal("1250.125"), "2026-12-02")
    assert len(writes(ifs, "POST", "PostingProposalHeadSet")) == 2  # one create, one action; nothing the second time
    assert [(e.operation, e.outcome) for e in entries(config, "jaggaer_invoices")] == [
        ("insert", "succeeded"), ("unchanged", "succeeded")]


def test_a_replay_of_a_run_ifs_refused_writes_each_record_once(ifs, tmp_path):
    for order_no in ("PY1", "PY2"):
        new_order(ifs, order_no)
    config = config_for(ifs, tmp_path, JIRA_STREAMS, max_tries=2)
    ifs.add_fault("status", count=1000, status=503, method="PATCH")
    records = [{"OrderNo": "PY1", "Cf_Jira_Status": "Done"}, {"OrderNo": "PY2", "Cf_Jira_Status": "Done"}]
    failed = send(tmp_path, config, "jira_purchase_orders", JIRA_PO, ["OrderNo"], records, check=False)
    assert failed.returncode == EXIT_UNDELIVERED
    ifs.clear_requests()  # the PATCHes counted below are the replay's
    replay_the_failed_run(tmp_path, "target-ifscloud", config, ifs, failed=2)
    assert all(read(ifs, PO_SVC, f"PurchaseOrderSet('{no}')")["Cf_Jira_Status"] == "Done" for no in ("PY1", "PY2"))
    assert len(writes(ifs, "PATCH")) == 2  # once each: the target redid them, the replayed records found them done
