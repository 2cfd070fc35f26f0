"""target-ifscloud's settings: every one declared and described, configuration problems stopping the run at SCHEMA time
with a message naming the stream and the setting or field, STATE passed on after the records are written."""

from __future__ import annotations

import json
import subprocess

import pytest

from ml_connector_core.audit import AuditTrail
from ml_connector_core.secrets import generate_key, seal
from mlc_sandbox.ifs import IfsSandbox
from support.singer import BIN, record_message, run_target, run_target_watching_states, schema_message, state_message

JIRA_PO = {"OrderNo": {"type": ["string"]}, "Cf_Jira_Status": {"type": ["string", "null"]}}


@pytest.fixture(scope="module")
def ifs(tmp_path_factory):
    with IfsSandbox(scale=60, seed=11, port=0, data_dir=tmp_path_factory.mktemp("ifs-data"), rate_limit=0) as stand_in:
        yield stand_in


def config_for(ifs, tmp_path, streams: dict, **extra) -> dict:
    return {"base_url": ifs.base_url, "realm": "mlc", "client_id": "mlc-sandbox-client",
            "client_secret": "mlc-sandbox-secret", "streams": streams,
            "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}", **extra}


def po_stream(**setting) -> dict:
    return {"jira_purchase_orders": {"projection": "PurchaseOrderHandling", "entity_set": "PurchaseOrderSet", **setting}}


def send(tmp_path, config, messages, **kwargs):
    return run_target(tmp_path, config, messages, executable="target-ifscloud", **kwargs)


def test_about_lists_every_setting_with_a_description():
    about = json.loads(subprocess.run([str(BIN / "target-ifscloud"), "--about", "--format=json"],
                                      capture_output=True, text=True, check=True).stdout)
    properties = about["settings"]["properties"]
    for name in ("base_url", "realm", "token_url", "client_id", "client_secret", "requests_per_minute", "timeout",
                 "max_conflict_retries", "flow", "audit_url", "streams"):
        assert properties[name].get("description"), name
    assert properties["client_secret"].get("secret") is True
    assert properties["max_conflict_retries"]["default"] == 3 and properties["flow"]["default"] == "ifscloud-writeback"
    stream = properties["streams"]["additionalProperties"]["properties"]
    assert stream["mode"]["enum"] == ["update", "upsert", "create"] and stream["mode"]["default"] == "update"


@pytest.mark.parametrize(("streams", "keys", "properties", "expected"), [
    ({}, ["OrderNo"], JIRA_PO, "stream 'jira_purchase_orders' is not in the streams setting"),
    (po_stream(), ["VendorNo"], {**JIRA_PO, "VendorNo": {"type": ["string"]}},
     "has key_properties ['VendorNo'], but the keys of PurchaseOrderHandling.svc/PurchaseOrderSet are ['OrderNo']"),
    (po_stream(fields=["Cf_Jira_Status", "Cf_Nope"]), ["OrderNo"], JIRA_PO,
     "streams.jira_purchase_orders.fields: PurchaseOrderHandling.svc/PurchaseOrderSet has no field(s) Cf_Nope"),
    (po_stream(), ["OrderNo"], {**JIRA_PO, "jira_priority": {"type": ["string"]}},
     "PurchaseOrderHandling.svc/PurchaseOrderSet has no field(s) jira_priority"),
    (po_stream(entity_set="PurchaseOrderz"), ["OrderNo"], JIRA_PO,
     "streams.jira_purchase_orders: PurchaseOrderHandling.svc has no entity set 'PurchaseOrderz'"),
    (po_stream(state_field="Cf_Jira_Status", actions={"Released": "Relaese"}), ["OrderNo"], JIRA_PO,
     "streams.jira_purchase_orders.actions.Released: PurchaseOrderHandling.svc/PurchaseOrderSet has no bound action "
     "PurchaseOrder_Relaese"),
    (po_stream(fields=["Objstate"]), ["OrderNo"], JIRA_PO, "Objstate changes only through bound actions"),
    (po_stream(flag_field="po_discrepancies"), ["OrderNo"], JIRA_PO,
     "streams.jira_purchase_orders.flag_field 'po_discrepancies' is not a property of stream 'jira_purchase_orders'"),
    (po_stream(flag_field="OrderNo"), ["OrderNo"], JIRA_PO,
     "streams.jira_purchase_orders.flag_field 'OrderNo' is a key of PurchaseOrderHandling.svc/PurchaseOrderSet"),
])
def test_configuration_problems_stop_the_run_naming_stream_and_setting(ifs, tmp_path, streams, keys, properties,
                                                                       expected):
    config = config_for(ifs, tmp_path, streams)
    result = send(tmp_path, config, [schema_message("jira_purchase_orders", properties, keys),
                                     record_message("jira_purchase_orders", {"OrderNo": "P1", "Cf_Jira_Status": "x"})],
                  check=False)
    assert result.returncode != 0
    assert expected in result.stderr
    assert not [r for r in ifs.requests() if r["method"] == "PATCH" and "('P1')" in r["path"]]


def test_state_is_emitted_after_the_records_are_written_and_sealed_secrets_open(ifs, tmp_path, monkeypatch):
    key = generate_key()
    ifs.create("PurchaseOrderSet", {"OrderNo": "PZ1"})
    config = config_for(ifs, tmp_path, po_stream(), client_secret=seal("mlc-sandbox-secret", key.encode()))
    result = send(tmp_path, config, [
        schema_message("jira_purchase_orders", JIRA_PO, ["OrderNo"]),
        record_message("jira_purchase_orders", {"OrderNo": "PZ1", "Cf_Jira_Status": "Done"}),
        state_message({"bookmarks": {"jira_purchase_orders": {"updated": "2026-01-01T00:00:00Z"}}}),
    ], env={"MLC_SECRET_KEY": key})
    assert result.states == [{"bookmarks": {"jira_purchase_orders": {"updated": "2026-01-01T00:00:00Z"}}}]
    [entry] = AuditTrail(config["audit_url"]).entries(stream="jira_purchase_orders")
    assert entry.outcome == "succeeded"


def test_each_state_is_passed_on_as_soon_as_the_records_before_it_are_written(ifs, tmp_path):
    """Records are written one by one, so every STATE goes out when it arrives: a checkpoint per STATE received."""
    orders = ["PZC1", "PZC2", "PZC3"]  # own order numbers: the stand-in is shared by the module
    for order_no in orders:
        ifs.create("PurchaseOrderSet", {"OrderNo": order_no})
    messages = [schema_message("jira_purchase_orders", JIRA_PO, ["OrderNo"])]
    for n, order_no in enumerate(orders):
        messages += [record_message("jira_purchase_orders", {"OrderNo": order_no, "Cf_Jira_Status": "In Progress"}),
                     state_message({"bookmarks": {"jira_purchase_orders": {"replication_key_value": n}}})]
    emitted = []

    def written_before_emitted(state: dict) -> bool:
        n = state["bookmarks"]["jira_purchase_orders"]["replication_key_value"]
        patched = {o for o in orders for r in ifs.requests()
                   if r["method"] == "PATCH" and f"('{o}')" in r["path"] and r["status"] < 300}
        assert set(orders[:n + 1]) <= patched, n
        emitted.append(n)
        return False

    run = run_target_watching_states(tmp_path, config_for(ifs, tmp_path, po_stream()), messages,
                                     executable="target-ifscloud", on_state=written_before_emitted)
    assert run.returncode == 0, run.stderr[-3000:]
    assert emitted == [0, 1, 2]


def test_a_stream_without_records_needs_no_setting_and_no_warning(ifs, tmp_path):
    """Taps and stream maps pass on the SCHEMA of a stream the flow does not route: that alone is no problem."""
    key = generate_key()  # the secret sealed, as the README gives it: a plain one is warned about
    config = config_for(ifs, tmp_path, po_stream(), client_secret=seal("mlc-sandbox-secret", key.encode()))
    result = send(tmp_path, config, [schema_message("issues", {"key": {"type": ["string"]}}, ["key"]),
                                     schema_message("jira_purchase_orders", JIRA_PO, ["OrderNo"]),
                                     state_message({"bookmarks": {}})], check=False, env={"MLC_SECRET_KEY": key})
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr and "not in the streams setting" not in result.stderr, result.stderr


def test_a_record_of_a_stream_not_routed_stops_the_run(ifs, tmp_path):
    """... but a record of it is not dropped quietly: the run stops naming the stream and the setting, is failed in
    the audit trail, and the state stays where it was."""
    ifs.create("PurchaseOrderSet", {"OrderNo": "PZ2"})
    config = config_for(ifs, tmp_path, po_stream())
    result = send(tmp_path, config, [schema_message("issues", {"key": {"type": ["string"]}}, ["key"]),
                                     schema_message("jira_purchase_orders", JIRA_PO, ["OrderNo"]),
                                     record_message("jira_purchase_orders", {"OrderNo": "PZ2", "Cf_Jira_Status": "x"}),
                                     record_message("issues", {"key": "MLC-1"}),
                                     state_message({"bookmarks": {"issues": {"updated": "2026-01-01T00:00:00Z"}}})],
                  check=False)
    assert result.returncode != 0
    assert "stream 'issues' is not in the streams setting: add streams.issues with projection and entity_set" in (
        result.stderr)
    assert result.states == []
    [run] = AuditTrail(config["audit_url"]).runs()
    assert run.status == "failed"


def test_the_audit_run_takes_meltanos_run_id_and_stays_unique(ifs, tmp_path):
    """`MELTANO_RUN_ID=... meltano run` hands its id to the plugins: the audit run is named by it, and a second target
    invocation with the same id (another target of that run, a replay from its shell) gets it with a suffix."""
    ifs.create("PurchaseOrderSet", {"OrderNo": "PZ3"})
    config = config_for(ifs, tmp_path, po_stream())
    messages = [schema_message("jira_purchase_orders", JIRA_PO, ["OrderNo"]),
                record_message("jira_purchase_orders", {"OrderNo": "PZ3", "Cf_Jira_Status": "Done"})]
    meltano_run_id = "3c0b8c7e-9a5f-4c1e-8f3a-2d6b7e1a9c40"
    send(tmp_path, config, messages, env={"MELTANO_RUN_ID": meltano_run_id})
    send(tmp_path, config, messages, env={"MELTANO_RUN_ID": meltano_run_id})
    trail = AuditTrail(config["audit_url"])
    assert sorted(run.run_id for run in trail.runs()) == [meltano_run_id, f"{meltano_run_id}-2"]
    assert [e.run_id for e in trail.entries(stream="jira_purchase_orders")] == [meltano_run_id, f"{meltano_run_id}-2"]
    listed = subprocess.run([str(BIN / "mlc-audit"), "--url", config["audit_url"], "runs"], capture_output=True,
                            text=True, check=True).stdout
    assert f"\n{meltano_run_id}-2  ifscloud-writeback  target-ifscloud" in listed
    assert f"\n{meltano_run_id}    ifscloud-writeback  target-ifscloud" in listed
