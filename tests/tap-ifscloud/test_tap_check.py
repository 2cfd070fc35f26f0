"""tap-ifscloud-check against the stand-in: a good configuration fits; each broken one gets its own line naming the
one thing to change; the secret is never printed."""

from __future__ import annotations

import json
import os
import subprocess

from support.ifs import CLIENT_SECRET
from support.singer import BIN

SCALE, SEED = 200, 7


def run_check(tmp_path, config: dict, *, output: str = "json",
              env: dict | None = None) -> tuple[int, list[dict] | str, str]:
    path = tmp_path / "check-config.json"
    path.write_text(json.dumps(config))
    completed = subprocess.run([str(BIN / "tap-ifscloud-check"), "--config", str(path), "--format", output],
                               capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
    assert CLIENT_SECRET not in completed.stdout + completed.stderr
    results = json.loads(completed.stdout) if output == "json" else completed.stdout
    return completed.returncode, results, completed.stderr


def by_check(results: list[dict]) -> dict[str, dict]:
    return {r["check"]: r for r in results}


def test_a_configuration_that_fits_passes_every_check(start_ifs, tmp_path):
    ifs = start_ifs(scale=SCALE, seed=SEED)
    status, results, _ = run_check(tmp_path, ifs.tap_config(companies=["10", "20"]))
    assert status == 0
    assert {r["status"] for r in results} == {"pass"}, [r for r in results if r["status"] != "pass"]
    checks = by_check(results)
    assert checks["token"]["detail"].endswith("valid for 180 s")
    assert len([c for c in checks if c.startswith("stream ") and not c.endswith(" lines")]) == 11
    assert "ChangedDate present, newest change 20" in checks["stream purchase_orders"]["detail"]
    assert checks["stream purchase_orders lines"]["detail"] == "$expand=PurchaseOrderLines accepted"
    assert checks["company 20"]["detail"].startswith("visible")
    # Read-only: the first row of each set, keys and change column only, and never $count.
    paths = [r["path"] for r in ifs.requests_log()]
    assert all(r["method"] in ("GET", "POST") for r in ifs.requests_log())
    assert [p for p in paths if "/token" in p] and not [p for p in paths if "$count" in p]
    assert all("$top=1" in p for p in paths if "Set?" in p)


def test_the_restricted_tenant_fits_with_warnings_for_what_the_tap_would_leave_out(start_ifs, tmp_path):
    ifs = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    status, table, _ = run_check(tmp_path, ifs.tap_config(companies=["10", "20"]), output="table")
    status_json, results, _ = run_check(tmp_path, ifs.tap_config(companies=["10", "20"]))
    assert status == status_json == 0  # warnings only: the job runs, with less
    checks = by_check(results)
    for stream, (projection, http) in {"suppliers": ("SupplierHandling", 404), "vouchers": ("VoucherHandling", 403),
                                       "voucher_rows": ("VoucherHandling", 403),
                                       "accounting_dimensions": ("CodePartValuesHandling", 404)}.items():
        result = checks[f"stream {stream}"]
        assert result["status"] == "warn"
        assert f"HTTP {http} on {projection}.svc/$metadata" in result["detail"]
        assert f"stream_overrides.{stream}.projection" in result["fix"] and "TAP_IFSCLOUD_BUILT_IN_STREAMS" in result["fix"]
    lines = checks["stream purchase_orders lines"]
    assert lines["status"] == "pass"
    assert lines["detail"].startswith("lines read from PurchaseOrderLineNopartSet (expand refused: HTTP 501")
    assert checks["stream posting_proposals lines"]["detail"].startswith(
        "lines read from PostingProposalLineSet (expand refused: HTTP 400")
    assert checks["timestamps"]["status"] == "pass" and "local time" in checks["timestamps"]["detail"]
    assert checks["company 10"]["status"] == "pass"
    company_20 = checks["company 20"]
    assert company_20["status"] == "warn"
    assert "the service user may not be allowed company 20" in company_20["fix"]
    assert "TAP_IFSCLOUD_COMPANIES" in company_20["fix"]
    assert "→ the service user may not be allowed company 20" in table


def test_a_wrong_secret_is_one_line_naming_client_secret(ifs, tmp_path):
    wrong = "not-the-secret-4711"
    status, results, stderr = run_check(tmp_path, ifs.tap_config(client_secret=wrong))
    assert status == 1
    [result] = results  # nothing further is asked with no token
    assert (result["check"], result["status"]) == ("token", "fail")
    assert "HTTP 401" in result["detail"] and "invalid_client" in result["detail"]
    assert result["fix"].startswith("set client_secret (TAP_IFSCLOUD_CLIENT_SECRET)")
    assert wrong not in json.dumps(results) + stderr


def test_a_wrong_realm_is_one_line_naming_realm(ifs, tmp_path):
    status, results, _ = run_check(tmp_path, ifs.tap_config(realm="acme-prod"))
    assert status == 1
    [result] = results
    assert (result["check"], result["status"]) == ("token", "fail")
    assert "/auth/realms/acme-prod/" in result["detail"] and "HTTP 404" in result["detail"]
    assert result["fix"].startswith("set realm (TAP_IFSCLOUD_REALM)")


def test_a_forbidden_projection_named_in_built_in_streams_fails(start_ifs, tmp_path):
    ifs = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    status, results, _ = run_check(tmp_path, ifs.tap_config(built_in_streams=["customers", "vouchers"]))
    assert status == 1
    checks = by_check(results)
    assert set(checks) == {"token", "stream customers", "stream vouchers", "timestamps"}
    assert checks["stream customers"]["status"] == "pass"
    vouchers = checks["stream vouchers"]
    assert vouchers["status"] == "fail"
    assert "HTTP 403 on VoucherHandling.svc/$metadata" in vouchers["detail"]
    assert "named in built_in_streams" in vouchers["detail"]
    assert vouchers["fix"].startswith("grant the IFS service user a permission set that includes VoucherHandling")


def test_a_renamed_projection_fits_with_its_override(start_ifs, tmp_path):
    ifs = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    config = ifs.tap_config(built_in_streams=["suppliers"],
                            stream_overrides={"suppliers": {"projection": "SuppliersHandling"}})
    status, results, _ = run_check(tmp_path, config)
    assert status == 0
    assert by_check(results)["stream suppliers"]["detail"].startswith(
        "SuppliersHandling.svc/SupplierInfoGeneralSet readable")


def test_under_meltano_only_the_streams_the_select_rules_pick_are_judged(start_ifs, tmp_path):
    """tap-ifscloud-jira selects purchase orders and work orders: vouchers it never reads are not its business; a
    stream its rules name exactly is named, so one that cannot be read fails (the run would stop on it too)."""
    ifs = start_ifs(scale=SCALE, seed=SEED, profile="restricted")
    rules = {"TAP_IFSCLOUD__SELECT": json.dumps(["purchase_orders.*", "work_orders.*"])}
    status, results, _ = run_check(tmp_path, ifs.tap_config(), env=rules)
    assert status == 0
    streams = {r["check"] for r in results if r["check"].startswith("stream ") and not r["check"].endswith(" lines")}
    assert streams == {"stream purchase_orders", "stream work_orders"}

    rules = {"TAP_IFSCLOUD__SELECT": json.dumps(["purchase_orders.*", "vouchers.*"])}
    status, results, _ = run_check(tmp_path, ifs.tap_config(), env=rules)
    assert status == 1
    vouchers = by_check(results)["stream vouchers"]
    assert vouchers["status"] == "fail" and "named in select (meltano.yml)" in vouchers["detail"]
