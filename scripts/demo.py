"""The demo behind scripts/demo: the IFS Cloud stand-in → Meltano → local Delta tables, twice, with changes between.

Everything runs on the embedded defaults: the stand-in on 127.0.0.1:8600 (MLC_SANDBOX_PORT_BASE moves it), Delta
tables under output/delta/ifscloud/, the audit trail in .ml-connector/audit.sqlite. The tables are read back with
DuckDB's delta extension, an independent reader, not the library that wrote them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from ml_connector_core.secrets import KEY_ENV, KEY_FILE_ENV, generate_key, seal
from mlc_sandbox.ports import PortBaseError, default_port

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SANDBOX_SECRET = "mlc-sandbox-secret"  # the stand-in's published demo credential, not a real one
STATE_ID = "sandbox:tap-ifscloud-to-target-databricks"
DELTA = ROOT / "output" / "delta" / "ifscloud"
KEYS = {
    "purchase_orders": "OrderNo", "purchase_order_lines": "OrderNo, LineNo, ReleaseNo", "suppliers": "SupplierId",
    "customers": "CustomerId", "posting_proposals": "Company, InvoiceNo", "posting_proposal_lines": "Company, InvoiceNo, LineNo",
    "gl_accounts": "Company, Account", "vouchers": "Company, VoucherType, AccountingYear, VoucherNo",
    "voucher_rows": "Company, VoucherType, AccountingYear, VoucherNo, RowNo",
    "accounting_dimensions": "Company, CodePart, CodePartValue", "work_orders": "WoNo",
}


def start_sandbox(port: int, scale: int, seed: int) -> subprocess.Popen:
    log = open(ROOT / "output" / "sandbox-ifs.log", "w")
    process = subprocess.Popen(
        [str(BIN / "mlc-sandbox"), "serve", "ifs", "--port", str(port), "--scale", str(scale), "--seed", str(seed),
         "--data-dir", str(ROOT / ".sandbox-data")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the IFS stand-in stopped; see {log.name}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_admin/health", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.5)
    raise SystemExit("the IFS stand-in did not come up in time")


def read_ifs(port: int, path: str, query: str) -> list[dict]:
    """Read the stand-in as any OData client would (a token, then a GET), to pick records to change."""
    base = f"http://127.0.0.1:{port}"
    token = requests.post(
        f"{base}/auth/realms/mlc/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": "mlc-sandbox-client", "client_secret": SANDBOX_SECRET},
    ).json()["access_token"]
    response = requests.get(f"{base}/main/ifsapplications/projection/v1/{path}?{query}",
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()["value"]


def sealed_credentials() -> dict:
    """The stand-in's secret sealed, as production's are (README: Secrets), with a key for this demo unless one is set:
    Meltano writes the plugin's settings to .meltano/run/, where a killed run leaves them, so no plain secret goes in."""
    key = {} if os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV) else {KEY_ENV: generate_key()}
    return {**key, "TAP_IFSCLOUD_CLIENT_SECRET": seal(SANDBOX_SECRET, key=key[KEY_ENV].encode() if key else None)}


def run(*args: str, env: dict) -> None:
    subprocess.run([str(args[0]), *args[1:]], cwd=ROOT, check=True, env={**os.environ, **env})


def delta_reader():
    import duckdb
    import duckdb_extension_delta

    extension = next(Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension}'")
    return connection


def show_tables() -> None:
    reader = delta_reader()
    print(f"   {'table':<24} {'rows':>9} {'distinct keys':>14}")
    for table, keys in KEYS.items():
        location = DELTA / table
        if not location.exists():
            continue
        rows, distinct = reader.execute(
            f"SELECT count(*), count(DISTINCT ({keys})) FROM delta_scan('{location}')").fetchone()
        print(f"   {table:<24} {rows:>9,} {distinct:>14,}" + ("   DUPLICATES!" if rows != distinct else ""))


def show_finance_query() -> None:
    query = f"""
        SELECT p.Company, s.Name AS supplier, p.CurrencyCode AS currency, count(*) AS invoices,
               sum(p.GrossAmount) AS gross_amount
        FROM delta_scan('{DELTA / 'posting_proposals'}') p
        JOIN delta_scan('{DELTA / 'suppliers'}') s ON s.SupplierId = p.Identity
        GROUP BY ALL ORDER BY gross_amount DESC LIMIT 5"""
    print("   supplier invoices by supplier (top 5 by gross amount), read with DuckDB's delta extension:")
    for company, supplier, currency, invoices, gross in delta_reader().execute(query).fetchall():
        print(f"   {company:<4} {supplier:<34} {currency} {invoices:>4} invoices {gross:>22,.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    try:
        ifs_port = default_port("ifs")
    except PortBaseError as exc:
        raise SystemExit(str(exc)) from None
    parser.add_argument("--port", type=int, default=ifs_port, help="default: MLC_SANDBOX_PORT_BASE (default 8600)")
    parser.add_argument("--scale", type=int, default=2000, help="purchase orders in the stand-in")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    (ROOT / "output").mkdir(exist_ok=True)
    env = {"TAP_IFSCLOUD_BASE_URL": f"http://127.0.0.1:{args.port}", **sealed_credentials()}
    sandbox = start_sandbox(args.port, args.scale, args.seed)
    try:
        run(BIN / "meltano", "state", "clear", "--force", STATE_ID, env=env)
        print("\n== run 1: meltano run tap-ifscloud target-databricks (everything)")
        run(BIN / "meltano", "run", "tap-ifscloud", "target-databricks", env=env)
        show_tables()
        show_finance_query()

        print("\n== changing the stand-in: 2 purchase orders released, 1 supplier renamed, 1 customer added")
        admin = f"http://127.0.0.1:{args.port}/_admin"
        for order in read_ifs(args.port, "PurchaseOrderHandling.svc/PurchaseOrderSet", "$top=2&$orderby=OrderNo"):
            requests.patch(f"{admin}/records/PurchaseOrderSet",
                           json={"key": {"OrderNo": order["OrderNo"]}, "changes": {"Objstate": "Released"}}).raise_for_status()
        supplier = read_ifs(args.port, "SupplierHandling.svc/SupplierInfoGeneralSet", "$top=1&$orderby=SupplierId")[0]
        requests.patch(f"{admin}/records/SupplierInfoGeneralSet",
                       json={"key": {"SupplierId": supplier["SupplierId"]}, "changes": {"Name": supplier["Name"] + " AB"}}).raise_for_status()
        requests.post(f"{admin}/records/CustomerInfoSet",
                      json={"record": {"CustomerId": "DEMO-NEW-1", "Name": "Demo Customer Ltd", "Company": "10"}}).raise_for_status()

        print("\n== run 2: incremental from the saved bookmarks")
        run(BIN / "meltano", "run", "tap-ifscloud", "target-databricks", env=env)
        show_tables()
        print("\n== the audit trail of both runs (mlc-audit runs): run 2 wrote only the changes; what the look-back")
        print("   window re-read is 'unchanged' and was not written again")
        run(BIN / "mlc-audit", "runs", "--limit", "2", env=env)
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    sys.exit(main())
