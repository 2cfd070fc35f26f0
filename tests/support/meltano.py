"""Running this project's Meltano, as a user would, from the end-to-end tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.singer import BIN

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def meltano_run(env: dict, blocks: list[str]) -> subprocess.CompletedProcess:
    """`meltano run <blocks>` in the project; a failure shows the end of Meltano's log."""
    completed = subprocess.run([str(BIN / "meltano"), "run", *blocks], cwd=PROJECT_ROOT, env=env, capture_output=True,
                               text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed
