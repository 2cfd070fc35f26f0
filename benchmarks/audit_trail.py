"""Audit trail write speed: AuditRun.record in batches, against plain sqlite3 executemany of the same rows into a
bare table (the floor: no redaction, no canonical keys, no indexes), measured in the same run.

    .venv/bin/python benchmarks/audit_trail.py --entries 100000
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from ml_connector_core.audit import AuditEntry, AuditTrail


def entries(count: int) -> list[AuditEntry]:
    return [
        AuditEntry(
            stream="purchase_order_lines", key={"OrderNo": f"PO-{n}", "LineNo": n % 7}, version="2026-11-25T10:00:00Z",
            operation="insert", outcome="succeeded", destination="ifscloud.purchase_order_lines",
            payload={"OrderNo": f"PO-{n}", "LineNo": n % 7, "Description": "Steel bolt M8 x 40",
                     "BuyQtyDue": Decimal("12.500"), "BuyUnitPrice": Decimal("1234567.891234"), "CurrencyCode": "SEK",
                     "VendorNo": "S10001", "Contract": "SE01", "Objstate": "Released", "WantedDeliveryDate": "2026-12-01"},
        )
        for n in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()
    batch = entries(args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        floor = sqlite3.connect(Path(tmp) / "floor.sqlite")
        floor.execute("CREATE TABLE t (stream, record_key, payload)")
        started = time.perf_counter()
        for start in range(0, len(batch), args.batch):
            with floor:
                floor.executemany("INSERT INTO t VALUES (?, ?, ?)", [
                    (e.stream, json.dumps(e.key), json.dumps(e.payload, default=str))
                    for e in batch[start:start + args.batch]])
        floor_rate = len(batch) / (time.perf_counter() - started)

        with AuditTrail(f"sqlite:///{Path(tmp) / 'audit.sqlite'}") as trail:
            run = trail.start_run(flow="benchmark", plugin="benchmark")
            started = time.perf_counter()
            for start in range(0, len(batch), args.batch):
                run.record(batch[start:start + args.batch])
            audit_rate = len(batch) / (time.perf_counter() - started)
            run.finish()
    print(f"plain sqlite3 executemany : {floor_rate:>9,.0f} entries/s")
    print(f"AuditRun.record           : {audit_rate:>9,.0f} entries/s (batches of {args.batch:,})")
    print(f"ratio audit / plain       : {audit_rate / floor_rate:.2f}")


if __name__ == "__main__":
    main()
