"""Running this project's Meltano, as a user would, from the end-to-end tests."""

from __future__ import annotations

import os
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


def fresh_copy(destination: Path) -> Path:
    """The project's files as a clone would have them, plus the bootstrapped .venv and Meltano's plugin venvs."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    (destination / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    (destination / ".meltano").mkdir()
    for plugin_type in (PROJECT_ROOT / ".meltano").iterdir():
        if plugin_type.is_dir() and plugin_type.name not in ("run", "logs"):
            (destination / ".meltano" / plugin_type.name).symlink_to(plugin_type)
    return destination


def user_env(home: Path) -> dict:
    """The environment of a user who has set nothing of ours (no TAP_, TARGET_, MELTANO_ or MLC_ variable), with HOME
    moved so that Meltano's logs (under ~/.local/state/meltano) land in the test's folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TAP_", "TARGET_", "MELTANO_", "MLC_")) and k != "XDG_STATE_HOME"}
    return {**env, "HOME": str(home)}
