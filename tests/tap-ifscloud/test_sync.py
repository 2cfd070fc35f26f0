"""Full and incremental syncs against the IFS stand-in: every row once, then exactly the changes."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from support.singer import discover, run_tap

BUILT_IN = {
    "purchase_orders": ("PurchaseOrderHandling", "PurchaseOrderSet", "ChangedDate"),
    "purchase_order_lines": ("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", "LastActivityDate"),
    "suppliers": ("SupplierHandling", "SupplierInfoGeneralSet", "ChangedDate"),
    "customers": ("CustomerHandling", "CustomerInfoSet", "ChangedDate"),
    "posting_proposals": ("ManSuppInvoiceHandling", "PostingProposalHeadSet", "Rowversion"),
    "posting_proposal_lines": ("ManSuppInvoiceHandling", "PostingProposalLineSet", "Rowversion"),
    "gl_accounts": ("AccountsHandling", "AccountSet", "ChangedDate"),
    "vouchers": ("VoucherHandling", "VoucherSet", "DateChanged"),
    "voucher_rows": ("VoucherHandling", "VoucherRowSet", "DateChanged"),
    "accounting_dimensions": ("CodePartValuesHandling", "CodePartValueSet", "ChangedDate"),
    "work_orders": ("ActiveWorkOrdersHandling", "ActiveSeparateSet", "LastActivityDate"),
}


def keys_of(records, key_properties):
    return [tuple(r[k] for k in key_properties) for r in records]


def test_discovery_describes_every_set_from_metadata(ifs, tmp_path):
    catalog = discover(tmp_path, ifs.tap_config())
    by_name = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert set(by_name) == set(BUILT_IN)
    for name, (_, _, change_column) in BUILT_IN.items():
        root = next(m["metadata"] for m in by_name[name]["metadata"] if m["breadcrumb"] == [])
        assert root["valid-replication-keys"] == [change_column]
        assert by_name[name]["replication_method"] == "INCREMENTAL"
        assert by_name[name]["schema"]["properties"][change_column]["format"] == "date-time"
    assert by_name["posting_proposals"]["key_properties"] == ["Company", "InvoiceNo"]
    assert by_name["vouchers"]["key_properties"] == ["Company", "VoucherType", "AccountingYear", "VoucherNo"]
    lines = by_name["purchase_orders"]["schema"]["properties"]["PurchaseOrderLines"]
    assert lines["type"] == ["array", "null"] and "LineNo" in lines["items"]["properties"]


def test_full_sync_reads_every_row_exactly_once(ifs, tmp_path):
    run = run_tap(tmp_path, ifs.tap_config(page_size=37))
    for name, (projection, entity_set, change_column) in BUILT_IN.items():
        schema = run.schema(name)
        records = run.records(name)
        keys = keys_of(records, schema["key_properties"])
        assert len(keys) == len(set(keys)), f"{name}: duplicates in one full sync"
        assert len(records) == ifs.count(projection, entity_set), name
        assert records, f"{name}: the stand-in should hold rows"
        assert run.bookmark(name) == max(r[change_column] for r in records)
        assert all(r["etag"].startswith('W/"') for r in records)


def stream_order(run) -> list[str]:
    """The streams in the order their records came, each once (a stream sent in two runs of records would show twice)."""
    order = []
    for message in run.messages:
        if message["type"] == "RECORD" and (not order or order[-1] != message["stream"]):
            order.append(message["stream"])
    return order


def test_streams_come_after_the_streams_they_reference(ifs, tmp_path):
    """Suppliers before purchase orders before their lines (not by name, where lines come first): a target writing
    parents first never holds a stream back, nor the checkpoints after it. A custom stream says what it references."""
    custom = {"name": "a_supplier_documents", "projection": "SupplierHandling", "entity_set": "SupplierInfoGeneralSet",
              "replication_key": "ChangedDate", "references": ["suppliers", "purchase_orders"]}
    run = run_tap(tmp_path, ifs.tap_config(page_size=500, custom_streams=[custom]))
    order = stream_order(run)
    assert sorted(order) == sorted({*BUILT_IN, "a_supplier_documents"}), order  # each stream in one piece
    for child, parents in {"purchase_orders": ["suppliers"], "purchase_order_lines": ["purchase_orders"],
                           "posting_proposals": ["suppliers", "purchase_orders"],
                           "posting_proposal_lines": ["posting_proposals"],
                           "voucher_rows": ["vouchers", "gl_accounts", "accounting_dimensions"],
                           "a_supplier_documents": ["suppliers", "purchase_orders"]}.items():
        assert all(order.index(parent) < order.index(child) for parent in parents), order
    assert order[0] == "accounting_dimensions"  # otherwise by name, as singer-sdk orders streams


@pytest.mark.parametrize("stream", ["suppliers", "purchase_order_lines"])  # top/skip service, nextLink service
def test_server_page_cap_smaller_than_page_size_loses_nothing(start_ifs, tmp_path, stream):
    ifs = start_ifs(page_size=10)
    projection, entity_set, _ = BUILT_IN[stream]
    run = run_tap(tmp_path, ifs.tap_config(page_size=25), streams=[stream])
    assert len(run.records(stream)) == ifs.count(projection, entity_set)


@pytest.mark.parametrize("stream", ["suppliers", "purchase_order_lines"])
def test_server_paging_mode_follows_next_link_or_skips(start_ifs, tmp_path, stream):
    ifs = start_ifs(page_size=10)
    projection, entity_set, _ = BUILT_IN[stream]
    ifs.clear_requests()
    run = run_tap(tmp_path, ifs.tap_config(page_size=25, stream_overrides={stream: {"paging": "server"}}), streams=[stream])
    records = run.records(stream)
    keys = keys_of(records, run.schema(stream)["key_properties"])
    assert len(keys) == len(set(keys)) == ifs.count(projection, entity_set)
    paths = [r["path"] for r in ifs.requests_log() if entity_set in r["path"]]
    marker = "$skiptoken" if stream == "purchase_order_lines" else "$skip="
    assert any(marker in p for p in paths), paths[:5]
    assert not any("+" in p.split("?", 1)[-1] for p in paths)


def test_incremental_run_reads_exactly_the_changes(ifs, tmp_path):
    config = ifs.tap_config(lookback_seconds=0)
    first = run_tap(tmp_path, config, streams=["suppliers", "customers"])
    suppliers = first.records("suppliers")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    changed_at = (now + dt.timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for supplier in suppliers[:3]:
        ifs.change("SupplierInfoGeneralSet", {"SupplierId": supplier["SupplierId"]}, {"Name": supplier["Name"] + " (new)"},
                   changed_at=changed_at)
    ifs.create("CustomerInfoSet", {"CustomerId": "NEW-CUST-1", "Name": "Newly Added Oy", "Company": "10"})

    second = run_tap(tmp_path, config, streams=["suppliers", "customers"], state=first.final_state)
    # ge on the bookmark also re-reads the rows stamped with the bookmark's own second (for the target to absorb).
    supplier_tie = {s["SupplierId"] for s in suppliers if s["ChangedDate"] == first.bookmark("suppliers")}
    customer_tie = {c["CustomerId"] for c in first.records("customers") if c["ChangedDate"] == first.bookmark("customers")}
    got = {r["SupplierId"]: r for r in second.records("suppliers")}
    assert set(got) == {s["SupplierId"] for s in suppliers[:3]} | supplier_tie
    assert all(got[s["SupplierId"]]["Name"].endswith(" (new)") for s in suppliers[:3])
    assert {r["CustomerId"] for r in second.records("customers")} == {"NEW-CUST-1"} | customer_tie
    assert second.bookmark("suppliers") == changed_at


def test_rows_sharing_the_bookmark_second_or_committed_late_are_not_lost(ifs, tmp_path):
    config = ifs.tap_config(lookback_seconds=0)
    first = run_tap(tmp_path, config, streams=["gl_accounts"])
    bookmark = first.bookmark("gl_accounts")
    at_bookmark = [r for r in first.records("gl_accounts") if r["ChangedDate"] == bookmark]
    # Another account committed after the first sync but stamped with the same second as the bookmark.
    late = [r for r in first.records("gl_accounts") if r["ChangedDate"] < bookmark][0]
    ifs.change("AccountSet", {"Company": late["Company"], "Account": late["Account"]}, {"Description": "late commit"},
               changed_at=bookmark)
    second = run_tap(tmp_path, config, streams=["gl_accounts"], state=first.final_state)
    got = {(r["Company"], r["Account"]) for r in second.records("gl_accounts")}
    assert (late["Company"], late["Account"]) in got
    assert {(r["Company"], r["Account"]) for r in at_bookmark} <= got  # ge, never gt


def test_lookback_re_reads_the_window_but_never_moves_the_bookmark_back(ifs, tmp_path):
    first = run_tap(tmp_path, ifs.tap_config(lookback_seconds=0), streams=["customers"])
    bookmark = first.bookmark("customers")
    window_start = (dt.datetime.fromisoformat(bookmark.replace("Z", "+00:00")) - dt.timedelta(days=30))
    expected = [r for r in first.records("customers")
                if dt.datetime.fromisoformat(r["ChangedDate"].replace("Z", "+00:00")) >= window_start]
    second = run_tap(tmp_path, ifs.tap_config(lookback_seconds=30 * 86400), streams=["customers"], state=first.final_state)
    assert len(second.records("customers")) == len(expected)
    assert all(s["bookmarks"]["customers"]["replication_key_value"] == bookmark
               for s in second.states if "customers" in s.get("bookmarks", {}))


def test_records_changed_during_a_sync_never_push_unread_rows_out_of_reach(ifs, tmp_path):
    """With $skip paging, changing an already-read row shifts the unread ones back and some are never read."""
    projection, entity_set, change_column = BUILT_IN["purchase_order_lines"]
    keys = ["OrderNo", "LineNo", "ReleaseNo"]
    expected = {tuple(r[k] for k in keys) for r in ifs.all_rows(projection, entity_set, keys)}
    ifs.fault("delay", 1000, delay_seconds=0.2, path_contains=entity_set)
    ifs.clear_requests()
    result = {}

    def sync():
        config = ifs.tap_config(page_size=20, lookback_seconds=0, **SYNC_OVERRIDES)
        result["run"] = run_tap(tmp_path, config, streams=["purchase_order_lines"])

    worker = threading.Thread(target=sync)
    worker.start()
    while len([r for r in ifs.requests_log() if entity_set in r["path"]]) < 3:  # three pages read
        time.sleep(0.05)
    oldest_first = sorted(ifs.all_rows(projection, entity_set, keys), key=lambda r: [r[change_column]] + [r[k] for k in keys])
    for line in oldest_first[:10]:
        ifs.change(entity_set, {k: line[k] for k in keys}, {"Description": "changed while syncing"})
    worker.join()
    got = {tuple(r[k] for k in keys) for r in result["run"].records("purchase_order_lines")}
    assert expected <= got


SYNC_OVERRIDES: dict = {}


def test_a_state_follows_every_interval_of_records_with_the_exact_bookmark_of_what_was_sent(ifs, tmp_path):
    """Mid-stream STATEs: at least one per state_interval_records records of a stream, each bookmark the change
    timestamp of the last record sent (never one of the page fetched ahead); resuming from any of them loses nothing
    and re-reads only the rows stamped with the bookmark's own second."""
    stream = "purchase_order_lines"
    projection, entity_set, change_column = BUILT_IN[stream]
    config = ifs.tap_config(page_size=37, state_interval_records=50, lookback_seconds=0)
    run = run_tap(tmp_path, config, streams=[stream, "suppliers"])
    keys = run.schema(stream)["key_properties"]

    sent: dict[str, list[dict]] = {}
    since_state: dict[str, int] = {}
    checkpoints = []  # (records of the stream sent before it, its bookmark)
    for message in run.messages:
        if message["type"] == "RECORD":
            sent.setdefault(message["stream"], []).append(message["record"])
            since_state[message["stream"]] = since_state.get(message["stream"], 0) + 1
            assert since_state[message["stream"]] <= 50, "a STATE was due after 50 records"
        elif message["type"] == "STATE":
            since_state.clear()
            for name, bookmark in message["value"].get("bookmarks", {}).items():
                assert "progress_markers" not in bookmark, f"{name}: the bookmark is resumable mid-stream"
                assert bookmark["replication_key_value"] == sent[name][-1][BUILT_IN[name][2]], name
            if stream in message["value"].get("bookmarks", {}):
                checkpoints.append((len(sent[stream]), message["value"]))
    total = ifs.count(projection, entity_set)
    assert len(sent[stream]) == total and len(checkpoints) >= total // 50

    # A run stopped after the middle checkpoint resumes from it: every row is read, the tie rows only again.
    done, state = checkpoints[len(checkpoints) // 2]
    assert 0 < done < total
    resumed = run_tap(tmp_path, config, streams=[stream], state=state)
    before = {tuple(r[k] for k in keys) for r in sent[stream][:done]}
    after = {tuple(r[k] for k in keys) for r in resumed.records(stream)}
    bookmark = state["bookmarks"][stream]["replication_key_value"]
    ties = {tuple(r[k] for k in keys) for r in sent[stream][:done] if r[change_column] == bookmark}
    assert before | after == {tuple(r[k] for k in keys) for r in sent[stream]}
    assert before & after == ties and len(resumed.records(stream)) == total - done + len(ties)


def test_a_stream_without_a_change_column_stays_a_full_read(ifs, tmp_path):
    config = ifs.tap_config(page_size=7, state_interval_records=5, custom_streams=[
        {"name": "suppliers_full", "projection": "SupplierHandling", "entity_set": "SupplierInfoGeneralSet"}])
    first = run_tap(tmp_path, config, streams=["suppliers_full"])
    assert all("suppliers_full" not in s.get("bookmarks", {}) or
               "replication_key_value" not in s["bookmarks"]["suppliers_full"] for s in first.states)
    again = run_tap(tmp_path, config, streams=["suppliers_full"], state=first.final_state)
    assert len(again.records("suppliers_full")) == len(first.records("suppliers_full")) == \
        ifs.count("SupplierHandling", "SupplierInfoGeneralSet")
