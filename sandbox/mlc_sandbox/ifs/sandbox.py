"""Running the IFS stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ..http import Server
from .app import IfsApp, IfsSettings
from .guards import FaultRates
from .cache import open_store

API_ROOT = "/main/ifsapplications/projection/v1"


def default_data_dir() -> Path:
    return Path(os.environ.get("MLC_SANDBOX_DATA_DIR", ".sandbox-data"))


class _AdminClient:
    """The admin interface over HTTP, so in-process and subprocess stand-ins are driven the same way."""

    base_url: str

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}/_admin/{path.lstrip('/')}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"admin {method} {path}: {exc.code} {exc.read().decode()[:500]}") from None

    def create(self, entity_set: str, record: dict) -> dict:
        return self.admin("POST", f"records/{entity_set}", {"record": record})

    def create_many(self, entity_set: str, records: list[dict]) -> dict:
        return self.admin("POST", f"records/{entity_set}", {"records": records})

    def change(self, entity_set: str, key: dict, changes: dict, changed_at: str | None = None) -> dict:
        body = {"key": key, "changes": changes, **({"changed_at": changed_at} if changed_at else {})}
        return self.admin("PATCH", f"records/{entity_set}", body)

    def delete(self, entity_set: str, key: dict) -> dict:
        return self.admin("DELETE", f"records/{entity_set}", {"key": key})

    def add_fault(self, kind: str, count: int = 1, **details) -> dict:
        return self.admin("POST", "faults", {"kind": kind, "count": count, **details})

    def clear_faults(self) -> dict:
        return self.admin("DELETE", "faults")

    def change_settings(self, **values) -> dict:
        return self.admin("POST", "settings", values)

    def requests(self) -> list[dict]:
        return self.admin("GET", "requests")["requests"]

    def clear_requests(self) -> None:
        self.admin("DELETE", "requests")

    def revoke_tokens(self) -> dict:
        return self.admin("POST", "tokens/revoke")

    # where things are

    def service_url(self, projection: str) -> str:
        return f"{self.base_url}{API_ROOT}/{projection}.svc"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/realms/{self.realm}/protocol/openid-connect/token"


class IfsSandbox(_AdminClient):
    """The IFS stand-in in this process, serving from a background thread.

        with IfsSandbox(scale=200, seed=7, port=0, token_ttl=180) as ifs:
            requests.get(ifs.service_url("PurchaseOrderHandling") + "/PurchaseOrderSet", ...)
    """

    def __init__(self, *, scale: int = 1000, seed: int = 42, port: int = 0, host: str = "127.0.0.1",
                 token_ttl: int = 180, rate_limit: int = 1000, page_size: int = 1000,
                 time_zone: str = "Europe/Stockholm", realm: str = "mlc", client_id: str = "mlc-sandbox-client",
                 client_secret: str = "mlc-sandbox-secret", data_dir: str | Path | None = None,
                 fault_rates: FaultRates | None = None, fault_seed: int | None = None):
        self.settings = IfsSettings(scale=scale, seed=seed, token_ttl=token_ttl, rate_limit=rate_limit,
                                    page_size=page_size, time_zone=time_zone, realm=realm, client_id=client_id,
                                    client_secret=client_secret, fault_rates=fault_rates or FaultRates(),
                                    fault_seed=fault_seed)
        self.host, self.requested_port = host, port
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.realm, self.client_id, self.client_secret = realm, client_id, client_secret
        self.app: IfsApp | None = None
        self._server: Server | None = None
        self.base_url = ""
        self.port = 0

    def start(self) -> "IfsSandbox":
        store = open_store(self.data_dir, self.settings.seed, self.settings.scale)
        self.app = IfsApp(self.settings, store)
        self._server = Server(self.app, self.host, self.requested_port).start()
        self.port = self._server.port
        self.base_url = f"http://{self.host}:{self.port}"
        self.app.host_port = f"{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.app is not None:
            self.app.store.close()
            self.app = None

    def __enter__(self) -> "IfsSandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class IfsSandboxProcess(_AdminClient):
    """The IFS stand-in as a child process (`mlc-sandbox serve ifs ...`), started and stopped from Python.

    `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves.
    """

    def __init__(self, *, scale: int = 1000, seed: int = 42, port: int = 0, data_dir: str | Path | None = None,
                 realm: str = "mlc", timeout: float = 600, **options):
        self.realm = realm
        self._ready_file = Path(tempfile.mkdtemp(prefix="mlc-sandbox-")) / "ready.json"
        args = [sys.executable, "-m", "mlc_sandbox", "serve", "ifs", "--port", str(port), "--scale", str(scale),
                "--seed", str(seed), "--realm", realm, "--ready-file", str(self._ready_file)]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not self._ready_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the IFS stand-in exited: {self.process.stderr.read().decode()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the IFS stand-in did not become ready in time")
            time.sleep(0.05)
        ready = json.loads(self._ready_file.read_text())
        self.base_url, self.port = ready["base_url"], ready["port"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self._ready_file.unlink(missing_ok=True)
        self._ready_file.with_name(self._ready_file.name + ".tmp").unlink(missing_ok=True)
        self._ready_file.parent.rmdir()

    def __enter__(self) -> "IfsSandboxProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
