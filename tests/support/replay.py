"""`mlc-audit replay` of a run's failures into a target process, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ml_connector_core.audit import AuditTrail
from support.singer import BIN


def replay_run(tmp_path: Path, executable: str, config: dict, run_id: str) -> subprocess.CompletedProcess:
    """Replay the failed entries of one run into `<executable> --config <file>`, in the audit trail of the config."""
    config_path = tmp_path / f"{executable}-replay-config.json"
    config_path.write_text(json.dumps(config))
    return subprocess.run(
        [str(BIN / "mlc-audit"), "--url", config["audit_url"], "replay", "--run", run_id,
         "--target-command", f"{BIN / executable} --config {config_path}"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ))


def replay_the_failed_run(tmp_path: Path, executable: str, config: dict, stand_in, failed: int) -> None:
    """The latest run left `failed` entries failed; with the stand-in's faults cleared, one replay delivers them all
    (it says how many, the trail agrees) and a second finds nothing."""
    trail = AuditTrail(config["audit_url"])
    run_id = trail.runs(1)[0].run_id
    assert len(list(trail.failures(run_id=run_id))) == failed
    stand_in.clear_faults()
    replay = replay_run(tmp_path, executable, config, run_id)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert f"replayed {failed} entries" in replay.stdout
    assert list(trail.failures()) == []
    assert "nothing to replay" in replay_run(tmp_path, executable, config, run_id).stdout
