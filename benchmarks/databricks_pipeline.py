"""`meltano run tap-ifscloud target-databricks` end to end (Delta path, local folder) versus the same tap into a plain
JSON Lines target, on the purchase_orders stream of the IFS stand-in; and target-databricks's peak memory.

    .venv/bin/python benchmarks/databricks_pipeline.py --rows 1000000

Both runs go through Meltano in the same session against the same stand-in (no rate limit) and the same data: only
purchase_orders is selected, without its lines expanded, so each run moves exactly --rows records. Each run has its own
temporary Meltano database (no state carries over), output folder and, for target-databricks, audit trail (SQLite).
The seconds are wall time of `meltano run`, Meltano's own start-up included. The ratio is databricks / jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from ifs_standin import BIN, CLIENT_SECRET, ENTITY_PATH, access_token, start_sandbox

ROOT = Path(__file__).resolve().parent.parent
STREAM, KEY = "purchase_orders", "OrderNo"
POLL_SECONDS = 0.2


def expected_rows(base: str) -> int:
    """How many purchase orders the stand-in holds, asked as any OData client would ($count)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {access_token(session, base)}"
    response = session.get(f"{base}{ENTITY_PATH}?$count=true&$top=0")
    response.raise_for_status()
    return response.json()["@odata.count"]


def private_sys_dir(workdir: Path) -> Path:
    """A .meltano of this run's own that uses the project's installed plugins.

    Meltano writes each plugin's config, catalog and state files under .meltano/run/<plugin>/, one fixed name per
    plugin: another `meltano run` in this project at the same time (the test suite) would overwrite or delete them
    under this one. Only the run folder is private; the plugins' virtual environments are the project's own.
    """
    project = ROOT / ".meltano"
    for kind, plugin in (("extractors", "tap-ifscloud"), ("loaders", "target-jsonl"), ("loaders", "target-databricks")):
        if not (project / kind / plugin / "venv").is_dir():
            raise SystemExit(f"{plugin} is not installed: run .venv/bin/meltano install first")
    sys_dir = workdir / "meltano-sys"
    sys_dir.mkdir()
    for kind in project.iterdir():  # extractors, loaders, mappers, ...: every kind of installed plugin
        if kind.is_dir() and kind.name not in ("run", "logs"):
            (sys_dir / kind.name).symlink_to(kind, target_is_directory=True)
    return sys_dir


def pipeline_env(base: str, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MELTANO_ENVIRONMENT": "sandbox",
        "MELTANO_SYS_DIR_ROOT": str(private_sys_dir(workdir)),
        "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",  # a fresh system database: no state, no runs
        "TAP_IFSCLOUD_BASE_URL": base,
        "TAP_IFSCLOUD_CLIENT_SECRET": CLIENT_SECRET,
        "TAP_IFSCLOUD__SELECT": json.dumps([f"{STREAM}.*"]),
        "TAP_IFSCLOUD_STREAM_OVERRIDES": json.dumps({STREAM: {"expand": ""}}),
        "TAP_IFSCLOUD_REQUESTS_PER_MINUTE": "1000000",  # the tap's own budget (default 900/min) would pace the run
    }


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def find_descendant(root: int, program: str) -> int | None:
    """A process under `root` running `program` (as the executable or the script a Python interpreter runs)."""
    children = _children_of()
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(os.path.basename(arg.decode(errors="replace")) == program for arg in argv[:2]):
            return pid
        pending.extend(children.get(pid, []))
    return None


def peak_rss_mb(pid: int) -> float | None:
    """The kernel's high-water mark of the process's resident memory so far (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def meltano_run(loader: str, env: dict[str, str], log: Path, watch: str | None = None) -> tuple[float, float | None]:
    """Runs `meltano run tap-ifscloud <loader>`; returns wall seconds and the peak RSS (MB) of the `watch` process.

    The peak is polled from /proc rather than taken from wait4(): the target is Meltano's child, not ours, and the
    rusage wait4() gives for Meltano is the maximum over Meltano and every descendant it reaped (the tap included),
    which cannot be told apart. Other target-databricks processes may run on the machine (tests), so only one under
    this Meltano process counts. VmHWM is the kernel's own high-water mark, so a spike between two polls is kept; only
    growth in the last 0.2 s before the process exits can be missed.
    """
    with open(log, "w") as output:
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / "meltano"), "run", "tap-ifscloud", loader], cwd=ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
        watched, peak = None, None
        while process.poll() is None:
            if watch and watched is None:
                watched = find_descendant(process.pid, watch)
            if watched is not None:
                sample = peak_rss_mb(watched)
                if sample is not None:
                    peak = max(peak or 0.0, sample)
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"meltano run tap-ifscloud {loader} failed ({process.returncode}):\n"
                         + log.read_text()[-4000:])
    return elapsed, peak


def count_lines(path: Path) -> int:
    lines = 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def duckdb_with_delta():
    """A DuckDB connection with the delta extension: a reader of Delta tables that did not write them."""
    import duckdb
    import duckdb_extension_delta

    extension = next(Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension}'")
    return connection


def delta_counts(location: Path) -> tuple[int, int]:
    """Rows and distinct keys, read back by a reader that did not write the table: DuckDB's delta extension."""
    return duckdb_with_delta().execute(f"SELECT count(*), count(DISTINCT {KEY}) FROM delta_scan('{location}')").fetchone()


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6 if path.is_dir() else path.stat().st_size / 1e6


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="purchase orders in the stand-in")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=Path(".sandbox-data"))
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores, {load()} (other work on the machine skews every figure)")
    print(f"starting the IFS stand-in with {args.rows:,} purchase orders (generated once, cached in {args.data_dir}) ...",
          flush=True)
    sandbox, base = start_sandbox(args.rows, args.seed, args.data_dir, rate_limit=0)
    failures = []
    try:
        expected = expected_rows(base)
        with tempfile.TemporaryDirectory(prefix="mlc-bench-") as tmp:
            jsonl_dir, databricks_dir = Path(tmp, "jsonl"), Path(tmp, "databricks")
            jsonl_dir.mkdir()
            databricks_dir.mkdir()

            print(f"meltano run tap-ifscloud target-jsonl ... ({load()})", flush=True)
            env = {**pipeline_env(base, jsonl_dir), "TARGET_JSONL_DESTINATION_PATH": str(jsonl_dir / "out")}
            (jsonl_dir / "out").mkdir()
            jsonl_seconds, _ = meltano_run("target-jsonl", env, jsonl_dir / "meltano.log")
            written = sorted(p.name for p in (jsonl_dir / "out").iterdir())
            if written != [f"{STREAM}.jsonl"]:
                failures.append(f"target-jsonl wrote {written}, not only {STREAM}.jsonl: the selection leaked")
            jsonl_rows = count_lines(jsonl_dir / "out" / f"{STREAM}.jsonl")

            print(f"meltano run tap-ifscloud target-databricks ... ({load()})", flush=True)
            delta_root = databricks_dir / "delta"
            env = {**pipeline_env(base, databricks_dir), "TARGET_DATABRICKS_LOAD_METHOD": "delta",
                   "TARGET_DATABRICKS_DELTA_ROOT": str(delta_root),
                   "TARGET_DATABRICKS_AUDIT_URL": f"sqlite:///{databricks_dir / 'audit.sqlite'}"}
            databricks_seconds, peak_mb = meltano_run("target-databricks", env, databricks_dir / "meltano.log",
                                                      watch="target-databricks")
            tables = sorted(p.name for p in (delta_root / "ifscloud").iterdir())
            if tables != [STREAM]:
                failures.append(f"target-databricks wrote tables {tables}, not only {STREAM}: the selection leaked")
            databricks_rows, distinct_keys = delta_counts(delta_root / "ifscloud" / STREAM)
            delta_mb, audit_mb = size_mb(delta_root), size_mb(databricks_dir / "audit.sqlite")
            print(f"done ({load()})", flush=True)
    finally:
        sandbox.terminate()
        sandbox.wait()

    jsonl_rate, databricks_rate = jsonl_rows / jsonl_seconds, databricks_rows / databricks_seconds
    print(f"tap-ifscloud -> target-jsonl      : {jsonl_rows:>10,} rows in {jsonl_seconds:7.1f} s = {jsonl_rate:>9,.0f} rows/s")
    print(f"tap-ifscloud -> target-databricks : {databricks_rows:>10,} rows in {databricks_seconds:7.1f} s = "
          f"{databricks_rate:>9,.0f} rows/s")
    print(f"ratio databricks / jsonl          : {databricks_rate / jsonl_rate:.2f}")
    print("target-databricks peak memory     : " + (f"{peak_mb:.0f} MB (max RSS)" if peak_mb else "not observed"))
    print(f"target-databricks wrote           : Delta table {delta_mb:,.0f} MB, audit trail {audit_mb:,.0f} MB")
    check = "OK" if distinct_keys == databricks_rows == expected else "MISMATCH"
    print(f"Delta table check (DuckDB delta)  : {distinct_keys:,} distinct {KEY} in {databricks_rows:,} rows, "
          f"expected {expected:,}: {check}")
    if check != "OK":
        failures.append(f"the Delta table holds {databricks_rows:,} rows and {distinct_keys:,} distinct {KEY}, "
                        f"not {expected:,}")
    if jsonl_rows != expected:
        failures.append(f"target-jsonl wrote {jsonl_rows:,} rows, not {expected:,}")
    if expected != args.rows:
        print(f"note: the stand-in holds {expected:,} purchase orders for --rows {args.rows:,}")
    if failures:
        raise SystemExit("FAILED: " + "; ".join(failures))


if __name__ == "__main__":
    main()
