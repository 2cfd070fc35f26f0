"""target-databricks on the Delta path: what 100 changed purchase orders cost against tables of 20,000, 200,000 and
1,000,000 rows, and a full load's memory and throughput; the code path before issue 13 (the baseline) beside this
checkout without deletion vectors ("rewrite": changed rows' files rewritten) and with them ("new", the default).

    .venv/bin/python benchmarks/delta_incremental.py                      # 20k, 200k, 1M; 3 repeats
    .venv/bin/python benchmarks/delta_incremental.py --sizes 20000,200000 --repeats 2

What it does, per table size N:

1. The IFS stand-in with N purchase orders; tap-ifscloud's full load of `purchase_orders` (lines not expanded) saved
   as Singer messages, with its final STATE. Then, in a fresh session of the stand-in each, 100 orders changed through
   its admin interface (BuyerCode), and tap-ifscloud run from that STATE (look-back 0): "spread" changes 100 orders
   picked at random over the whole table, "recent" the 100 newest orders (the highest order numbers: open orders are
   the ones that change). Each incremental input is those 100 records and the one at the bookmark, re-read.
2. A full load of N rows by each code path into a Delta table of its own (wall time, peak RSS of the target process).
3. Each incremental input run by each code path against a fresh copy of that path's table, `--repeats` times
   (alternating the paths): wall time of the target process, its peak RSS (the kernel's, from wait4), bytes of the
   files the run created (data, deletion vectors and log), the data files it replaced (removed with dataChange and
   not added again) and their rows, and the files it gave a deletion vector.
4. The baseline's table given to the new code path: its first run (which clusters the table once) and the next.

Only the target runs here (fed the saved messages); the tap's share of an end-to-end run does not change with the
table's size (about 1.1 s in issue 13's measurement). The baseline is target-databricks as of --baseline-ref
(default: the last commit before the Delta path wrote by key), taken with `git archive` into a temporary folder and
put first on PYTHONPATH; everything else (connector-core, singer-sdk, delta-rs) is shared. The machine is shared:
every figure is the median of the repeats with the spread (min-max) beside it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from ifs_standin import BIN, CLIENT_ID, CLIENT_SECRET, REALM, start_sandbox

ROOT = Path(__file__).resolve().parent.parent
BASELINE_REF = "d61f811"  # main before the Delta path wrote by key (merge of issue 13's Delta work)
STREAM, TABLE = "purchase_orders", "ifscloud/purchase_orders"
PATTERNS = ("spread", "recent")
CHANGES = 100


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- inputs ---------------------------------------------------------------------------------------------------------


def tap_run(base: str, folder: Path, output: Path, state: dict | None) -> dict:
    """tap-ifscloud, purchase_orders only, into `output`; returns its last STATE."""
    config = {"base_url": base, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "realm": REALM,
              "built_in_streams": [STREAM], "stream_overrides": {STREAM: {"expand": ""}},
              "requests_per_minute": 1_000_000, "lookback_seconds": 0}
    (folder / "tap.json").write_text(json.dumps(config))
    command = [str(BIN / "tap-ifscloud"), "--config", str(folder / "tap.json")]
    if state is not None:
        (folder / "tap-state.json").write_text(json.dumps(state))
        command += ["--state", str(folder / "tap-state.json")]
    with open(output, "w") as out, open(folder / "tap.log", "w") as log:
        subprocess.run(command, stdout=out, stderr=log, check=True)
    last = None
    with open(output) as messages:
        for line in messages:
            if line.startswith('{"type":"STATE"'):
                last = json.loads(line)["value"]
    if last is None:
        raise SystemExit(f"tap-ifscloud emitted no STATE into {output}")
    return last


def capture(rows: int, seed: int, data_dir: Path, folder: Path) -> None:
    """full.jsonl and changes-<pattern>.jsonl for a table of `rows` orders (kept: a second run reuses them)."""
    folder.mkdir(parents=True, exist_ok=True)
    if all((folder / f"{name}.jsonl").exists() for name in ("full", *(f"changes-{p}" for p in PATTERNS))):
        return
    orders = [f"P{1_000_000 + i}" for i in range(rows)]  # the stand-in's order numbers, in order of creation
    chosen = {"spread": random.Random(seed).sample(orders, CHANGES), "recent": orders[-CHANGES:]}
    state = None
    for pattern in (None, *PATTERNS):  # a fresh session each: a session's changes stay in its working copy
        sandbox, base = start_sandbox(rows, seed, data_dir, rate_limit=0)
        try:
            if pattern is None:
                state = tap_run(base, folder, folder / "full.jsonl", None)
                continue
            for order in chosen[pattern]:
                requests.patch(f"{base}/_admin/records/PurchaseOrderSet", timeout=60,
                               json={"key": {"OrderNo": order}, "changes": {"BuyerCode": "CHANGED"}}).raise_for_status()
            tap_run(base, folder, folder / f"changes-{pattern}.jsonl", state)
        finally:
            sandbox.terminate()
            sandbox.wait()


def records_in(path: Path) -> int:
    with open(path) as messages:
        return sum(1 for line in messages if line.startswith('{"type":"RECORD"'))


# --- one target run -------------------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    peak_mb: float
    bytes_written: int = 0
    log_bytes: int = 0  # of bytes_written: the transaction log (commits, checkpoints)
    vector_bytes: int = 0  # of bytes_written: deletion vector files
    files_replaced: int = 0
    rows_replaced: int = 0
    files_marked: int = 0
    files_before: int = 0


def baseline_tree(ref: str, folder: Path, *, with_core: bool = False) -> str:
    """target-databricks's package as of `ref` (and connector-core's, `with_core`), extracted (not checked out: the
    worktree stays as it is); returns the PYTHONPATH that imports them."""
    packages = {"target-databricks": "target_databricks", **({"connector-core": "ml_connector_core"} if with_core else {})}
    archive = subprocess.run(["git", "archive", "--format=tar", ref, *(f"{d}/{p}" for d, p in packages.items())],
                             cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    pythonpath = os.pathsep.join(str(folder / d) for d in packages)
    for directory, package in packages.items():
        found = subprocess.run([sys.executable, "-c", f"import {package}; print({package}.__file__)"],
                               env={**os.environ, "PYTHONPATH": pythonpath}, capture_output=True, text=True,
                               check=True).stdout.strip()
        if not found.startswith(str(folder / directory)):
            raise SystemExit(f"the baseline would import {found}, not the extracted {folder / directory}")
    return pythonpath


def run_target(messages: Path, delta_root: Path, audit: Path, pythonpath: str | None, log: Path,
               settings: dict | None = None) -> Run:
    config = delta_root.parent / f"{delta_root.name}.target.json"
    config.write_text(json.dumps({"delta_root": str(delta_root), "audit_url": f"sqlite:///{audit}", **(settings or {})}))
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    with open(messages, "rb") as stdin, open(log, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "target_databricks", "--config", str(config)], stdin=stdin,
                                   stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # the peak RSS of exactly this process (ru_maxrss, KB)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"target-databricks exited {process.returncode} on {messages}:\n"
                         + log.read_text(errors="replace")[-4000:])
    return Run(seconds, usage.ru_maxrss / 1024)


def table_files(table: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in table.rglob("*") if p.is_file()}


def data_file_rows(table: Path) -> dict[str, int]:
    """Rows of each data file of the table's current version, from its statistics."""
    import pyarrow as pa
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True))
    return dict(zip(actions.column("path").to_pylist(), actions.column("num_records").to_pylist()))


def incremental(messages: Path, table: Path, scratch: Path, pythonpath: str | None,
                settings: dict | None = None) -> Run:
    """One run against a fresh copy of `table`: what it cost and what it replaced."""
    if scratch.exists():
        shutil.rmtree(scratch)
    copy = scratch / "delta" / TABLE
    shutil.copytree(table, copy)
    before, rows_of = table_files(copy), data_file_rows(copy)
    log_before = {p.name for p in (copy / "_delta_log").iterdir()}
    run = run_target(messages, scratch / "delta", scratch / "audit.sqlite", pythonpath, scratch / "target.log",
                     settings)
    after = table_files(copy)
    created = {path: size for path, size in after.items() if path not in before}
    run.bytes_written = sum(created.values())
    run.log_bytes = sum(size for path, size in created.items() if path.parent.name == "_delta_log")
    run.vector_bytes = sum(size for path, size in created.items() if path.name.startswith("deletion_vector_"))
    run.files_before = len(rows_of)
    for entry in sorted((copy / "_delta_log").glob("*.json")):
        if entry.name in log_before:
            continue
        actions = [json.loads(line) for line in entry.read_text().splitlines()]
        marked = {a["add"]["path"] for a in actions if "add" in a and a["add"].get("deletionVector")}
        for action in actions:
            remove = action.get("remove")
            if not remove or not remove.get("dataChange", True) or remove["path"] not in rows_of:
                continue
            if remove["path"] in marked:
                run.files_marked += 1
            else:
                run.files_replaced += 1
                run.rows_replaced += rows_of[remove["path"]] or 0
    shutil.rmtree(scratch)
    return run


# --- report ---------------------------------------------------------------------------------------------------------


def spread(values: list[float], fmt: str) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return format(middle, fmt)
    return f"{format(middle, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def describe(runs: list[Run]) -> str:
    first = runs[0]
    return (f"{spread([r.seconds for r in runs], '.2f')} s, {spread([r.bytes_written / 1e3 for r in runs], '.0f')} kB "
            f"written, {first.files_replaced} of {first.files_before} files ({first.rows_replaced:,} rows) replaced, "
            f"{first.files_marked} marked (of what was written: log {first.log_bytes / 1e3:.0f} kB, deletion vectors "
            f"{first.vector_bytes / 1e3:.0f} kB), "
            f"peak {spread([r.peak_mb for r in runs], '.0f')} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000,1000000", help="purchase orders per table, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each incremental input per code path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox-data"), help="the stand-in's data cache")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keeps the captured inputs (reused by the next run); default: a temporary folder")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git revision of the baseline target")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="mlc-delta-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    extracted = Path(tempfile.mkdtemp(prefix="mlc-delta-baseline-"))
    baseline = baseline_tree(args.baseline_ref, extracted / "target")
    # Each code path: where its package comes from (None: this checkout) and the settings it runs with.
    paths = {"baseline": (baseline, {}), "rewrite": (None, {"delta_deletion_vectors": False}), "new": (None, {})}
    # Full loads only: the target with connector-core as of the baseline too (its audit trail, its Singer reader),
    # which is what a full load cost when issue 13 was filed.
    full_paths = {**paths, "as filed": (baseline_tree(args.baseline_ref, extracted / "whole", with_core=True), {})}
    print(f"machine: {os.cpu_count()} cores, {load()} (other work on the machine skews every figure)")
    print(f"baseline: target-databricks at {args.baseline_ref} ({baseline}); rewrite: this checkout with "
          "delta_deletion_vectors false; new: this checkout; as filed (full loads only): target-databricks and "
          "connector-core at the baseline ref")
    results: dict[tuple[int, str, str], list[Run]] = {}
    full: dict[tuple[int, str], Run] = {}
    upgrade: dict[int, tuple[Run, Run]] = {}
    try:
        for rows in sizes:
            folder = work / str(rows)
            print(f"\n{rows:,} purchase orders: capturing the tap's output ... ({load()})", flush=True)
            capture(rows, args.seed, args.data_dir, folder)
            loaded = records_in(folder / "full.jsonl")
            tables = {}
            for path, (pythonpath, settings) in full_paths.items():
                target = folder / f"{path}-table"
                if target.exists():
                    shutil.rmtree(target)
                target.mkdir()
                print(f"  full load, {path} ... ({load()})", flush=True)
                run = run_target(folder / "full.jsonl", target / "delta", target / "audit.sqlite", pythonpath,
                                 target / "target.log", settings)
                full[(rows, path)] = run
                tables[path] = target / "delta" / TABLE
                print(f"  full load, {path}: {loaded:,} rows in {run.seconds:.1f} s = {loaded / run.seconds:,.0f} "
                      f"rows/s, peak {run.peak_mb:.0f} MB, {len(data_file_rows(tables[path]))} data files", flush=True)
            for repeat in range(args.repeats):
                for pattern in PATTERNS:
                    for path, (pythonpath, settings) in (paths.items() if repeat % 2 == 0
                                                         else reversed(paths.items())):
                        run = incremental(folder / f"changes-{pattern}.jsonl", tables[path], work / "scratch",
                                          pythonpath, settings)
                        results.setdefault((rows, pattern, path), []).append(run)
                print(f"  incremental runs, repeat {repeat + 1} of {args.repeats} done ({load()})", flush=True)
            for pattern in PATTERNS:
                for path in paths:
                    print(f"  {pattern:<6} {path:<8}: {describe(results[(rows, pattern, path)])}")
            # A table written by the baseline, then loaded by the new code: the first run clusters it once.
            upgraded = work / "upgraded"
            if upgraded.exists():
                shutil.rmtree(upgraded)
            shutil.copytree(tables["baseline"], upgraded / "delta" / TABLE)
            first = run_target(folder / "changes-spread.jsonl", upgraded / "delta", upgraded / "audit.sqlite", None,
                               upgraded / "first.log")
            second = incremental(folder / "changes-recent.jsonl", upgraded / "delta" / TABLE, work / "scratch", None)
            upgrade[rows] = (first, second)
            print(f"  baseline's table, first run of the new path (clusters it): {first.seconds:.2f} s, peak "
                  f"{first.peak_mb:.0f} MB; then recent changes: {describe([second])}")
            shutil.rmtree(upgraded)
    finally:
        shutil.rmtree(extracted, ignore_errors=True)
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nSummary ({load()}), target-databricks alone, medians (min-max) of {args.repeats} repeats:")
    header = f"{'':<28}" + "".join(f"{n:>22,}" for n in sizes)
    for pattern in PATTERNS:
        print(f"\n100 changes, {pattern}" + header[len(f'100 changes, {pattern}'):])
        for path in paths:
            for label, value, fmt in (("wall s", lambda r: r.seconds, ".2f"), ("kB written", lambda r: r.bytes_written / 1e3, ".0f"),
                                      ("kB of it log", lambda r: r.log_bytes / 1e3, ".0f"),
                                      ("peak RSS MB", lambda r: r.peak_mb, ".0f")):
                cells = [spread([value(r) for r in results[(n, pattern, path)]], fmt) for n in sizes]
                print(f"  {path + ' ' + label:<26}" + "".join(f"{c:>22}" for c in cells))
            cells = [f"{results[(n, pattern, path)][0].files_replaced} of {results[(n, pattern, path)][0].files_before}"
                     for n in sizes]
            print(f"  {path + ' files replaced':<26}" + "".join(f"{c:>22}" for c in cells))
            cells = [str(results[(n, pattern, path)][0].files_marked) for n in sizes]
            print(f"  {path + ' files marked':<26}" + "".join(f"{c:>22}" for c in cells))
        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            for path in paths:
                time_ratio = (statistics.median(r.seconds for r in results[(large, pattern, path)])
                              / statistics.median(r.seconds for r in results[(small, pattern, path)]))
                bytes_ratio = (statistics.median(r.bytes_written for r in results[(large, pattern, path)])
                               / statistics.median(r.bytes_written for r in results[(small, pattern, path)]))
                print(f"  {path:<8} ratio {large:,} / {small:,}: wall time {time_ratio:.2f}, bytes written "
                      f"{bytes_ratio:.2f}")
    print("\nFull loads (rows/s, wall time, peak RSS; ratio of throughput: new / each other path):")
    for rows in sizes:
        new = full[(rows, "new")]
        for path in full_paths:
            run = full[(rows, path)]
            ratio = "" if path == "new" else f", new / {path}: {run.seconds / new.seconds:.2f}"
            print(f"  {rows:>9,} {path:<9}: {rows / run.seconds:,.0f} rows/s ({run.seconds:.1f} s), peak RSS "
                  f"{run.peak_mb:.0f} MB{ratio}")
    print("\nA table written by the baseline, given to the new path:")
    for rows, (first, second) in upgrade.items():
        print(f"  {rows:>9,} rows: first run {first.seconds:.2f} s (clusters it, peak {first.peak_mb:.0f} MB); "
              f"next: {describe([second])}")


if __name__ == "__main__":
    main()
