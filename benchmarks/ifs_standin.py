"""What the benchmarks share: the IFS stand-in started on a free port, its published demo credentials, a token."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
REALM, CLIENT_ID, CLIENT_SECRET = "mlc", "mlc-sandbox-client", "mlc-sandbox-secret"  # the stand-in's, not real ones
ENTITY_PATH = "/main/ifsapplications/projection/v1/PurchaseOrderHandling.svc/PurchaseOrderSet"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sandbox(rows: int, seed: int, data_dir: Path, *, rate_limit: int) -> tuple[subprocess.Popen, str]:
    """`mlc-sandbox serve ifs` with `rows` purchase orders; `rate_limit` requests per minute, 0 for none."""
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "mlc-sandbox"), "serve", "ifs", "--port", str(port), "--scale", str(rows), "--seed", str(seed),
         "--rate-limit", str(rate_limit), "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the stand-in exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(f"{base}/_admin/health", timeout=1).ok:
                return process, base
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the stand-in did not come up")


def access_token(session: requests.Session, base: str) -> str:
    return session.post(
        f"{base}/auth/realms/{REALM}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    ).json()["access_token"]
