"""Records target-jaggaer cannot write (bad_records) against the JAGGAER stand-in over real HTTP: a supplier without its
key and a purchase order with a value of the wrong type among good ones. With quarantine JAGGAER gets the others and
never the bad ones, which wait in the audit trail (not redone by the next run, unlike records JAGGAER refused) until
the source sends them fixed; with stop the run stops at the first, naming it, before anything of its batch is sent."""

from __future__ import annotations

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from test_jaggaer_target_writes import config_for, jg, order, send, supplier, writes  # noqa: F401 (jg: fixture)

NO_KEY = {**supplier("S2"), "externalId": None}
WRONG_TYPE = order("P2", "S1", currency=752)  # the ISO number of SEK, where the schema says text
BATCHES = [("jaggaer_suppliers", [supplier("S1"), NO_KEY, supplier("S3")]),
           ("jaggaer_purchase_orders", [order("P1", "S1"), WRONG_TYPE, order("P3", "S3")])]
STATE = {"bookmarks": {"run": {"replication_key_value": "done"}}}


def failures(config) -> list:
    return list(AuditTrail(config["audit_url"]).failures())


def test_quarantine_sends_the_others_and_keeps_the_bad_ones_out_of_jaggaer(jg, tmp_path):
    config = config_for(jg, tmp_path, bad_records="quarantine")

    run = send(tmp_path, config, BATCHES, expected_exit=EXIT_UNDELIVERED)

    assert sorted(s["externalId"] for s in jg.suppliers()) == ["S1", "S3"]
    assert sorted(o["externalId"] for o in jg.purchase_orders()) == ["P1", "P3"]
    assert run.states == [STATE]
    assert [(f.stream, f.key, f.error, f.source) for f in failures(config)] == [
        ("jaggaer_suppliers", {"externalId": None, "_record": 2, "_run": AuditTrail(config["audit_url"]).runs(1)[0].run_id},
         "bad record: record 2 of stream 'jaggaer_suppliers' (no key): missing key property externalId", NO_KEY),
        ("jaggaer_purchase_orders", {"externalId": "P2"},
         "bad record: record 2 of stream 'jaggaer_purchase_orders' (key externalId='P2'): 752 is not of types "
         '"null", "string" at currency', WRONG_TYPE),
    ]


def test_set_aside_records_are_not_redone_by_the_next_run_but_settled_once_the_source_sends_them_fixed(jg, tmp_path):
    config = config_for(jg, tmp_path, bad_records="quarantine")
    send(tmp_path, config, BATCHES, expected_exit=EXIT_UNDELIVERED)
    jg.clear_requests()

    # The next run redoes what JAGGAER refused, not the bad records: the same record would fail the same way.
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S1")])])
    assert writes(jg) == []
    assert len(failures(config)) == 2

    fixed = order("P2", "S1", currency="SEK")
    run = send(tmp_path, config, [("jaggaer_purchase_orders", [fixed])])
    assert "1 bad record(s) set aside by earlier runs were written since" in run.stderr
    assert [o["currency"] for o in jg.purchase_orders() if o["externalId"] == "P2"] == ["SEK"]
    assert [f.stream for f in failures(config)] == ["jaggaer_suppliers"]  # the one without a key waits for a replay


def test_stop_stops_at_the_first_bad_record_naming_it_before_its_batch_is_sent(jg, tmp_path):
    config = config_for(jg, tmp_path)  # bad_records: stop, the default

    run = send(tmp_path, config, BATCHES, check=False)

    assert run.returncode == 1 and run.states == []
    assert "record 2 of stream 'jaggaer_suppliers' (no key): missing key property externalId" in run.stderr
    assert writes(jg) == []
    assert [f.source for f in failures(config)] == [NO_KEY]
