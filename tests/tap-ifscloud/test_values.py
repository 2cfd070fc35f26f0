"""Values arrive as IFS holds them: decimals to the last digit, timestamps in UTC, housekeeping fields kept."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from support.singer import run_tap


def test_decimals_survive_to_the_last_digit(ifs, tmp_path):
    exact = "123456789012345678901234.56789012345678"
    line = ifs.all_rows("ManSuppInvoiceHandling", "PostingProposalLineSet", ["Company", "InvoiceNo", "LineNo"])[0]
    key = {"Company": line["Company"], "InvoiceNo": line["InvoiceNo"], "LineNo": line["LineNo"]}
    ifs.change("PostingProposalLineSet", key, {"Amount": exact})
    run = run_tap(tmp_path, ifs.tap_config(), streams=["posting_proposal_lines"])
    got = next(r for r in run.records("posting_proposal_lines") if all(r[k] == v for k, v in key.items()))
    assert got["Amount"] == Decimal(exact)
    # On the wire too: the tap's RECORD line carries every digit as a JSON number.
    assert re.search(r'"Amount":' + re.escape(exact) + r"[,}]", run.stdout)


def test_many_digit_decimals_from_the_generator_match_the_server_text(ifs, tmp_path):
    raw = ifs.get("VoucherHandling", "VoucherRowSet", "$top=200&$orderby=Company,VoucherType,AccountingYear,VoucherNo,RowNo",
                  raw=True).text
    served = re.findall(r'"Amount":(-?[0-9.]+)', raw)
    run = run_tap(tmp_path, ifs.tap_config(), streams=["voucher_rows"])
    written = set(re.findall(r'"Amount":(-?[0-9.]+)', run.stdout))
    assert max(len(v.replace("-", "").replace(".", "")) for v in served) >= 20
    assert set(served) <= written


def test_timestamps_are_utc_whatever_the_tenant_zone(start_ifs, tmp_path):
    ifs = start_ifs(time_zone="America/New_York")
    local = ifs.get("CustomerHandling", "CustomerInfoSet", "$top=5&$orderby=CustomerId", utc=False)["value"]
    assert not local[0]["ChangedDate"].endswith("Z")  # without the header the tenant answers in its own zone
    run = run_tap(tmp_path, ifs.tap_config(), streams=["customers"])
    by_id = {r["CustomerId"]: r for r in run.records("customers")}
    for row in local:
        tapped = by_id[row["CustomerId"]]["ChangedDate"]
        assert tapped.endswith("Z")
        assert dt.datetime.fromisoformat(tapped.replace("Z", "+00:00")) == dt.datetime.fromisoformat(row["ChangedDate"])


def test_companies_filter_and_housekeeping_fields(ifs, tmp_path):
    run = run_tap(tmp_path, ifs.tap_config(companies=["20"]), streams=["vouchers"])
    vouchers = run.records("vouchers")
    assert vouchers and {v["Company"] for v in vouchers} == {"20"}
    assert vouchers[0]["luname"] == "Voucher" and "COMPANY=20^" in vouchers[0]["keyref"]
    assert len(vouchers) == ifs.count("VoucherHandling", "VoucherSet", "Company eq '20'")
