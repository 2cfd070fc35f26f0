"""What a kill costs: `meltano run tap-ifscloud target-databricks` (Delta path) SIGKILLed, the whole process group, at
several moments of a load, then rerun; the rows each rerun read again (rows the killed run had already written) against
the baseline without checkpoints, where the saved state stayed `{}` and the rerun read every row again.

    .venv/bin/python benchmarks/checkpoints.py --rows 50000 --batch-size 5000

First one uninterrupted load measures how long the target takes per batch. Then, for each moment (a share of the rows),
a fresh load (its own Meltano database, tables and audit trail) is watched until its audit trail holds that share of the
rows, killed a random time within one more batch's time later, and run again with `--force`. For each kill: the rows
in the table when it was killed, the bookmark Meltano had saved, the rows the rerun was sent, how many of them the table
already held (re-read), and whether the table ended exact (rows = distinct keys = the stand-in's count). Only
purchase_orders is read (without its lines), as in databricks_pipeline.py, so rows are records one for one.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path

from databricks_pipeline import STREAM, delta_counts, expected_rows, load, pipeline_env
from ifs_standin import start_sandbox
from kill_runs import audited_rows, kill_group, latest_run_operations, saved_bookmark, start_run

STATE_ID = "sandbox:tap-ifscloud-to-target-databricks"


def load_env(base: str, workdir: Path, batch_size: int) -> dict[str, str]:
    return {**pipeline_env(base, workdir), "TARGET_DATABRICKS_LOAD_METHOD": "delta",
            "TARGET_DATABRICKS_DELTA_ROOT": str(workdir / "delta"),
            "TARGET_DATABRICKS_AUDIT_URL": f"sqlite:///{workdir / 'audit.sqlite'}",
            "TARGET_DATABRICKS_BATCH_SIZE_ROWS": str(batch_size)}


def start_load(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen:
    return start_run(["meltano", "run", *options, "tap-ifscloud", "target-databricks"], env, log)


def finish(process: subprocess.Popen, log: Path) -> None:
    if process.wait() != 0:
        raise SystemExit(f"meltano run failed ({process.returncode}):\n" + log.read_text()[-4000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="purchase orders in the stand-in")
    parser.add_argument("--batch-size", type=int, default=5_000, help="target-databricks batch_size_rows")
    parser.add_argument("--moments", default="0.1,0.3,0.5,0.7,0.9", help="kill moments, as shares of the rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox-data"))
    args = parser.parse_args()
    moments = [float(m) for m in args.moments.split(",")]

    print(f"machine: {os.cpu_count()} cores, {load()} (other work on the machine skews every figure)")
    sandbox, base = start_sandbox(args.rows, args.seed, args.data_dir, rate_limit=0)
    results, failures = [], []
    try:
        expected = expected_rows(base)
        with tempfile.TemporaryDirectory(prefix="mlc-bench-kill-") as tmp:
            workdir = Path(tmp, "uninterrupted")
            workdir.mkdir()
            started = time.perf_counter()
            process = start_load(load_env(base, workdir, args.batch_size), workdir / "meltano.log")
            while not audited_rows(workdir / 'audit.sqlite') and process.poll() is None:
                time.sleep(0.1)
            first_batch = time.perf_counter()
            finish(process, workdir / "meltano.log")
            ended = time.perf_counter()
            batch_seconds = (ended - first_batch) / max(1, expected // args.batch_size - 1)
            print(f"uninterrupted load: {expected:,} rows in {ended - started:.1f} s, {batch_seconds:.1f} s a batch "
                  f"({load()})", flush=True)
            chance = random.Random(args.seed)

            for n, moment in enumerate(moments):
                workdir = Path(tmp, f"kill-{n}")
                workdir.mkdir()
                env, log = load_env(base, workdir, args.batch_size), workdir / "meltano.log"
                process = start_load(env, log)
                while audited_rows(workdir / 'audit.sqlite') < moment * expected and process.poll() is None:
                    time.sleep(0.1)
                time.sleep(chance.uniform(0, batch_seconds))
                if process.poll() is not None:
                    failures.append(f"the load ended before the kill at {moment:.0%}")
                    continue
                kill_group(process)
                table = workdir / "delta" / "ifscloud" / STREAM
                written = delta_counts(table)[0] if (table / "_delta_log").is_dir() else 0
                bookmark = saved_bookmark(workdir / 'meltano.db', STATE_ID, STREAM) if (workdir / "meltano.db").exists() else None
                finish(start_load(env, log, "--force"), log)
                operations = latest_run_operations(workdir / 'audit.sqlite')
                rows, distinct = delta_counts(table)
                exact = rows == distinct == expected
                if not exact:
                    failures.append(f"kill at {moment:.0%}: {rows:,} rows, {distinct:,} distinct, expected {expected:,}")
                results.append((moment, written, bookmark, sum(operations.values()), operations.get("unchanged", 0),
                                exact))
                print(f"kill at {moment:.0%} done ({load()})", flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait()

    print(f"\nkill moment | rows written when killed | saved bookmark        | rerun sent | re-read | without "
          f"checkpoints: re-read | table exact")
    for moment, written, bookmark, sent, re_read, exact in results:
        print(f"{moment:>11.0%} | {written:>23,} | {bookmark or '(none)':<21} | {sent:>10,} | {re_read:>7,} | "
              f"{written:>27,} | {'yes' if exact else 'NO'}")
    if results:
        worst = max(r[4] for r in results)
        print(f"\nbatch_size_rows {args.batch_size:,}; tap state_interval_records 100 (default); {expected:,} rows a load."
              f"\nre-read after a kill: at most {worst:,} rows (bound: one batch, {args.batch_size:,}); without "
              f"checkpoints every row written before the kill, {sum(r[1] for r in results) / len(results):,.0f} on "
              f"average here, and the rerun read all {expected:,}.")
    if failures:
        raise SystemExit("FAILED: " + "; ".join(failures))


if __name__ == "__main__":
    main()
