"""target-salesforce when Salesforce misbehaves, over real HTTP: a session ended mid-run, the org's API limit near or
reached, Server Busy with Retry-After; and the secrets never in the audit trail or the logs."""

from __future__ import annotations

import sqlite3

from ml_connector_core.audit import AuditTrail
from ml_connector_core.audited_target import EXIT_UNDELIVERED
from ml_connector_core.secrets import generate_key, seal
from test_sf_target_upserts import accounts, collection_calls, config_for, last_run, send, supplier
from test_sf_target_upserts import sf  # noqa: F401  (the stand-in fixture)

SIX = [supplier(f"S{n}") for n in range(1, 7)]


def token_requests(sf) -> list[dict]:
    return [r for r in sf.requests() if r["path"].endswith("/oauth2/token")]


def test_a_session_ended_mid_run_gets_one_new_token_and_the_call_is_retried(sf, tmp_path):
    config = config_for(sf, tmp_path, batch_size=2)
    sf.add_fault("session", count=1, method="PATCH", path="/composite/sobjects/Account")
    run = send(tmp_path, config, [("sf_supplier_accounts", SIX)])
    assert run.returncode == 0
    assert sorted(accounts(sf)) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert len(sf.records("Account")) == 6
    assert len(token_requests(sf)) == 2
    statuses = [c["status"] for c in collection_calls(sf)]
    assert statuses == [401, 200, 200, 200]
    assert last_run(config).operations == {"insert": 6}


def test_near_the_limit_new_work_stops_and_what_was_not_done_is_failed_then_redone(sf, tmp_path):
    config = config_for(sf, tmp_path, batch_size=2)
    sf.set_api_usage(13_600)  # 90.7 % of 15,000: the first answer tells the client, which then stops
    run = send(tmp_path, config, [("sf_supplier_accounts", SIX)], check=False)
    assert run.returncode == 1
    assert run.states == []  # the bookmark does not move past work not done
    assert "at or above the 90% this integration may use" in run.stderr
    assert len(collection_calls(sf)) == 1 and len(accounts(sf)) == 2
    trail = AuditTrail(config["audit_url"])
    failed = list(trail.failures())
    # The batch being written when the limit came is failed in the audit trail; the records after it were not read
    # (no STATE was emitted for them, so the tap sends them again).
    assert sorted(f.key["IFS_Supplier_Id__c"] for f in failed) == ["S3", "S4"]
    assert all("api_usage_stop_share" in f.error for f in failed)
    assert last_run(config).status == "failed"

    sf.set_api_usage(0)
    redone = send(tmp_path, config, [])
    assert sorted(accounts(sf)) == ["S1", "S2", "S3", "S4"]
    assert list(trail.failures()) == []
    send(tmp_path, config, [("sf_supplier_accounts", SIX)])
    assert sorted(accounts(sf)) == ["S1", "S2", "S3", "S4", "S5", "S6"] and len(sf.records("Account")) == 6
    assert redone.states


def test_limit_exceeded_is_a_clear_error_and_nothing_is_lost(sf, tmp_path):
    config = config_for(sf, tmp_path)
    sf.add_fault("rate_limit", count=1, method="PATCH")
    run = send(tmp_path, config, [("sf_supplier_accounts", SIX[:3])], check=False)
    assert run.returncode == 1 and run.states == []
    assert "the org's API request limit is reached (REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded." in run.stderr
    assert "Traceback" not in run.stderr
    assert accounts(sf) == {}
    assert len(list(AuditTrail(config["audit_url"]).failures())) == 3

    send(tmp_path, config, [])
    assert sorted(accounts(sf)) == ["S1", "S2", "S3"]


def test_above_the_slowdown_share_calls_are_spaced_and_still_done(sf, tmp_path):
    config = config_for(sf, tmp_path, batch_size=2, api_usage_slowdown_seconds=0.01)
    sf.set_api_usage(12_500)  # 83 %: above 80 %, below 90 %
    run = send(tmp_path, config, [("sf_supplier_accounts", SIX)])
    assert "pausing 0.0 s between calls" in run.stderr or "pausing" in run.stderr
    assert len(accounts(sf)) == 6


def test_server_busy_with_retry_after_is_waited_out(sf, tmp_path):
    config = config_for(sf, tmp_path)
    sf.add_fault("busy", count=2, method="PATCH", retry_after=1)
    run = send(tmp_path, config, [("sf_supplier_accounts", SIX)])
    assert run.returncode == 0
    assert [c["status"] for c in collection_calls(sf)] == [503, 503, 200]
    assert len(sf.records("Account")) == 6


def test_secrets_stay_out_of_the_audit_trail_and_the_logs(sf, tmp_path, monkeypatch):
    key = generate_key()
    config = config_for(sf, tmp_path, client_secret=seal(sf.client_secret, key.encode()))
    sf.add_fault("session", count=1, method="PATCH")
    sf.add_fault("status", count=1, method="PATCH", status=500)
    run = send(tmp_path, config, [("sf_supplier_accounts", [supplier("S1"), supplier("S2", Type="Vendor")])],
               env={"MLC_SECRET_KEY": key, "TARGET_SALESFORCE_LOG_LEVEL": "DEBUG"}, expected_exit=EXIT_UNDELIVERED)
    assert len(accounts(sf)) == 1
    stored = b"".join(str(row).encode() for row in sqlite3.connect(tmp_path / "audit.sqlite").execute(
        "SELECT * FROM audit_records"))
    stored += (tmp_path / "audit.sqlite").read_bytes()
    # What is compressed in the file (entries that did not fail), as the trail reads it back.
    written = "".join(f"{e.payload_json}{e.source_json}{e.error}{e.destination}"
                      for e in AuditTrail(config["audit_url"]).entries())
    assert '"S1"' in written and '"S2"' in written
    for text in (run.stderr, stored.decode("utf-8", "replace"), written):
        assert sf.client_secret not in text
        assert "Bearer" not in text
    assert last_run(config).outcomes == {"succeeded": 1, "failed": 1}


def test_an_upsert_whose_answer_is_cut_off_is_sent_again_and_writes_each_account_once(sf, tmp_path):
    # An upsert by external id is safe to repeat: the second send finds the accounts the first one created.
    config = config_for(sf, tmp_path, batch_size=3)
    sf.add_fault("truncated", method="PATCH", path="/composite/sobjects/Account")
    run = send(tmp_path, config, [("sf_supplier_accounts", SIX)])
    assert run.returncode == 0
    assert sorted(accounts(sf)) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert len(sf.records("Account")) == 6
    assert [c["fault"] for c in collection_calls(sf)] == ["truncated", None, None]
    assert list(AuditTrail(config["audit_url"]).failures()) == []
