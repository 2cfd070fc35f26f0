"""Several processes write to one audit store at once, and a batch is written fast enough for a target's hot path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from decimal import Decimal

from ml_connector_core.audit import AuditEntry, AuditTrail

WRITER = textwrap.dedent(
    """
    import sys, time
    from decimal import Decimal
    from pathlib import Path
    from ml_connector_core.audit import AuditEntry, AuditTrail

    url, name, go, batches, size = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    while not go.exists():  # start together, so that even the tables are created concurrently
        time.sleep(0.005)
    with AuditTrail(url) as trail, trail.start_run(flow="concurrency", plugin=name) as run:
        run.remember_schema("lines", {"type": "object"}, ["id"])
        for batch in range(batches):
            run.record(
                AuditEntry(
                    stream="lines", key={"writer": name, "id": batch * size + n}, operation="insert",
                    outcome="failed" if n == 0 else "succeeded", error="first of a batch" if n == 0 else None,
                    payload={"writer": name, "id": batch * size + n, "amount": Decimal("0.01") * n},
                )
                for n in range(size)
            )
    """
)


def test_processes_writing_to_one_store_at_once_all_succeed(audit_url, tmp_path):
    go = tmp_path / "go"
    batches, size = 40, 250
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, audit_url, f"writer-{n}", str(go), str(batches), str(size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(3)
    ]
    go.touch()
    reads = 0
    deadline = time.monotonic() + 120
    while any(writer.poll() is None for writer in writers) and time.monotonic() < deadline:
        try:
            with AuditTrail(audit_url) as trail:  # a reader alongside: never blocks them, never fails
                trail.runs()
                list(trail.failures(stream="lines"))
            reads += 1
        except Exception as exc:  # the tables may not exist yet only in the first instants
            assert "no such table" in str(exc) or "does not exist" in str(exc), exc
        time.sleep(0.01)
    results = [(writer.wait(timeout=120), *writer.communicate()) for writer in writers]
    for returncode, _, stderr in results:
        assert returncode == 0, stderr
    with AuditTrail(audit_url) as trail:
        runs = trail.runs()
        assert sorted(run.plugin for run in runs) == ["writer-0", "writer-1", "writer-2"]
        for run in runs:
            assert run.status == "succeeded"
            assert run.outcomes == {"succeeded": batches * (size - 1), "failed": batches}
        assert sum(1 for _ in trail.failures(stream="lines")) == 3 * batches
    assert reads > 0
