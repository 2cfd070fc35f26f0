"""The demo behind scripts/demo: sandbox IFS Cloud → Meltano → local output, twice, with changes in between."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
SANDBOX_SECRET = "mlc-sandbox-secret"  # the stand-in's published demo credential, not a real one


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


def meltano(*args: str, env: dict | None = None) -> None:
    subprocess.run([str(BIN / "meltano"), *args], cwd=ROOT, check=True, env={**os.environ, **(env or {})})


def count_records(folder: Path) -> Counter:
    counts: Counter = Counter()
    for path in sorted(folder.glob("*.jsonl")):
        counts[path.stem] = sum(1 for _ in path.open())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--scale", type=int, default=2000, help="purchase orders in the stand-in")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    output = ROOT / "output"
    output.mkdir(exist_ok=True)
    admin = f"http://127.0.0.1:{args.port}/_admin"
    env = {
        "TAP_IFSCLOUD_BASE_URL": f"http://127.0.0.1:{args.port}",
        "TAP_IFSCLOUD_CLIENT_SECRET": SANDBOX_SECRET,
        "MELTANO_STATE_ID_SUFFIX": "",
    }
    sandbox = start_sandbox(args.port, args.scale, args.seed)
    try:
        meltano("state", "clear", "--force", "sandbox:tap-ifscloud-to-target-jsonl", env=env)
        first = output / "jsonl" / "run-1"
        print(f"\n== run 1: everything, into {first.relative_to(ROOT)}")
        meltano("run", "tap-ifscloud", "target-jsonl", env={**env, "TARGET_JSONL_DESTINATION_PATH": str(first)})
        for stream, n in sorted(count_records(first).items()):
            print(f"   {stream:<24} {n:>8,} records")

        print("\n== changing records in the stand-in: 2 purchase orders, 1 supplier; adding 1 customer")
        orders = read_ifs(args.port, "PurchaseOrderHandling.svc/PurchaseOrderSet", "$top=2&$orderby=OrderNo")
        for order in orders:
            requests.patch(f"{admin}/records/PurchaseOrderSet",
                           json={"key": {"OrderNo": order["OrderNo"]}, "changes": {"Objstate": "Released"}}).raise_for_status()
        supplier = read_ifs(args.port, "SupplierHandling.svc/SupplierInfoGeneralSet", "$top=1&$orderby=SupplierId")[0]
        requests.patch(f"{admin}/records/SupplierInfoGeneralSet",
                       json={"key": {"SupplierId": supplier["SupplierId"]}, "changes": {"Name": supplier["Name"] + " AB"}}).raise_for_status()
        requests.post(f"{admin}/records/CustomerInfoSet",
                      json={"record": {"CustomerId": "DEMO-NEW-1", "Name": "Demo Customer Ltd", "Company": "10"}}).raise_for_status()

        second = output / "jsonl" / "run-2"
        print(f"\n== run 2: incremental from the saved bookmarks, into {second.relative_to(ROOT)}")
        meltano("run", "tap-ifscloud", "target-jsonl", env={**env, "TARGET_JSONL_DESTINATION_PATH": str(second)})
        for stream, n in sorted(count_records(second).items()):
            print(f"   {stream:<24} {n:>8,} records (changes, plus any re-read inside the {300} s look-back)")
        print("\n== bookmarks now (meltano state get sandbox:tap-ifscloud-to-target-jsonl):")
        meltano("state", "get", "sandbox:tap-ifscloud-to-target-jsonl", env=env)
    finally:
        sandbox.terminate()
        sandbox.wait()


if __name__ == "__main__":
    sys.exit(main())
