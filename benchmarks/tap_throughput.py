"""tap-ifscloud against the IFS stand-in: throughput versus a plain requests + JSON loop over the same pages, and the
tap's peak memory on a one-million-row stream.

    .venv/bin/python benchmarks/tap_throughput.py --rows 1000000

Both readers run in the same session against the same server and the same data; the ratio is tap / plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import requests

from ifs_standin import BIN, CLIENT_ID, CLIENT_SECRET, ENTITY_PATH, REALM, access_token, start_sandbox


def plain_loop(base: str, page_size: int) -> tuple[int, float]:
    """What a person would write by hand: requests, json, the same seek pages, each record written out."""
    session = requests.Session()
    token = access_token(session, base)
    session.headers.update({"Authorization": f"Bearer {token}", "X-Ifs-Time-Zone-Aware-Request": "true"})
    rows, last, started = 0, None, time.perf_counter()
    with open(os.devnull, "w") as sink:
        while True:
            query = f"$orderby=ChangedDate,OrderNo&$top={page_size}"
            if last:
                seek = (f"ChangedDate gt {last['ChangedDate']} or "
                        f"(ChangedDate eq {last['ChangedDate']} and OrderNo gt '{last['OrderNo']}')")
                query += "&$filter=" + quote(seek, safe="'()$:")
            page = session.get(f"{base}{ENTITY_PATH}?{query}").json()["value"]
            if not page:
                break
            for record in page:
                sink.write(json.dumps(record) + "\n")
            rows += len(page)
            last = page[-1]
    return rows, time.perf_counter() - started


def tap_run(base: str, page_size: int, workdir: Path) -> tuple[int, float, float]:
    config = {"base_url": base, "realm": REALM, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "page_size": page_size, "requests_per_minute": 1000000,
              "stream_overrides": {"purchase_orders": {"expand": ""}}}
    (workdir / "config.json").write_text(json.dumps(config))
    catalog = json.loads(subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(workdir / "config.json"), "--discover"],
                                        capture_output=True, text=True, check=True).stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] == "purchase_orders"
    (workdir / "catalog.json").write_text(json.dumps(catalog))
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "tap-ifscloud"), "--config", str(workdir / "config.json"), "--catalog", str(workdir / "catalog.json")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    records = sum(1 for line in process.stdout if line.startswith(b'{"type":"RECORD"'))
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"tap-ifscloud failed with status {status}")
    return records, elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox-data"))
    args = parser.parse_args()

    print(f"starting the IFS stand-in with {args.rows:,} purchase orders (generated once, cached in {args.data_dir}) ...")
    sandbox, base = start_sandbox(args.rows, args.seed, args.data_dir, rate_limit=1_000_000)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plain_rows, plain_seconds = plain_loop(base, args.page_size)
            tap_rows, tap_seconds, tap_peak_mb = tap_run(base, args.page_size, Path(tmp))
    finally:
        sandbox.terminate()
        sandbox.wait()
    plain_rate, tap_rate = plain_rows / plain_seconds, tap_rows / tap_seconds
    print(f"plain requests + json loop : {plain_rows:>10,} rows in {plain_seconds:7.1f} s = {plain_rate:>9,.0f} rows/s")
    print(f"tap-ifscloud (subprocess)  : {tap_rows:>10,} rows in {tap_seconds:7.1f} s = {tap_rate:>9,.0f} rows/s")
    print(f"ratio tap / plain          : {tap_rate / plain_rate:.2f}  (aim: 0.8 or better)")
    print(f"tap peak memory (max RSS)  : {tap_peak_mb:.0f} MB  (aim: flat, under 250 MB)")
    if tap_rows != plain_rows:
        print(f"WARNING: row counts differ (tap {tap_rows:,}, plain {plain_rows:,})")


if __name__ == "__main__":
    main()
