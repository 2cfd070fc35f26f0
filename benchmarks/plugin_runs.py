"""What the plugin benchmarks (jira_issues, salesforce_upserts, jaggaer_records) share: the `--records` argument, a
plugin run as its own process with its wall time and peak RSS, a target fed Singer messages on stdin.

MLC_BENCH_PROFILE_DIR=<folder> runs each target under cProfile and leaves its figures there (<target>-<run>.prof, for
`python -m pstats`): where a target's time goes, at the price of a slower run."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from databricks_pipeline import peak_rss_mb

BIN = Path(sys.executable).parent
POLL_SECONDS = 0.05
#: The last message of every target's input, as a tap's complete sync ends.
CLOSING_STATE = {"type": "STATE", "value": {"bookmarks": {"benchmark": {"replication_key_value": "done"}}}}
json_encoder = msgspec.json.Encoder(decimal_format="number")  # decimals as JSON numbers, as a Singer tap writes them


def records_argument(description: str, default: int, help: str | None = None) -> int:
    """The benchmark's size from `--records`, refused below 1."""
    return benchmark_arguments(description, default, help).records


def benchmark_arguments(description: str, default: int, help: str | None = None) -> argparse.Namespace:
    """`--records` (refused below 1) and `--keep-trail PATH` (where to copy the target's audit trail at the end, for
    benchmarks/audit_trail.py --trail)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--records", type=int, default=default, help=help)
    parser.add_argument("--keep-trail", type=Path, default=None,
                        help="copy the target's audit trail (SQLite) there at the end")
    args = parser.parse_args()
    if args.records < 1:
        parser.error("--records must be at least 1")
    return args


def total(rows: dict[str, list[dict]]) -> int:
    return sum(len(records) for records in rows.values())


def shown_mb(peak: float | None) -> str:
    return f"{peak:.0f} MB" if peak is not None else "not observed"


def watched(args: list[str], *, stdin=None, stderr_path: Path) -> tuple[float, float | None, int]:
    """Runs a plugin process, stdout to /dev/null; wall seconds, peak RSS (MB) and exit status."""
    peak = None
    with open(stderr_path, "wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr)
        while process.poll() is None:
            sample = peak_rss_mb(process.pid)
            if sample is not None:
                peak = max(peak or 0.0, sample)
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
    return elapsed, peak, process.returncode


def target_command(target: str, config: Path, name: str) -> list[str]:
    """The command line of a target run; under cProfile when MLC_BENCH_PROFILE_DIR names a folder (one file of
    figures per run: where its time goes, at the price of a slower run)."""
    command = [str(BIN / target), "--config", str(config)]
    profiles = os.environ.get("MLC_BENCH_PROFILE_DIR")
    if profiles:
        command = [sys.executable, "-m", "cProfile", "-o", str(Path(profiles) / f"{target}-{name}.prof"), *command]
    return command


def fed_target(target: str, config: Path, messages: list[dict], workdir: Path, name: str,
               outcome_prefix: str) -> tuple[float, float | None, str]:
    """One `target` process fed `messages` on stdin (written to a file first, so that producing them is not timed),
    then the STATE a tap ends a complete sync with (without it an empty run is a failed one: no input); wall seconds,
    peak RSS (MB) and the last line its log starts with `outcome_prefix` ("?" if none). A failed run stops the
    benchmark with the end of its log."""
    stdin_path, stderr_path = workdir / f"{name}.jsonl", workdir / f"{name}.stderr"
    stdin_path.write_bytes(b"".join(json_encoder.encode(m) + b"\n" for m in [*messages, CLOSING_STATE]))
    with open(stdin_path, "rb") as stdin:
        elapsed, peak, status = watched(target_command(target, config, name), stdin=stdin, stderr_path=stderr_path)
    log = stderr_path.read_text(errors="replace")
    if status != 0:
        raise SystemExit(f"{target} ({name}) exited with status {status}:\n{log[-3000:]}")
    outcome = re.findall(re.escape(outcome_prefix) + r"([^\n]*)", log)
    return elapsed, peak, outcome[-1] if outcome else "?"
