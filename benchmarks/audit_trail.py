"""The audit trail's size, write speed and lookup time for the same entries, before (one row per entry: the version of
--baseline) and after (compressed blocks), beside the Delta table of the same rows.

    .venv/bin/python benchmarks/audit_trail.py --rows 100000 1000000
    .venv/bin/python benchmarks/audit_trail.py --trail sf.sqlite teams.sqlite   # trails API targets wrote

Per size: the IFS stand-in's purchase orders (--rows of them, lines not expanded) and its supplier invoices (posting
proposals with their lines, a tenth as many) read by tap-ifscloud and loaded by target-databricks into a local Delta
table, with its audit trail (after, as the target wrote it). The entries of that run are then written again, in the
target's batches (--batch), by the baseline's AuditRun.record into a trail of its own (before) and by this version's
into a fresh one (after), the two writers taking turns batch by batch, so that both meet the same load on the machine.
Sizes are the SQLite files once closed; "retention 0" is the after trail once prune_documents has emptied every
payload (pages in use). `mlc-audit show ID` is timed as a user runs it (a process), by the baseline's CLI and this
one's; a lookup by key (what the Teams ledger and the redo of failures ask) is timed in one process, cold (a new
AuditTrail) and warm.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from ifs_standin import BIN, CLIENT_ID, CLIENT_SECRET, REALM, start_sandbox
from ml_connector_core.audit import AuditEntry, AuditTrail

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ("purchase_orders", "posting_proposals")
FLOW = "ifs-to-databricks"
BASELINE = "6aeac40"  # the last commit with one row per entry


def legacy_modules(ref: str, folder: Path) -> None:
    """The baseline's audit store and CLI, as modules legacy_audit and legacy_audit_cli in ``folder``."""
    for name, path in (("legacy_audit", "audit.py"), ("legacy_audit_cli", "audit_cli.py")):
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:connector-core/ml_connector_core/{path}"],
                              capture_output=True, text=True, check=True).stdout
        text = text.replace("from ml_connector_core.audit import", "from legacy_audit import")
        (folder / f"{name}.py").write_text(text)


def tap_output(rows: int, seed: int, data_dir: Path) -> Path:
    """The tap's Singer messages for the stand-in at scale ``rows`` (read once, kept in data_dir)."""
    out = data_dir / f"audit-trail-{rows}-{seed}.singer"
    if out.is_file():
        return out
    print(f"  reading {rows:,} purchase orders and {rows // 10:,} invoices from the IFS stand-in ...", flush=True)
    sandbox, base = start_sandbox(rows, seed, data_dir, rate_limit=0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = {"base_url": base, "realm": REALM, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                      "page_size": 1000, "requests_per_minute": 1_000_000,
                      "stream_overrides": {"purchase_orders": {"expand": ""}}}
            (work / "config.json").write_text(json.dumps(config))
            catalog = json.loads(subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(work / "config.json"),
                                                 "--discover"], capture_output=True, text=True, check=True).stdout)
            for entry in catalog["streams"]:
                for metadata in entry["metadata"]:
                    if metadata["breadcrumb"] == []:
                        metadata["metadata"]["selected"] = entry["tap_stream_id"] in STREAMS
            (work / "catalog.json").write_text(json.dumps(catalog))
            partial = out.with_suffix(".partial")
            with partial.open("wb") as sink:
                subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(work / "config.json"), "--catalog",
                                str(work / "catalog.json")], stdout=sink, stderr=subprocess.DEVNULL, check=True)
            partial.rename(out)
    finally:
        sandbox.terminate()
        sandbox.wait()
    return out


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def sqlite_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))  # with -wal and -shm, if any are left


def load(singer: Path, work: Path) -> tuple[Path, Path, int, float]:
    """target-databricks on the tap's output: the Delta folder, the audit trail, records loaded, seconds."""
    delta, trail = work / "delta", work / "after-target.sqlite"
    config = work / "target.json"
    config.write_text(json.dumps({"delta_root": str(delta), "audit_url": f"sqlite:///{trail}", "flow": FLOW}))
    started = time.perf_counter()
    with singer.open("rb") as stdin:
        done = subprocess.run([str(BIN / "target-databricks"), "--config", str(config)], stdin=stdin,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"target-databricks failed: {done.stderr.decode()[-3000:]}")
    with AuditTrail(f"sqlite:///{trail}") as audit:
        [run] = audit.runs(1)
    return delta, trail, run.entries, seconds


def rewrite(after_target: Path, before: Path, after: Path, batch: int) -> tuple[float, float, list[str]]:
    """Every run's entries of a trail written again by both versions, in turns, batch by batch: seconds spent in each
    record(), and the run ids (oldest first)."""
    import legacy_audit

    source = AuditTrail(f"sqlite:///{after_target}")
    old = legacy_audit.AuditTrail(f"sqlite:///{before}")
    new = AuditTrail(f"sqlite:///{after}")
    old_seconds = new_seconds = 0.0
    runs = list(reversed(source.runs(None)))
    for loaded in runs:
        old_run = old.start_run(flow=loaded.flow, plugin=loaded.plugin, run_id=loaded.run_id)
        new_run = new.start_run(flow=loaded.flow, plugin=loaded.plugin, run_id=loaded.run_id)
        pending: list[tuple[AuditEntry, object]] = []

        def flush() -> None:
            nonlocal old_seconds, new_seconds
            old_entries = [old_entry for _, old_entry in pending]
            new_entries = [new_entry for new_entry, _ in pending]
            started = time.perf_counter()
            old_run.record(old_entries)
            old_seconds += time.perf_counter() - started
            started = time.perf_counter()
            new_run.record(new_entries)
            new_seconds += time.perf_counter() - started
            pending.clear()

        for stored in source.entries(run_id=loaded.run_id):
            fields = dict(stream=stored.stream, key=stored.key, operation=stored.operation, outcome=stored.outcome,
                          version=stored.version, destination=stored.destination, attempts=stored.attempts,
                          error=stored.error, payload=stored.payload, source=stored.source)
            pending.append((AuditEntry(**fields), legacy_audit.AuditEntry(**fields)))
            if len(pending) == batch:
                flush()
        if pending:
            flush()
        started = time.perf_counter()
        old_run.finish()
        old_seconds += time.perf_counter() - started
        started = time.perf_counter()
        new_run.finish()  # merges the small blocks of the run
        new_seconds += time.perf_counter() - started
    for trail in (source, old, new):
        trail.close()
    return old_seconds, new_seconds, [run.run_id for run in runs]


def api_target_trail(trail: Path, args: argparse.Namespace) -> None:
    """An API target's trail (target-salesforce, target-teams, target-jira, target-jaggaer: what a benchmark of theirs
    left with --keep-trail) written again by both versions. Beside it, the records themselves: the payloads sent, as
    compact JSON, which is what the destination holds of them."""
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        before, after = work / "before.sqlite", work / "after.sqlite"
        old_seconds, new_seconds, run_ids = rewrite(trail, before, after, args.batch)
        with AuditTrail(f"sqlite:///{after}") as written:
            runs = written.runs(None)
            records = sum(run.entries for run in runs)
            flows = sorted({run.flow for run in runs})
            data = sum(len(json.dumps(entry.payload, separators=(",", ":"), default=str))
                       for run_id in run_ids for entry in written.entries(run_id=run_id)
                       if entry.payload is not None)
            with written._engine.connect() as conn:
                documents = conn.exec_driver_sql("SELECT sum(length(documents)) FROM audit_blocks").scalar() or 0
        pruned = work / "after-retention.sqlite"
        shutil.copyfile(after, pruned)
        with AuditTrail(f"sqlite:///{pruned}") as pruning:
            for flow in flows:
                pruning.prune_documents(flow, timedelta(0))
            pruned_bytes = pruning.bytes_used()
        before_bytes, after_bytes = sqlite_bytes(before), sqlite_bytes(after)

    def per(count: float) -> str:
        return f"{count / records:>7,.0f} B/record"

    print(f"\n{trail}: {records:,} entries in {len(run_ids)} runs of {', '.join(flows)}")
    print(f"the records sent (compact JSON)    : {data / 1e6:>9,.1f} MB {per(data)}")
    print(f"audit trail before (row per entry) : {before_bytes / 1e6:>9,.1f} MB {per(before_bytes)}  "
          f"= {before_bytes / data:.2f} x the records")
    print(f"audit trail after (blocks)         : {after_bytes / 1e6:>9,.1f} MB {per(after_bytes)}  "
          f"= {after_bytes / data:.2f} x the records ({before_bytes / after_bytes:.1f} x smaller)")
    print(f"  of which payloads (compressed)   : {documents / 1e6:>9,.1f} MB {per(documents)};  everything else "
          f"{per(after_bytes - documents).strip()}")
    print(f"after, payloads past retention     : {pruned_bytes / 1e6:>9,.1f} MB {per(pruned_bytes)}  "
          f"= {pruned_bytes / data:.3f} x the records")
    print(f"write, AuditRun.record             : before {records / old_seconds:>8,.0f} entries/s, after "
          f"{records / new_seconds:>8,.0f} entries/s (ratio {old_seconds / new_seconds:.2f})", flush=True)


def median_seconds(command: list[str], runs: int, env: dict) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    return statistics.median(times)


def show_latency(before: Path, after: Path, entry_ids: list[int], legacy_dir: Path) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": str(legacy_dir)}
    old_cli = [sys.executable, "-c", "import sys, legacy_audit_cli; sys.exit(legacy_audit_cli.main(sys.argv[1:]))"]
    new_cli = [str(BIN / "mlc-audit")]
    old = statistics.median(median_seconds([*old_cli, "--url", f"sqlite:///{before}", "show", str(i)], 1, env)
                            for i in entry_ids)
    new = statistics.median(median_seconds([*new_cli, "--url", f"sqlite:///{after}", "show", str(i)], 1, env)
                            for i in entry_ids)
    start_up = median_seconds([*new_cli, "--help"], len(entry_ids), env)
    return old, new, start_up


def key_lookups(before: Path, after: Path, keys: list[tuple[str, dict]]) -> list[tuple[float, float, float]]:
    """Per version, median seconds of a lookup by key (what the Teams ledger and the redo of failures ask) in one
    process: of keys in blocks not read yet (each key in another part of the trail), of the same keys again, and of
    those again reading the payload of the latest entry found (as the ledger does when a record's version changed)."""
    import legacy_audit

    results = []
    for trail in (legacy_audit.AuditTrail(f"sqlite:///{before}"), AuditTrail(f"sqlite:///{after}")):
        passes = []
        for read_payload in (False, False, True):
            times = []
            for stream, key in keys:
                started = time.perf_counter()
                found = list(trail.entries(stream=stream, key=key, outcome="succeeded"))
                assert found and (not read_payload or found[-1].payload_json), (stream, key)
                times.append(time.perf_counter() - started)
            passes.append(statistics.median(times))
        trail.close()
        results.append(tuple(passes))
    return results


def measure(rows: int, args: argparse.Namespace, legacy_dir: Path) -> None:
    singer = tap_output(rows, args.seed, args.data_dir)
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        print(f"  target-databricks loading them into a Delta table ...", flush=True)
        delta, after_target, records, load_seconds = load(singer, work)
        delta_bytes = folder_bytes(delta)
        before, after = work / "before.sqlite", work / "after.sqlite"
        print(f"  writing the {records:,} entries again with both versions ...", flush=True)
        old_seconds, new_seconds, [run_id] = rewrite(after_target, before, after, args.batch)
        before_bytes, after_bytes, target_bytes = sqlite_bytes(before), sqlite_bytes(after), sqlite_bytes(after_target)
        with AuditTrail(f"sqlite:///{after}") as trail:
            with trail._engine.connect() as conn:
                documents = conn.exec_driver_sql("SELECT sum(length(documents)) FROM audit_blocks").scalar() or 0
            sample = random.Random(args.seed)
            ids = sorted(sample.sample(range(1, records + 1), 7))
            keys = [(e.stream, e.key) for e in trail.entries(entry_ids=sample.sample(range(1, records + 1), 50))]
        pruned = work / "after-retention.sqlite"
        shutil.copyfile(after, pruned)
        with AuditTrail(f"sqlite:///{pruned}") as trail:
            trail.prune_documents(FLOW, timedelta(0))
            pruned_bytes = trail.bytes_used()
        old_show, new_show, start_up = show_latency(before, after, ids, legacy_dir)
        (old_first, old_again, old_payload), (new_first, new_again, new_payload) = key_lookups(before, after, keys)

    def per(count: float) -> str:
        return f"{count / records:>7,.0f} B/record"

    print(f"\n{records:,} records ({rows:,} purchase orders, {records - rows:,} invoices with their lines), "
          f"batches of {args.batch:,}; run {run_id}")
    print(f"Delta table (Parquet + log)       : {delta_bytes / 1e6:>9,.1f} MB {per(delta_bytes)}  "
          f"(target-databricks: {records / load_seconds:,.0f} records/s)")
    print(f"audit trail before (row per entry) : {before_bytes / 1e6:>9,.1f} MB {per(before_bytes)}  "
          f"= {before_bytes / delta_bytes:.2f} x the Delta table")
    print(f"audit trail after (blocks)         : {after_bytes / 1e6:>9,.1f} MB {per(after_bytes)}  "
          f"= {after_bytes / delta_bytes:.2f} x the Delta table ({before_bytes / after_bytes:.0f} x smaller)")
    print(f"  of which payloads (compressed)   : {documents / 1e6:>9,.1f} MB {per(documents)};  everything else "
          f"{per(after_bytes - documents).strip()}")
    print(f"  as target-databricks wrote it    : {target_bytes / 1e6:>9,.1f} MB {per(target_bytes)}")
    print(f"after, payloads past retention     : {pruned_bytes / 1e6:>9,.1f} MB {per(pruned_bytes)}  "
          f"= {pruned_bytes / delta_bytes:.3f} x the Delta table")
    print(f"write, AuditRun.record             : before {records / old_seconds:>8,.0f} entries/s, after "
          f"{records / new_seconds:>8,.0f} entries/s (ratio {old_seconds / new_seconds:.2f})")
    print(f"mlc-audit show ID (a process)      : before {old_show * 1000:>6,.0f} ms, after {new_show * 1000:>6,.0f} ms "
          f"(median of {len(ids)}; the command's start-up alone {start_up * 1000:,.0f} ms)")
    print(f"lookup by key, one process (median of {len(keys)}): first in its part of the trail before "
          f"{old_first * 1000:,.2f} ms, after {new_first * 1000:,.2f} ms; again before {old_again * 1000:,.2f} ms, "
          f"after {new_again * 1000:,.2f} ms; again reading the payload found before {old_payload * 1000:,.2f} ms, "
          f"after {new_payload * 1000:,.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000], help="purchase orders per measurement")
    parser.add_argument("--batch", type=int, default=20_000, help="entries per record() (target-databricks' batch)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--baseline", default=BASELINE, help="the commit whose audit trail is 'before'")
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox-data"))
    parser.add_argument("--work-dir", type=Path, default=None, help="where the tables and trails are written")
    parser.add_argument("--trail", type=Path, nargs="+", default=[],
                        help="instead: trails an API target wrote (a benchmark's --keep-trail), written again by both "
                             "versions beside the records they hold")
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as legacy:
        legacy_modules(args.baseline, Path(legacy))
        sys.path.insert(0, legacy)
        for trail in args.trail:
            api_target_trail(trail, args)
        for rows in args.rows if not args.trail else ():
            print(f"{rows:,} purchase orders:", flush=True)
            measure(rows, args, Path(legacy))


if __name__ == "__main__":
    main()
