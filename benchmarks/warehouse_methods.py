"""target-databricks into a SQL warehouse, the two ways of warehouse_load_method side by side: `statements` (values
as typed parameters of MERGE statements of at most max_statement_bytes) against `volume` (each batch a Parquet file
staged in a Unity Catalog volume through the Files API, MERGEd from read_files).

    .venv/bin/python benchmarks/warehouse_methods.py --rows 50000 --rows 1000000

For each size and method: a Databricks stand-in of its own (a child process with a fresh warehouse and the volume
main.staging.mlc), and target-databricks fed the same generated purchase orders (14 fields: decimals of scale 24 and 4,
dates, a UTC timestamp, strings, an integer) from a file, as a tap would send them, into an empty table (an initial
load, batch_size_rows 20,000, records validated and audited as in production). Printed per run: the target's wall time
(process start to exit), rows per second, requests and request-body bytes the stand-in received (its traffic
counters: statements and their parameters, uploads, polls, deletes), the target's peak RSS (wait4's ru_maxrss of
the target process), and the CPU seconds of the target and of the stand-in (both share the machine's cores: where the
wall time goes); then the ratio volume / statements. Every run is checked: as many rows and distinct keys as sent.

The statements method sends about three times the bytes of its values (each a JSON parameter with its name and type),
and the stand-in parses every statement: past --statements-max-rows it is measured on that many rows and its time,
requests and bytes scaled linearly to the size asked for, printed as an extrapolation (peak RSS is per batch and does
not grow with the load, so it is printed as measured).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgspec

from mlc_sandbox.databricks import DatabricksSandboxProcess

BIN = Path(sys.executable).parent
STREAM, TABLE = "purchase_orders", '"uc_main"."ifscloud"."purchase_orders"'
VOLUME = "main.staging.mlc"
PROPERTIES = {
    "OrderNo": {"type": ["string"]},
    "Company": {"type": ["string"]},
    "SupplierId": {"type": ["string", "null"]},
    "Currency": {"type": ["string", "null"]},
    "Amount": {"type": ["number", "null"], "x-sql-datatype": "decimal", "x-sql-datatype-properties": {"precision": 38}},
    "Qty": {"type": ["number", "null"], "x-sql-datatype-properties": {"precision": 12, "scale": 4}},
    "UnitPrice": {"type": ["number", "null"], "x-sql-datatype-properties": {"precision": 20, "scale": 6}},
    "OrderDate": {"type": ["string", "null"], "format": "date"},
    "WantedDelivery": {"type": ["string", "null"], "format": "date"},
    "ChangedAt": {"type": ["string"], "format": "date-time"},
    "Objstate": {"type": ["string", "null"]},
    "BuyerCode": {"type": ["string", "null"]},
    "LineCount": {"type": ["integer", "null"]},
    "Note": {"type": ["string", "null"]},
}
STATES = ("Planned", "Released", "Confirmed", "Received", "Closed")
_encode = msgspec.json.Encoder(decimal_format="number").encode


def write_input(path: Path, rows: int) -> None:
    """SCHEMA, `rows` RECORDs and a STATE, as a tap writes them (decimals as JSON numbers with every digit)."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with open(path, "wb") as out:
        out.write(_encode({"type": "SCHEMA", "stream": STREAM, "schema": {"type": "object", "properties": PROPERTIES},
                           "key_properties": ["OrderNo"], "bookmark_properties": ["ChangedAt"]}) + b"\n")
        for n in range(rows):
            record = {
                "OrderNo": f"PO{n:08d}", "Company": f"C{n % 7:02d}", "SupplierId": f"SUP{n % 5003:05d}",
                "Currency": ("EUR", "USD", "SEK")[n % 3],
                "Amount": Decimal(f"{n % 99991}.{n % 1000003:06d}123456789012345678"),
                "Qty": Decimal(f"{n % 997}.{n % 10000:04d}"), "UnitPrice": Decimal(f"{n % 9973}.{n % 1000000:06d}"),
                "OrderDate": (start + dt.timedelta(days=n % 365)).date().isoformat(),
                "WantedDelivery": None if n % 11 == 0 else (start + dt.timedelta(days=n % 365 + 30)).date().isoformat(),
                "ChangedAt": (start + dt.timedelta(seconds=n, microseconds=n % 1000000)).isoformat(),
                "Objstate": STATES[n % 5], "BuyerCode": f"BUY{n % 41}", "LineCount": n % 17,
                "Note": None if n % 3 else f"order {n}: deliver to dock {n % 12}, ref O'Brien/{n % 77}",
            }
            out.write(_encode({"type": "RECORD", "stream": STREAM, "record": record}) + b"\n")
        state = {"bookmarks": {STREAM: {"replication_key_value": (start + dt.timedelta(seconds=rows)).isoformat()}}}
        out.write(_encode({"type": "STATE", "value": state}) + b"\n")


def run_target(workdir: Path, method: str, input_path: Path) -> dict:
    """One load into a fresh stand-in: its figures."""
    with DatabricksSandboxProcess(data_dir=workdir / f"warehouse-{method}", volume=VOLUME) as dbx:
        config = {"load_method": "warehouse", "warehouse_load_method": method, "staging_volume": VOLUME,
                  "workspace_host": dbx.base_url, "token": dbx.token, "warehouse_id": dbx.warehouse_id,
                  "catalog": "main", "audit_url": f"sqlite:///{workdir / f'audit-{method}.sqlite'}"}
        config_path = workdir / f"config-{method}.json"
        config_path.write_bytes(msgspec.json.encode(config))
        log = workdir / f"target-{method}.log"
        with open(input_path, "rb") as stdin, open(log, "wb") as stderr:
            started = time.perf_counter()
            process = subprocess.Popen([str(BIN / "target-databricks"), "--config", str(config_path)], stdin=stdin,
                                       stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)  # the target's own rusage: its peak RSS, not ours
            seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"target-databricks ({method}) failed ({process.returncode}):\n{log.read_text()[-4000:]}")
        traffic = dbx.traffic()
        stand_in_cpu = cpu_seconds(dbx.process.pid)
        rows, keys = (int(v) for v in dbx.sql(f"SELECT count(*), count(DISTINCT OrderNo) FROM {TABLE}")[0])
        left = dbx.volume_files(VOLUME)
    return {"seconds": seconds, "requests": traffic["requests"], "bytes": traffic["bytes"],
            "rss_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime, "stand_in_cpu": stand_in_cpu,
            "rows": rows, "keys": keys, "staged_left": len(left)}


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a running process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def line(size: int, method: str, figures: dict, note: str = "") -> str:
    return (f"{size:>10,}  {method:<10} {figures['seconds']:>9.1f} {size / figures['seconds']:>9,.0f} "
            f"{figures['requests']:>9,} {figures['bytes'] / 1e6:>9.1f} {figures['rss_mb']:>9.0f} "
            f"{figures['cpu']:>9.1f} {figures['stand_in_cpu']:>9.1f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per load (repeatable; default 50000 and "
                                                                   "1000000)")
    parser.add_argument("--statements-max-rows", type=int, default=200_000,
                        help="largest load measured through the statements method; beyond it, extrapolated")
    parser.add_argument("--methods", default="statements,volume")
    args = parser.parse_args()
    sizes = args.rows or [50_000, 1_000_000]
    methods = args.methods.split(",")
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine skews every figure)")
    print(f"{'rows':>10}  {'method':<10} {'wall s':>9} {'rows/s':>9} {'requests':>9} {'MB sent':>9} {'peak MB':>9} "
          f"{'CPU s':>9} {'stand-in':>9}")
    failures = []
    measured_runs: dict[tuple[str, int], dict] = {}  # a capped statements load is measured once, then reused
    with tempfile.TemporaryDirectory(prefix="mlc-bench-warehouse-") as tmp:
        for size in sizes:
            figures: dict[str, dict] = {}
            workdir = Path(tmp, f"load-{size}")  # empty warehouses and audit trails for each size
            workdir.mkdir()
            for method in methods:
                measured = min(size, args.statements_max_rows) if method == "statements" else size
                input_path = Path(tmp, f"input-{measured}.jsonl")
                if not input_path.exists():
                    write_input(input_path, measured)
                run = measured_runs.get((method, measured))
                if run is None:
                    run = measured_runs[(method, measured)] = run_target(workdir, method, input_path)
                if (run["rows"], run["keys"], run["staged_left"]) != (measured, measured, 0):
                    failures.append(f"{method} {measured:,}: {run['rows']:,} rows, {run['keys']:,} keys, "
                                    f"{run['staged_left']} staged files left")
                note = ""
                if measured < size:
                    scale = size / measured
                    note = f"extrapolated x{scale:g} from {measured:,} rows ({run['seconds']:.1f} s measured)"
                    run = {**run, "seconds": run["seconds"] * scale, "requests": round(run["requests"] * scale),
                           "bytes": run["bytes"] * scale, "cpu": run["cpu"] * scale,
                           "stand_in_cpu": run["stand_in_cpu"] * scale}
                figures[method] = run
                print(line(size, method, run, note), flush=True)
            if {"statements", "volume"} <= set(figures):
                s, v = figures["statements"], figures["volume"]
                print(f"{'':>10}  volume / statements: time {v['seconds'] / s['seconds']:.2f}, requests "
                      f"{v['requests'] / s['requests']:.2f}, bytes {v['bytes'] / s['bytes']:.2f}, peak RSS "
                      f"{v['rss_mb'] / s['rss_mb']:.2f}", flush=True)
            shutil.rmtree(workdir)
    if failures:
        raise SystemExit("not exact: " + "; ".join(failures))


if __name__ == "__main__":
    main()
