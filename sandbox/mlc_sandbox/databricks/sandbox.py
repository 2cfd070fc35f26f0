"""Running the Databricks stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..http import Server
from .app import DatabricksApp
from .settings import DatabricksSettings
from .warehouse import Warehouse


def default_data_dir() -> Path:
    return Path(os.environ.get("MLC_SANDBOX_DATA_DIR", ".sandbox-data")) / "databricks"


class _AdminClient:
    """The admin interface over HTTP, so in-process and subprocess stand-ins are driven the same way."""

    base_url: str
    token: str
    client_id: str
    client_secret: str
    warehouse_id: str

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}/_admin/{path.lstrip('/')}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"admin {method} {path}: {exc.code} {exc.read().decode()[:2000]}") from None

    def sql(self, sql: str, dialect: str = "duckdb") -> list[list[str | None]]:
        """Rows of a query on the warehouse's storage, rendered as the Statement Execution API renders them."""
        return self.admin("POST", "sql", {"sql": sql, "dialect": dialect})["rows"]

    def tables(self) -> list[dict]:
        return self.admin("GET", "tables")["tables"]

    def statements(self) -> list[dict]:
        return self.admin("GET", "statements")["statements"]

    def define_job(self, job_id: int, name: str | None = None, duration_seconds: float = 0.5,
                   outcomes: list[str] | None = None, **options) -> dict:
        body = {"job_id": job_id, "name": name or f"job-{job_id}", "duration_seconds": duration_seconds,
                "outcomes": outcomes or [], **options}
        return self.admin("POST", "jobs", body)

    def runs(self, job_id: int | None = None) -> list[dict]:
        return self.admin("GET", "jobs/runs" + (f"?job_id={job_id}" if job_id is not None else ""))["runs"]

    def slow_down(self, seconds: float, count: int = 1, statement_contains: str | None = None) -> dict:
        """The next `count` statements (containing the text, if given) take `seconds` longer to run."""
        return self.admin("POST", "statement-delays", {"seconds": seconds, "count": count,
                                                       "statement_contains": statement_contains})

    def add_fault(self, kind: str, count: int = 1, **details) -> dict:
        return self.admin("POST", "faults", {"kind": kind, "count": count, **details})

    def clear_faults(self) -> dict:
        return self.admin("DELETE", "faults")

    def change_settings(self, **values) -> dict:
        return self.admin("POST", "settings", values)

    def requests(self) -> list[dict]:
        return self.admin("GET", "requests")["requests"]

    def add_token(self, token: str | None = None, lifetime_seconds: float | None = None) -> str:
        return self.admin("POST", "tokens", {"token": token, "lifetime_seconds": lifetime_seconds})["token_value"]

    def revoke_tokens(self) -> dict:
        return self.admin("POST", "tokens/revoke")

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oidc/v1/token"


class DatabricksSandbox(_AdminClient):
    """The Databricks stand-in in this process, serving from a background thread.

        with DatabricksSandbox(port=0, token="t") as dbx:
            WorkspaceClient(host=dbx.base_url, token=dbx.token).statement_execution.execute_statement(
                "SELECT 1", warehouse_id=dbx.warehouse_id)

    Without `data_dir` the warehouse lives in a temporary directory removed on stop; with one, tables persist there.
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", data_dir: str | Path | None = None,
                 token: str = DatabricksSettings.token, client_id: str = DatabricksSettings.client_id,
                 client_secret: str = DatabricksSettings.client_secret, token_ttl: int = DatabricksSettings.token_ttl,
                 warehouse_id: str = DatabricksSettings.warehouse_ids[0],
                 chunk_rows: int = DatabricksSettings.chunk_rows,
                 execution_delay: float = 0.0, catalogs: tuple[str, ...] = DatabricksSettings.catalogs,
                 default_catalog: str = DatabricksSettings.default_catalog,
                 statement_size_limit: int = DatabricksSettings.statement_size_limit, workers: int = 4):
        self.settings = DatabricksSettings(
            token=token, client_id=client_id, client_secret=client_secret, token_ttl=token_ttl,
            warehouse_ids=(warehouse_id,), catalogs=tuple(catalogs), default_catalog=default_catalog,
            chunk_rows=chunk_rows, execution_delay=execution_delay, statement_size_limit=statement_size_limit,
            workers=workers)
        self.host, self.requested_port = host, port
        self.token, self.client_id, self.client_secret = token, client_id, client_secret
        self.warehouse_id = warehouse_id
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        self.data_dir: Path | None = None
        self.app: DatabricksApp | None = None
        self._server: Server | None = None
        self.base_url = ""
        self.port = 0

    def start(self) -> "DatabricksSandbox":
        self.data_dir = self._given_data_dir or Path(tempfile.mkdtemp(prefix="mlc-databricks-"))
        warehouse = Warehouse(self.data_dir, self.settings.catalogs, self.settings.default_schema)
        self.app = DatabricksApp(self.settings, warehouse)
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
            self.app.close()
            self.app = None
        if self._given_data_dir is None and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "DatabricksSandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class DatabricksSandboxProcess(_AdminClient):
    """The Databricks stand-in as a child process (`mlc-sandbox serve databricks ...`), started and stopped from
    Python. `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves.
    Other options are passed on as command-line flags (`chunk_rows=5` -> `--chunk-rows 5`)."""

    def __init__(self, *, port: int = 0, data_dir: str | Path | None = None,
                 token: str = DatabricksSettings.token, client_id: str = DatabricksSettings.client_id,
                 client_secret: str = DatabricksSettings.client_secret,
                 warehouse_id: str = DatabricksSettings.warehouse_ids[0], timeout: float = 60, **options):
        self.token, self.client_id, self.client_secret = token, client_id, client_secret
        self.warehouse_id = warehouse_id
        self._folder = Path(tempfile.mkdtemp(prefix="mlc-sandbox-"))
        self._ready_file = self._folder / "ready.json"
        args = [sys.executable, "-m", "mlc_sandbox", "serve", "databricks", "--port", str(port), "--token", token,
                "--client-id", client_id, "--client-secret", client_secret, "--warehouse-id", warehouse_id,
                "--data-dir", str(data_dir if data_dir is not None else self._folder / "data"),
                "--ready-file", str(self._ready_file)]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        # a file, not a pipe: a pipe nobody reads while the server runs would block it once full
        self._stderr = open(self._folder / "stderr.log", "wb")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._stderr)
        deadline = time.monotonic() + timeout
        while not self._ready_file.exists():
            if self.process.poll() is not None:
                message = self.stderr_tail()
                self._cleanup()
                raise RuntimeError(f"the Databricks stand-in exited: {message}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Databricks stand-in did not become ready in time")
            time.sleep(0.05)
        ready = json.loads(self._ready_file.read_text())
        self.base_url, self.port = ready["base_url"], ready["port"]

    def stderr_tail(self, size: int = 3000) -> str:
        """The end of what the child wrote to stderr (tracebacks of stand-in bugs land there)."""
        path = self._folder / "stderr.log"
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""

    def _cleanup(self) -> None:
        self._stderr.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._cleanup()

    def __enter__(self) -> "DatabricksSandboxProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
