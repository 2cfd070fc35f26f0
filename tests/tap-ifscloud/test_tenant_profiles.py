"""tap-ifscloud on tenants that differ: the stand-in's default tenant and its `restricted` profile (another release,
a projection not granted, one company, $expand refused, no $count, local-time answers, counter ETags, pages capped at
300 rows without nextLink). What the tap emits is compared with what the default tenant holds, read directly."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from support.singer import BIN, discover, run_tap, select_streams

SCALE, SEED = 200, 7
PROFILES = ["default", "restricted"]

STREAMS = {  # stream: (projection, entity set, keys, change column, lines)
    "purchase_orders": ("PurchaseOrderHandling", "PurchaseOrderSet", ["OrderNo"], "ChangedDate", "PurchaseOrderLines"),
    "purchase_order_lines": ("PurchaseOrderHandling", "PurchaseOrderLineNopartSet", ["OrderNo", "LineNo", "ReleaseNo"],
                             "LastActivityDate", None),
    "suppliers": ("SupplierHandling", "SupplierInfoGeneralSet", ["SupplierId"], "ChangedDate", None),
    "customers": ("CustomerHandling", "CustomerInfoSet", ["CustomerId"], "ChangedDate", None),
    "posting_proposals": ("ManSuppInvoiceHandling", "PostingProposalHeadSet", ["Company", "InvoiceNo"], "Rowversion",
                          "PostingProposalLines"),
    "posting_proposal_lines": ("ManSuppInvoiceHandling", "PostingProposalLineSet", ["Company", "InvoiceNo", "LineNo"],
                               "Rowversion", None),
    "gl_accounts": ("AccountsHandling", "AccountSet", ["Company", "Account"], "ChangedDate", None),
    "vouchers": ("VoucherHandling", "VoucherSet", ["Company", "VoucherType", "AccountingYear", "VoucherNo"],
                 "DateChanged", None),
    "voucher_rows": ("VoucherHandling", "VoucherRowSet",
                     ["Company", "VoucherType", "AccountingYear", "VoucherNo", "RowNo"], "DateChanged", None),
    "accounting_dimensions": ("CodePartValuesHandling", "CodePartValueSet", ["Company", "CodePart", "CodePartValue"],
                              "ChangedDate", None),
    "work_orders": ("ActiveWorkOrdersHandling", "ActiveSeparateSet", ["WoNo"], "LastActivityDate", None),
}
# What the restricted tenant does not let the service user read: stream → (projection, HTTP status, setting to change)
LEFT_OUT = {
    "default": {},
    "restricted": {
        "suppliers": ("SupplierHandling", 404, "stream_overrides.suppliers.projection"),
        "vouchers": ("VoucherHandling", 403, "stream_overrides.vouchers.projection"),
        "voucher_rows": ("VoucherHandling", 403, "stream_overrides.voucher_rows.projection"),
        "accounting_dimensions": ("CodePartValuesHandling", 404, "stream_overrides.accounting_dimensions.projection"),
    },
}
VISIBLE_COMPANIES = {"default": {"10", "20", "30"}, "restricted": {"10"}}


@pytest.fixture
def tenants(start_ifs):
    """A stand-in playing the profile, and a default tenant holding the same data to read the truth from."""

    def start(profile: str):
        tenant = start_ifs(scale=SCALE, seed=SEED, profile=profile)
        reference = start_ifs(scale=SCALE, seed=SEED)
        return tenant, reference

    return start


def server_rows(ifs, stream: str) -> list[dict]:
    """Every row of the stream's set as the default tenant serves it (UTC, lines by $expand), decimals exact, with
    the ETag where the tap puts it."""
    projection, entity_set, keys, _, lines = STREAMS[stream]
    rows, skip = [], 0
    while True:
        query = f"$orderby={','.join(keys)}&$top=100&$skip={skip}" + (f"&$expand={lines}" if lines else "")
        page = json.loads(ifs.get(projection, entity_set, query, raw=True).text, parse_float=Decimal)["value"]
        if not page:
            return rows
        rows += [_as_the_tap_emits(row, lines) for row in page]
        skip += len(page)


def _as_the_tap_emits(row: dict, lines: str | None) -> dict:
    row = {("etag" if k == "@odata.etag" else k): v for k, v in row.items() if k == "@odata.etag" or "@odata." not in k}
    if lines:
        row[lines] = [_as_the_tap_emits(line, None) for line in row[lines]]
    return row


def without_etags(record: dict) -> dict:
    """ETags carry the tenant's objversion (a timestamp on one, a counter on the other): opaque, compared apart."""
    record = {k: v for k, v in record.items() if k != "etag"}
    for name, value in record.items():
        if isinstance(value, list):
            record[name] = [without_etags(v) for v in value]
    return record


PLAIN_SECRET_WARNING = "'client_secret' is not sealed"


def by_key(records: list[dict], stream: str) -> dict[tuple, dict]:
    keys = STREAMS[stream][2]
    return {tuple(r[k] for k in keys): without_etags(r) for r in records}


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def warnings_in(stderr: str) -> list[str]:
    """The tap's warnings about the tenant. The stand-in's published secret is given plain here, so the warning that
    it is not sealed is left out (tests/connector-core/test_secrets.py covers that one)."""
    return [line for line in stderr.splitlines() if "| WARNING " in line and PLAIN_SECRET_WARNING not in line]


def errors_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| ERROR " in line]


def objversion(etag: str) -> str:
    inner = base64.b64decode(etag[len('W/"'):-1]).decode()  # W/"<objid>:<objversion>"
    return inner[len('W/"'):-1].split(":", 1)[1]


# Discovery


@pytest.mark.parametrize("profile", PROFILES)
def test_discovery_leaves_out_exactly_the_unreadable_streams_with_one_warning_each(start_ifs, tmp_path, profile):
    tenant = start_ifs(scale=SCALE, seed=SEED, profile=profile)
    (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config()))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    catalog = json.loads(completed.stdout)
    left_out = LEFT_OUT[profile]
    assert {s["tap_stream_id"] for s in catalog["streams"]} == set(STREAMS) - set(left_out)
    warnings = warnings_in(completed.stderr)
    assert len(warnings) == len(left_out), warnings
    for stream, (projection, status, setting) in left_out.items():
        [warning] = [w for w in warnings if f"Stream '{stream}' left out of the catalog" in w]
        assert f"HTTP {status} on {projection}.svc/$metadata" in warning
        assert setting in warning and "built_in_streams" in warning
    # Each projection's $metadata is read once, however many streams live in it.
    metadata_reads = [r["path"] for r in tenant.requests_log() if r["path"].endswith("/$metadata")]
    assert len(metadata_reads) == len(set(metadata_reads)) == len({p for p, *_ in STREAMS.values()})
    # The lines travel with their headers whether or not the tenant expands them: same schema on both tenants.
    orders = next(s for s in catalog["streams"] if s["tap_stream_id"] == "purchase_orders")
    assert "LineNo" in orders["schema"]["properties"]["PurchaseOrderLines"]["items"]["properties"]


def test_a_stream_the_user_named_that_cannot_be_read_is_an_error_in_one_line(start_ifs, tmp_path):
    tenant = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    cases = {
        "built_in_streams": ({"built_in_streams": ["customers", "vouchers"]}, "vouchers", "HTTP 403"),
        "stream_overrides.accounting_dimensions": (
            {"stream_overrides": {"accounting_dimensions": {"paging": "seek"}}}, "accounting_dimensions", "HTTP 404"),
        "custom_streams[0]": (
            {"custom_streams": [{"name": "voucher_copy", "projection": "VoucherHandling", "entity_set": "VoucherSet"}]},
            "voucher_copy", "HTTP 403"),
    }
    for named_in, (settings, stream, status) in cases.items():
        (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config(**settings)))
        completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"),
                                    "--discover"], capture_output=True, text=True, timeout=120)
        assert completed.returncode == 1 and completed.stdout == "", named_in
        [error] = errors_in(completed.stderr)
        assert f"Stream '{stream}' (named in {named_in}) cannot be read: {status} on " in error, error
        assert "Traceback" not in completed.stderr


def test_a_stream_named_in_meltanos_select_rules_is_named_and_wildcards_name_nothing(start_ifs, tmp_path):
    """Meltano hands the tap its plugin's `select:` rules as TAP_IFSCLOUD__SELECT and builds the catalog from what
    discovery offers: a stream the rules name exactly must not vanish with a mere warning (the catalog would then
    select nothing and the job read nothing), while Meltano's default `*.*` names nothing."""
    tenant = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config()))

    def discover_with(rules: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TAP_IFSCLOUD__SELECT": json.dumps(rules)})

    named = discover_with(["purchase_orders.*", "vouchers.*"])
    assert named.returncode == 1 and named.stdout == ""
    [error] = errors_in(named.stderr)
    assert "Stream 'vouchers' (named in select (meltano.yml)) cannot be read: HTTP 403 on " in error, error
    assert "take it out of the plugin's select rules" in error

    wildcard = discover_with(["*.*", "!customers.*"])
    assert wildcard.returncode == 0, wildcard.stderr[-2000:]
    offered = {entry["tap_stream_id"] for entry in json.loads(wildcard.stdout)["streams"]}
    assert "vouchers" not in offered and "purchase_orders" in offered
    assert any("Stream 'vouchers' left out of the catalog" in w for w in warnings_in(wildcard.stderr))


def test_a_stream_selected_in_the_catalog_that_cannot_be_read_stops_the_sync(start_ifs, tmp_path):
    tenants_catalog = discover(tmp_path, start_ifs(scale=SCALE, seed=SEED).tap_config())  # where vouchers exist
    tenant = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    (tmp_path / "catalog.json").write_text(json.dumps(select_streams(tenants_catalog, ["customers", "vouchers"])))
    (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config()))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--catalog",
                                str(tmp_path / "catalog.json")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    assert '"type":"RECORD"' not in completed.stdout
    assert any("Stream 'vouchers' (named in the catalog) cannot be read: HTTP 403 on VoucherHandling.svc/$metadata"
               in line and "deselect it" in line for line in errors_in(completed.stderr)), completed.stderr[-2000:]
    # The streams the catalog does not select are not looked at: no $metadata of theirs is read.
    assert {r["path"].rsplit("/", 2)[-2] for r in tenant.requests_log() if r["path"].endswith("/$metadata")} == {
        "CustomerHandling.svc", "VoucherHandling.svc"}


def test_discovery_with_only_a_custom_streams_projection_needs_no_overrides(start_ifs, tmp_path):
    profile = tmp_path / "only-work-orders.json"
    profile.write_text(json.dumps({
        "missing_projections": sorted({p for p, *_ in STREAMS.values()} - {"ActiveWorkOrdersHandling"}),
        "renamed_projections": {"ActiveWorkOrdersHandling": "WorkOrderHandling"},
    }))
    tenant = start_ifs(scale=SCALE, seed=SEED, profile=str(profile))
    custom = [{"name": "work_orders_here", "projection": "WorkOrderHandling", "entity_set": "ActiveSeparateSet",
               "replication_key": "LastActivityDate"}]
    (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config(custom_streams=custom)))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert [s["tap_stream_id"] for s in json.loads(completed.stdout)["streams"]] == ["work_orders_here"]
    assert len(warnings_in(completed.stderr)) == len(STREAMS)  # one for each built-in stream
    # Offering no built-in stream at all silences them; the custom stream syncs.
    run = run_tap(tmp_path, tenant.tap_config(custom_streams=custom, built_in_streams=[]))
    assert not warnings_in(run.stderr)
    reference = start_ifs(scale=SCALE, seed=SEED)
    assert by_key(run.records("work_orders_here"), "work_orders") == by_key(server_rows(reference, "work_orders"),
                                                                             "work_orders")


def test_a_renamed_projection_is_read_with_its_override(tenants, tmp_path):
    tenant, reference = tenants("restricted")
    config = tenant.tap_config(stream_overrides={"suppliers": {"projection": "SuppliersHandling"}})
    run = run_tap(tmp_path, config, streams=["suppliers"])
    expected = [r for r in server_rows(reference, "suppliers") if r["Company"] == "10"]
    assert expected and by_key(run.records("suppliers"), "suppliers") == by_key(expected, "suppliers")


# Syncing


@pytest.mark.parametrize("profile", PROFILES)
def test_full_sync_and_incremental_rerun_emit_the_default_tenants_records_for_the_visible_companies(
        tenants, tmp_path, profile):
    tenant, reference = tenants(profile)
    # A company the restricted service user is not allowed: an empty answer, not an error.
    config = tenant.tap_config(companies=["10", "20"], lookback_seconds=0)
    companies = {"10", "20"} & VISIBLE_COMPANIES[profile]
    offered = [s for s in STREAMS if s not in LEFT_OUT[profile]]
    tenant.clear_requests()
    first = run_tap(tmp_path, config)

    for stream in offered:
        expected = [r for r in server_rows(reference, stream) if r["Company"] in companies]
        records = first.records(stream)
        assert expected, stream
        assert by_key(records, stream) == by_key(expected, stream), stream
        assert len(records) == len(expected), f"{stream}: a record emitted twice"
        change_column = STREAMS[stream][3]
        assert first.bookmark(stream) == max(r[change_column] for r in expected), stream
        assert all(r["etag"].startswith('W/"') for r in records)
    assert not set(LEFT_OUT[profile]) & {m.get("stream") for m in first.messages}
    orders = {o["OrderNo"]: o for o in first.records("purchase_orders")}
    assert sum(len(o["PurchaseOrderLines"]) for o in orders.values()) > 100  # more than one batch of orders a request

    log = tenant.requests_log()
    assert not any("$count" in r["path"] for r in log)  # the tap never relies on $count
    if profile == "restricted":
        # $expand refused once per stream, then the lines come from their own set, at most 50 orders a request.
        assert [r["status"] for r in log if "PurchaseOrderSet?" in r["path"] and "$expand" in r["path"]] == [501]
        assert [r["status"] for r in log if "PostingProposalHeadSet?" in r["path"] and "$expand" in r["path"]] == [400]
        line_reads = [r["path"] for r in log if "/PurchaseOrderLineNopartSet?" in r["path"] and "OrderNo%20eq" in r["path"]]
        assert len(line_reads) >= 3
        assert all(len(set(re.findall(r"OrderNo%20eq%20'([^']*)'", p))) <= 50 and len(p) < 4000 for p in line_reads)
        # Counter ETags arrive as IFS wrote them: nothing reads the objversion as a time.
        assert all(objversion(o["etag"]).isdigit() for o in orders.values())

    # Changes after the first run, made alike on both tenants.
    changed_at = (dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=5))
    stamp = changed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    company_10_orders = sorted(o for o, r in orders.items() if r["Company"] == "10")[:3]
    for ifs in (tenant, reference):
        for order_no in company_10_orders:
            ifs.change("PurchaseOrderSet", {"OrderNo": order_no}, {"NoteText": "changed after the first run"},
                       changed_at=stamp)
        line = orders[company_10_orders[0]]["PurchaseOrderLines"][0]
        ifs.change("PurchaseOrderLineNopartSet", {k: line[k] for k in STREAMS["purchase_order_lines"][2]},
                   {"BuyQtyDue": 42}, changed_at=stamp)
    second = run_tap(tmp_path, config, state=first.final_state)

    for stream in offered:
        change_column = STREAMS[stream][3]
        since = utc(first.bookmark(stream))
        expected = [r for r in server_rows(reference, stream)
                    if r["Company"] in companies and utc(r[change_column]) >= since]
        assert by_key(second.records(stream), stream) == by_key(expected, stream), stream
        # Bookmarks are exact UTC however the tenant writes its timestamps.
        assert second.bookmark(stream) == max(r[change_column] for r in expected), stream
    assert {o["OrderNo"] for o in second.records("purchase_orders")} >= set(company_10_orders)
    assert second.bookmark("purchase_orders") == stamp


@pytest.mark.parametrize("profile", PROFILES)
def test_server_paging_follows_next_link_or_falls_back_to_skip(start_ifs, tmp_path, profile):
    """Both tenants cap pages at 300 rows, below the 1,000 asked for; only the default one says where the next
    page starts."""
    tenant = start_ifs(scale=SCALE, seed=SEED, profile=profile, page_size=300)
    reference = start_ifs(scale=SCALE, seed=SEED)
    stream = "purchase_order_lines"
    config = tenant.tap_config(page_size=1000, stream_overrides={stream: {"paging": "server"}})
    tenant.clear_requests()
    run = run_tap(tmp_path, config, streams=[stream])
    expected = [r for r in server_rows(reference, stream) if r["Company"] in VISIBLE_COMPANIES[profile]]
    assert len(expected) > 300  # more than one page on either tenant
    assert by_key(run.records(stream), stream) == by_key(expected, stream)
    assert len(run.records(stream)) == len(expected)
    paths = [r["path"] for r in tenant.requests_log() if "PurchaseOrderLineNopartSet?" in r["path"]]
    assert any(("$skiptoken=" if profile == "default" else "$skip=") in p for p in paths), paths


def test_local_time_answers_give_utc_records_and_exact_filters(tenants, tmp_path):
    """The restricted tenant ignores X-Ifs-Time-Zone-Aware-Request: it answers in Stockholm time and reads filter
    literals as Stockholm wall-clock time, whatever offset they carry."""
    tenant, reference = tenants("restricted")
    local = tenant.get("CustomerHandling", "CustomerInfoSet", "$top=5&$orderby=CustomerId")["value"]
    assert all(re.search(r"[+-]0[12]:00$", r["ChangedDate"]) for r in local)
    # From the middle of the accounts changed under the offset the tenant's newest change carries: the rows stamped
    # with that very second are read, none before it.
    newest = tenant.get("AccountsHandling", "AccountSet", "$orderby=ChangedDate%20desc&$top=1")["value"][0]
    offset = newest["ChangedDate"][-6:]
    local_times = sorted(r["ChangedDate"] for r in tenant.get("AccountsHandling", "AccountSet", "$top=1000")["value"])
    same_offset = [t for t in local_times if t.endswith(offset)]
    start_date = utc(same_offset[len(same_offset) // 2]).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # An account changed half an hour before it: inside the hour the server is asked for in case a daylight-saving
    # change lies between, so the tap must drop it.
    early = next(r for r in server_rows(reference, "gl_accounts") if r["Company"] == "10" and r["ChangedDate"] < start_date)
    half_an_hour_before = (utc(start_date) - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for ifs in (tenant, reference):
        ifs.change("AccountSet", {"Company": "10", "Account": early["Account"]}, {"Description": "just before"},
                   changed_at=half_an_hour_before)
    run = run_tap(tmp_path, tenant.tap_config(start_date=start_date), streams=["customers", "gl_accounts"])
    for stream in ("customers", "gl_accounts"):
        change_column = STREAMS[stream][3]
        all_rows = [r for r in server_rows(reference, stream) if r["Company"] == "10"]
        expected = [r for r in all_rows if utc(r[change_column]) >= utc(start_date)]
        assert 0 < len(expected) < len(all_rows), stream
        assert by_key(run.records(stream), stream) == by_key(expected, stream)
        assert all(r[change_column].endswith("Z") for r in run.records(stream))
    assert start_date in {r["ChangedDate"] for r in run.records("gl_accounts")}
    assert early["Account"] not in {r["Account"] for r in run.records("gl_accounts")}
    filters = [r["path"] for r in tenant.requests_log() if "AccountSet?" in r["path"] and "%20ge%20" in r["path"]]
    assert filters and all("%2B0" in p for p in filters)  # written in the tenant's own offset


def test_an_integration_host_is_read_through_api_path(start_ifs, tmp_path):
    tenant = start_ifs(scale=SCALE, seed=SEED, profile="integration-host")
    assert re.match(r"^http://127\.0\.0\.1:\d+$", tenant.base_url)  # a host with a port
    (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config()))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    assert any("None of the 11 streams offered can be read" in e and "api_path (TAP_IFSCLOUD_API_PATH" in e
               for e in errors_in(completed.stderr)), completed.stderr[-2000:]
    run = run_tap(tmp_path, tenant.tap_config(api_path="/int/ifsapplications/projection/v1"), streams=["customers"])
    assert run.records("customers")
    assert not warnings_in(run.stderr)


def test_token_url_without_realm_is_enough(ifs, tmp_path):
    config = ifs.tap_config(token_url=f"{ifs.base_url}/auth/realms/mlc/protocol/openid-connect/token")
    del config["realm"]
    run = run_tap(tmp_path, config, streams=["customers"])
    assert run.records("customers")


def test_metadata_failures_that_are_not_answers_are_asked_again_never_leaving_a_stream_out(ifs, tmp_path):
    metadata = "VoucherHandling.svc/$metadata"
    for kind, details in [("status", {"status": 503}), ("rate_limit", {"retry_after": 1}), ("drop", {}),
                          ("malformed", {}), ("status", {"status": 401})]:
        ifs.fault(kind, 1, path_contains=metadata, **details)
    ifs.clear_requests()
    catalog = discover(tmp_path, ifs.tap_config())
    assert {"vouchers", "voucher_rows"} <= {s["tap_stream_id"] for s in catalog["streams"]}
    log = ifs.requests_log()
    assert [r["status"] for r in log if metadata in r["path"]][-2:] == [401, 200]  # ... then once with a new token
    assert len([r for r in log if r["path"].endswith("/token")]) == 2

    # When it keeps failing, discovery stops naming the projection instead of offering a catalog without it.
    ifs.fault("status", 50, status=503, path_contains="CodePartValuesHandling.svc/$metadata")
    (tmp_path / "config.json").write_text(json.dumps(ifs.tap_config(max_tries=2)))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1 and completed.stdout == ""
    assert "cannot read CodePartValuesHandling.svc/$metadata: HTTP 503" in completed.stderr
    assert "(still after 2 tries)" in completed.stderr


def test_lines_whose_set_is_not_there_leave_their_headers_offered_without_them(start_ifs, tmp_path):
    profile = tmp_path / "no-line-set.json"
    profile.write_text(json.dumps({"missing_entity_sets": ["PurchaseOrderHandling.PurchaseOrderLineNopartSet"]}))
    tenant = start_ifs(scale=SCALE, seed=SEED, profile=str(profile))
    (tmp_path / "config.json").write_text(json.dumps(tenant.tap_config()))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    streams = {s["tap_stream_id"]: s for s in json.loads(completed.stdout)["streams"]}
    assert "purchase_order_lines" not in streams
    assert "PurchaseOrderLines" not in streams["purchase_orders"]["schema"]["properties"]
    warnings = warnings_in(completed.stderr)
    assert len(warnings) == 2, warnings
    [lines] = [w for w in warnings if "Stream 'purchase_orders' offered without its lines PurchaseOrderLines" in w]
    assert "navigation 'PurchaseOrderLines' is bound to no entity set" in lines
    assert "stream_overrides.purchase_orders.expand" in lines
    assert any("Stream 'purchase_order_lines' left out of the catalog: PurchaseOrderHandling.svc has no entity set "
               "'PurchaseOrderLineNopartSet'" in w and "stream_overrides.purchase_order_lines.entity_set" in w
               for w in warnings)
    run = run_tap(tmp_path, tenant.tap_config(), streams=["purchase_orders"])
    reference = start_ifs(scale=SCALE, seed=SEED)
    headers = [{k: v for k, v in r.items() if k != "PurchaseOrderLines"} for r in server_rows(reference, "purchase_orders")]
    assert by_key(run.records("purchase_orders"), "purchase_orders") == by_key(headers, "purchase_orders")
    # Asking for the lines by name makes it an error.
    config = tenant.tap_config(stream_overrides={"purchase_orders": {"expand": "PurchaseOrderLines"}})
    (tmp_path / "config.json").write_text(json.dumps(config))
    completed = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(tmp_path / "config.json"), "--discover"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    [error] = errors_in(completed.stderr)
    assert "Stream 'purchase_orders' (named in stream_overrides.purchase_orders) cannot be read" in error
    assert "Set stream_overrides.purchase_orders.expand" in error
