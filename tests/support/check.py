"""Run a plugin's ``<plugin>-check`` command as its own process, as a person or ``mlc-check`` would, and read its
results; every run is also held to the rule that no secret it was given appears in what it printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.singer import BIN


@dataclass
class CheckRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def results(self) -> list[dict]:
        """The results, from a run with ``--format json``."""
        return json.loads(self.stdout)

    def result(self, check: str) -> dict:
        found = [r for r in self.results if r["check"] == check]
        assert len(found) == 1, f"{check!r} in {[r['check'] for r in self.results]}"
        return found[0]

    def failures(self) -> list[dict]:
        return [r for r in self.results if r["status"] == "fail"]


def run_check(executable: str, config: dict | None, tmp_path: Path, *, secrets: list[str],
              output_format: str = "json", env: dict | None = None) -> CheckRun:
    """``<executable> --config <file> --format <output_format>`` (``--config ENV`` when ``config`` is None, the
    settings then coming from ``env`` as Meltano passes them); ``secrets`` must appear in neither output stream."""
    config_argument = "ENV"
    if config is not None:
        config_path = tmp_path / f"{executable}-config.json"
        config_path.write_text(json.dumps(config))
        config_argument = str(config_path)
    completed = subprocess.run([str(BIN / executable), "--config", config_argument, "--format", output_format],
                               capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    for secret in secrets:
        assert secret not in completed.stdout and secret not in completed.stderr, f"a secret was printed by {executable}"
    assert not completed.stderr.strip() or "Traceback" not in completed.stderr, completed.stderr
    return CheckRun(completed.returncode, completed.stdout, completed.stderr)


def assert_table_all_pass(run: CheckRun, system: str) -> list[str]:
    """A table whose every row is a PASS of ``system``; returns the checks, in order."""
    assert run.returncode == 0, run.stdout + run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split()[:3] == ["system", "check", "result"], run.stdout
    cells = [re.split(r"\s{2,}", row, maxsplit=3) for row in rows]
    assert cells and all(c[0] == system and c[2] == "PASS" for c in cells), run.stdout
    return [c[1] for c in cells]


def only_reads(requests_logged: list[dict], *, allowed_posts: tuple[str, ...] = ()) -> None:
    """Every request the stand-in saw was a GET, or a POST to one of ``allowed_posts`` (path endings: token
    endpoints, searches)."""
    writes = [f"{r['method']} {r['path']}" for r in requests_logged
              if r["method"] != "GET" and not (r["method"] == "POST" and r["path"].endswith(allowed_posts))]
    assert writes == [], writes
