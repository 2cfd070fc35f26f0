"""target-jaggaer when JAGGAER misbehaves, over real HTTP: 429 with Retry-After, 5xx, a token ended mid-run, an answer
lost after the create happened, JAGGAER down; and the secret never in the audit trail or the logs."""

from __future__ import annotations

import json
import subprocess
import time

from ml_connector_core.audit import AuditTrail
from ml_connector_core.secrets import generate_key, seal
from support.singer import BIN, _encode
from test_jaggaer_target_writes import config_for, last_run, messages, order, run_entries, send, supplier, writes
from test_jaggaer_target_writes import jg  # noqa: F401  (the stand-in fixture)

FOUR = [supplier(f"S{n}") for n in range(1, 5)]


def token_requests(jg) -> list[dict]:
    return [r for r in jg.requests() if r["path"] == "/oauth/token"]


def test_rate_limited_answers_are_waited_out_after_retry_after(jg, tmp_path):
    config = config_for(jg, tmp_path)
    jg.add_fault("rate_limit", count=2, method="POST", path="/api/v1/suppliers", retry_after=1)
    run = send(tmp_path, config, [("jaggaer_suppliers", FOUR)])
    assert run.returncode == 0
    assert [status for _, _, status in writes(jg)] == [429, 429, 201, 201, 201, 201]
    assert sorted(s["externalId"] for s in jg.suppliers()) == ["S1", "S2", "S3", "S4"]
    assert last_run(config).summary["rate_limited"] == 2


def test_server_errors_are_retried(jg, tmp_path):
    config = config_for(jg, tmp_path)
    jg.add_fault("status", count=1, status=503, method="GET", retry_after=0)
    jg.add_fault("status", count=1, status=500, method="POST")
    send(tmp_path, config, [("jaggaer_suppliers", FOUR[:2])])
    assert sorted(s["externalId"] for s in jg.suppliers()) == ["S1", "S2"]
    assert last_run(config).operations == {"insert": 2}


def test_a_token_ended_mid_run_is_replaced_once_and_the_call_retried(jg, tmp_path):
    config = config_for(jg, tmp_path, batch_size=1)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    target = subprocess.Popen([str(BIN / "target-jaggaer"), "--config", str(config_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [_encode(m) + "\n" for m in messages([("jaggaer_suppliers", FOUR), ("jaggaer_purchase_orders", [order("P1", "S1")])])]
    schema, suppliers, rest = lines[0], lines[1:5], lines[5:]
    target.stdin.write(schema + "".join(suppliers[:2]))
    target.stdin.flush()
    # batch_size 1: the first supplier is written once the second is read; then every token ends.
    deadline = time.monotonic() + 60
    while not any(r["method"] == "POST" and r["path"] == "/api/v1/suppliers" for r in jg.requests()):
        assert time.monotonic() < deadline and target.poll() is None, "the target never wrote the first supplier"
        time.sleep(0.05)
    jg.revoke_tokens()
    stdout, stderr = target.communicate("".join(suppliers[2:] + rest), timeout=120)
    assert target.returncode == 0, stderr[-3000:]
    assert len(token_requests(jg)) == 2
    assert [r["status"] for r in jg.requests() if r["path"].startswith("/api/")].count(401) == 1
    assert sorted(s["externalId"] for s in jg.suppliers()) == ["S1", "S2", "S3", "S4"]
    assert [o["externalId"] for o in jg.purchase_orders()] == ["P1"]
    assert last_run(config).summary["tokens_renewed"] == 1


def test_a_create_whose_answer_was_lost_is_not_duplicated(jg, tmp_path):
    config = config_for(jg, tmp_path)
    jg.add_fault("lost_answer", count=1, method="POST", path="/api/v1/purchase-orders")
    send(tmp_path, config, [("jaggaer_suppliers", [supplier("S1")]), ("jaggaer_purchase_orders", [order("P1", "S1")])])
    assert len(jg.purchase_orders()) == 1
    # The create happened, its answer was lost; the retry was refused as a duplicate, the order found and compared.
    assert [(m, p.rsplit("/", 1)[-1], s) for m, p, s in writes(jg) if "purchase-orders" in p][1:] == [
        ("POST", "purchase-orders", 409)]
    entry = next(e for e in run_entries(config) if e.stream == "jaggaer_purchase_orders")
    assert entry.outcome == "succeeded" and entry.operation == "unchanged"
    assert entry.payload["before"][0]["response"]["status"] == 409
    assert entry.payload["before"][0]["response"]["body"]["errors"][0]["code"] == "DUPLICATE_EXTERNAL_ID"


def test_jaggaer_down_stops_the_run_fails_the_rest_and_the_next_run_redoes_it(jg, tmp_path):
    config = config_for(jg, tmp_path, max_tries=2, batch_size=10)
    jg.add_fault("status", count=2, status=500, method="POST", path="/api/v1/suppliers")
    run = send(tmp_path, config, [("jaggaer_suppliers", FOUR)], check=False)
    assert run.returncode == 1 and run.states == []
    assert "JAGGAER kept answering HTTP 500 after 2 tries" in run.stderr
    assert "Traceback" not in run.stderr
    trail = AuditTrail(config["audit_url"])
    failed = {f.key["externalId"]: f.error for f in trail.failures()}
    assert sorted(failed) == ["S1", "S2", "S3", "S4"]
    assert failed["S2"].startswith("not tried: POST /api/v1/suppliers: JAGGAER kept answering HTTP 500")
    assert jg.suppliers() == []

    send(tmp_path, config, [])
    assert sorted(s["externalId"] for s in jg.suppliers()) == ["S1", "S2", "S3", "S4"]
    assert list(trail.failures()) == []


def test_a_sealed_secret_works_and_never_reaches_the_audit_trail_or_the_logs(jg, tmp_path):
    key = generate_key()
    config = config_for(jg, tmp_path, client_secret=seal(jg.client_secret, key.encode()))
    jg.add_fault("status", count=1, status=401, method="POST")  # a refused token is logged, with its error
    run = send(tmp_path, config, [("jaggaer_suppliers", FOUR[:1])], env={"MLC_SECRET_KEY": key})
    assert len(jg.suppliers()) == 1
    assert jg.client_secret not in run.stderr and jg.client_secret not in run.stdout
    audit_file = (tmp_path / "audit.sqlite").read_bytes()
    assert jg.client_secret.encode() not in audit_file

    wrong = send(tmp_path, {**config, "client_secret": "not-the-secret"}, [("jaggaer_suppliers", FOUR[1:2])], check=False)
    assert wrong.returncode == 1
    assert "refused client 'mlc-jaggaer-client' (HTTP 401): invalid_client: Client authentication failed" in wrong.stderr
    assert "not-the-secret" not in wrong.stderr
