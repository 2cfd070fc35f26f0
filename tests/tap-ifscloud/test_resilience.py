"""What a real tenant does to a long sync: short tokens, 429 storms, 5xx, dropped connections, truncated JSON."""

from __future__ import annotations

import re
import threading
import time

from support.singer import run_tap

STREAM, PROJECTION, ENTITY_SET = "purchase_order_lines", "PurchaseOrderHandling", "PurchaseOrderLineNopartSet"


def _assert_complete(ifs, run):
    records = run.records(STREAM)
    keys = {(r["OrderNo"], r["LineNo"], r["ReleaseNo"]) for r in records}
    assert len(keys) == len(records) == ifs.count(PROJECTION, ENTITY_SET)


def test_tokens_expiring_during_a_sync_are_refreshed(start_ifs, tmp_path):
    ifs = start_ifs(token_ttl=1)
    ifs.fault("delay", 30, delay_seconds=0.2, path_contains=ENTITY_SET)
    run = run_tap(tmp_path, ifs.tap_config(page_size=20), streams=[STREAM])
    _assert_complete(ifs, run)
    statuses = [r["status"] for r in ifs.requests_log() if ENTITY_SET in r["path"]]
    assert 401 not in statuses  # refreshed ahead of expiry, not after a refusal
    assert "Obtained an access token" in run.stderr and run.stderr.count("Obtained an access token") >= 3


def test_a_revoked_token_is_replaced_after_one_401(ifs, tmp_path):
    ifs.fault("delay", 6, delay_seconds=0.4, path_contains=ENTITY_SET)
    ifs.clear_requests()

    def revoke_once_the_sync_reads():
        while not any(ENTITY_SET in r["path"] for r in ifs.requests_log()):
            time.sleep(0.05)
        ifs.revoke_tokens()

    revoker = threading.Thread(target=revoke_once_the_sync_reads)
    revoker.start()
    run = run_tap(tmp_path, ifs.tap_config(page_size=20), streams=[STREAM])
    revoker.join()
    _assert_complete(ifs, run)
    statuses = [r["status"] for r in ifs.requests_log() if ENTITY_SET in r["path"]]
    assert statuses.count(401) == 1


def test_a_429_storm_is_waited_out_honouring_retry_after(ifs, tmp_path):
    ifs.fault("rate_limit", 4, retry_after=1, path_contains=ENTITY_SET)
    run = run_tap(tmp_path, ifs.tap_config(page_size=50), streams=[STREAM])
    _assert_complete(ifs, run)
    assert [r["status"] for r in ifs.requests_log() if ENTITY_SET in r["path"]].count(429) == 4
    # Waits of a second or two are routine: no line at INFO, and none of the SDK's ERROR "Backing off" lines.
    assert "Waiting " not in run.stderr and "Backing off" not in run.stderr, run.stderr


def test_a_long_wait_is_announced_in_one_line(ifs, tmp_path):
    ifs.fault("rate_limit", 1, retry_after=6, path_contains=ENTITY_SET)
    run = run_tap(tmp_path, ifs.tap_config(page_size=500), streams=[STREAM])
    _assert_complete(ifs, run)
    waits = [line for line in run.stderr.splitlines() if "Waiting " in line]
    assert len(waits) == 1, run.stderr
    assert re.search(rf"Waiting [67]\.\d s before retrying GET {re.escape(ifs.base_url)}/\S*/{ENTITY_SET} "
                     r"\(HTTP 429, Retry-After 6\), attempt 2 of \d+$", waits[0]), waits[0]
    assert "$filter" not in waits[0] and "?" not in waits[0]


def test_the_servers_own_rate_limit_is_survived(start_ifs, tmp_path):
    ifs = start_ifs(rate_limit=40)
    run = run_tap(tmp_path, ifs.tap_config(page_size=25), streams=[STREAM], timeout=240)
    _assert_complete(ifs, run)


def test_5xx_and_dropped_connections_are_retried(ifs, tmp_path):
    ifs.fault("status", 2, status=503, path_contains=ENTITY_SET)
    ifs.fault("drop", 2, path_contains=ENTITY_SET)
    ifs.fault("status", 1, status=502, path_contains=ENTITY_SET)
    run = run_tap(tmp_path, ifs.tap_config(page_size=50), streams=[STREAM])
    _assert_complete(ifs, run)


def test_one_truncated_response_is_retried(ifs, tmp_path):
    ifs.fault("malformed", 1, path_contains=ENTITY_SET)
    run = run_tap(tmp_path, ifs.tap_config(page_size=50), streams=[STREAM])
    _assert_complete(ifs, run)


def test_persistently_malformed_json_fails_clearly_and_state_does_not_advance(ifs, tmp_path):
    config = ifs.tap_config(page_size=50, max_tries=3, lookback_seconds=0)
    first = run_tap(tmp_path, config, streams=[STREAM])
    bookmark = first.bookmark(STREAM)
    line = first.records(STREAM)[0]
    key = {"OrderNo": line["OrderNo"], "LineNo": line["LineNo"], "ReleaseNo": line["ReleaseNo"]}
    ifs.change(ENTITY_SET, key, {"BuyQtyDue": 7})

    ifs.fault("malformed", 100, path_contains=ENTITY_SET)
    broken = run_tap(tmp_path, config, streams=[STREAM], state=first.final_state, check=False)
    assert broken.returncode != 0
    assert "PurchaseOrderLineNopartSet" in broken.stderr and "not valid JSON" in broken.stderr
    assert not broken.records(STREAM)
    assert all(s["bookmarks"][STREAM]["replication_key_value"] == bookmark for s in broken.states if STREAM in s.get("bookmarks", {}))

    ifs.clear_faults()
    recovered = run_tap(tmp_path, config, streams=[STREAM], state=first.final_state)
    ties = {(r["OrderNo"], r["LineNo"], r["ReleaseNo"]) for r in first.records(STREAM) if r["LastActivityDate"] == bookmark}
    assert {(r["OrderNo"], r["LineNo"], r["ReleaseNo"]) for r in recovered.records(STREAM)} == ties | {tuple(key.values())}
