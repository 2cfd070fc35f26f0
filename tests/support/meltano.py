"""Running this project's Meltano, as a user would, from the end-to-end tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ml_connector_core.audited_target import EXIT_UNDELIVERED
from support.singer import BIN

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def meltano_run(env: dict, blocks: list[str], *, undelivered: bool = False) -> subprocess.CompletedProcess:
    """`meltano run <blocks>` in the project; a failure shows the end of Meltano's log. With ``undelivered`` the run
    must fail because its target could not deliver some records (exit status 3), and only for that reason."""
    completed = subprocess.run([str(BIN / "meltano"), "run", *blocks], cwd=PROJECT_ROOT, env=env, capture_output=True,
                               text=True, timeout=900)
    if undelivered:
        assert completed.returncode != 0, completed.stderr[-4000:]
        assert f"Exit status {EXIT_UNDELIVERED}: the input was read to the end" in completed.stderr, completed.stderr[-4000:]
    else:
        assert completed.returncode == 0, completed.stderr[-4000:]
    return completed
