"""How fast the IFS stand-in serves PurchaseOrderSet pages over one keep-alive connection.

    .venv/bin/python benchmarks/sandbox_ifs_throughput.py --scale 1000000 --pages 200 [--data-dir .sandbox-data]

Prints the data generation (or cache reuse) time, the rows/s a client sees end to end (client parsing included,
on the same machine), and the rows/s of the server's own handling time (from its request log).
"""

from __future__ import annotations

import argparse
import http.client
import json
import time

from mlc_sandbox.ifs import IfsSandboxProcess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--query", default="", help="extra query options, already percent-encoded")
    args = parser.parse_args()

    started = time.perf_counter()
    with IfsSandboxProcess(scale=args.scale, seed=args.seed, port=0, data_dir=args.data_dir, rate_limit=0) as ifs:
        print(f"stand-in ready after {time.perf_counter() - started:.1f}s (scale {args.scale:,})")
        connection = http.client.HTTPConnection("127.0.0.1", ifs.port)
        connection.request("POST", "/auth/realms/mlc/protocol/openid-connect/token",
                           "grant_type=client_credentials&client_id=mlc-sandbox-client"
                           "&client_secret=mlc-sandbox-secret",
                           {"Content-Type": "application/x-www-form-urlencoded"})
        token = json.loads(connection.getresponse().read())["access_token"]
        headers = {"Authorization": f"Bearer {token}", "X-Ifs-Time-Zone-Aware-Request": "true"}
        service = "/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/"
        path = service + "PurchaseOrderSet" + (f"?{args.query}" if args.query else "")
        ifs.clear_requests()
        rows = size = 0
        started = time.perf_counter()
        for _ in range(args.pages):
            connection.request("GET", path, headers=headers)
            body = connection.getresponse().read()
            size += len(body)
            page = json.loads(body)
            rows += len(page["value"])
            if "@odata.nextLink" not in page:
                break
            path = service + page["@odata.nextLink"]
        elapsed = time.perf_counter() - started
        server_ms = sum(r["duration_ms"] for r in ifs.requests() if r["kind"] == "data")
        print(f"client end to end: {rows:,} rows in {elapsed:.2f}s = {rows / elapsed:,.0f} rows/s "
              f"({size / elapsed / 1e6:.0f} MB/s)")
        pages = max(1, -(-rows // 1000))
        print(f"server handling:   {rows / (server_ms / 1000):,.0f} rows/s ({server_ms / pages:.1f} ms per page)")


if __name__ == "__main__":
    main()
