"""`mlc-audit replay` of a run's failures into a target process, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.singer import BIN


def replay_run(tmp_path: Path, executable: str, config: dict, run_id: str) -> subprocess.CompletedProcess:
    """Replay the failed entries of one run into `<executable> --config <file>`, in the audit trail of the config."""
    config_path = tmp_path / f"{executable}-replay-config.json"
    config_path.write_text(json.dumps(config))
    return subprocess.run(
        [str(BIN / "mlc-audit"), "--url", config["audit_url"], "replay", "--run", run_id,
         "--target-command", f"{BIN / executable} --config {config_path}"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ))
