"""What every stand-in's Python handle shares: the admin client over HTTP(S), the in-process server's start/stop
bookkeeping and the child process (`mlc-sandbox serve <name>`) that reports its port in a ready file.

Every handle takes `tls_cert=`/`tls_key=` (PEM files): the stand-in then serves HTTPS (base_url https://...) and its
admin client trusts exactly that certificate."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from .http import Server, trusting_certificate


class AdminClient:
    """The admin interface over HTTP, so in-process and subprocess stand-ins are driven the same way."""

    base_url: str
    tls_cert: Path | None = None  # the certificate served over HTTPS, if any: the admin calls trust it
    admin_timeout: float = 120  # seconds an admin call may take
    admin_error_chars: int = 2000  # how much of an error body goes into the exception

    def _admin_tls_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None:
            return None
        context = getattr(self, "_admin_tls", None)
        if context is None:
            context = self._admin_tls = trusting_certificate(self.tls_cert)
        return context

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}/_admin/{path.lstrip('/')}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.admin_timeout,
                                        context=self._admin_tls_context()) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"admin {method} {path}: {exc.code} {exc.read().decode()[:self.admin_error_chars]}") from None

    def add_fault(self, kind: str, count: int = 1, **details) -> dict:
        """Details given as None are left out (the stand-ins refuse unknown or null fault fields)."""
        body = {"kind": kind, "count": count, **{k: v for k, v in details.items() if v is not None}}
        return self.admin("POST", "faults", body)

    def clear_faults(self) -> dict:
        return self.admin("DELETE", "faults")

    def change_settings(self, **values) -> dict:
        return self.admin("POST", "settings", values)

    def requests(self) -> list[dict]:
        return self.admin("GET", "requests")["requests"]


class SettingsAdminClient(AdminClient):
    """The admin client of a stand-in whose handle holds its settings (the OAuth client among them) and whose admin
    interface has /info and /reset."""

    admin_timeout = 60
    settings: Any

    @property
    def client_id(self) -> str:
        return self.settings.client_id

    @property
    def client_secret(self) -> str:
        return self.settings.client_secret

    def info(self) -> dict:
        return self.admin("GET", "info")

    def reset(self) -> dict:
        return self.admin("POST", "reset")


class InProcessStandIn:
    """Serving an app from a background thread of this process; subclasses build the app in `_build_app` (or
    override `start`/`stop` when the app holds more than the server, e.g. files)."""

    host: str
    requested_port: int

    def _init_server(self, host: str, port: int, tls_cert: str | Path | None = None,
                     tls_key: str | Path | None = None) -> None:
        self.host, self.requested_port = host, port
        self.tls_cert, self.tls_key = _tls_files(tls_cert, tls_key)
        self._server: Server | None = None
        self.base_url = ""
        self.port = 0

    def _serve(self, app) -> None:
        self._server = Server(app, self.host, self.requested_port, tls_cert=self.tls_cert,
                              tls_key=self.tls_key).start()
        self.port = self._server.port
        self.base_url = self._server.base_url

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _build_app(self):
        raise NotImplementedError

    def start(self) -> Self:
        self.app = self._build_app()
        self._serve(self.app)
        return self

    def stop(self) -> None:
        self._stop_server()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _tls_files(tls_cert: str | Path | None, tls_key: str | Path | None) -> tuple[Path | None, Path | None]:
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("serving HTTPS needs both tls_cert and tls_key (PEM files)")
    return (Path(tls_cert), Path(tls_key)) if tls_cert is not None else (None, None)


def tls_flags(handle: "AdminClient", tls_cert: str | Path | None, tls_key: str | Path | None) -> list[str]:
    """`--tls-cert C --tls-key K` for a child stand-in (none without them); the handle's admin client trusts C."""
    handle.tls_cert, _ = _tls_files(tls_cert, tls_key)
    return ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)] if tls_cert is not None else []


def serve_command(name: str, *args: str) -> list[str]:
    """The command line of `mlc-sandbox serve <name> ...` with this interpreter."""
    return [sys.executable, "-m", "mlc_sandbox", "serve", name, *args]


def option_flags(options: dict) -> list[str]:
    """Python keyword options as command-line flags (`chunk_rows=5` -> `--chunk-rows 5`)."""
    args: list[str] = []
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def terminate(process: subprocess.Popen) -> None:
    """Ask the child to stop (SIGTERM), kill it if it has not within 15 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class StandInProcess:
    """A stand-in as a child process that writes a ready file with its base URL once it serves."""

    label: str  # the stand-in's name in error messages ("the IFS stand-in exited: ...")
    process: subprocess.Popen
    _ready_file: Path

    def _exit_message(self) -> str:
        """What the child said before exiting early (and any cleanup needed before raising)."""
        raise NotImplementedError

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready_file.exists():
            if self.process.poll() is not None:
                message = self._exit_message()
                raise RuntimeError(f"the {self.label} stand-in exited: {message}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.label} stand-in did not become ready in time")
            time.sleep(0.05)
        ready = json.loads(self._ready_file.read_text())
        self.base_url, self.port = ready["base_url"], ready["port"]

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class LoggedStandInProcess(StandInProcess):
    """A child whose stderr goes to a file in its own temporary folder (removed on stop): a pipe nobody reads while
    the server runs would block it once full."""

    def _prepare_folder(self, prefix: str) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix=prefix))
        self._ready_file = self._folder / "ready.json"

    def _serve_child(self, name: str, flags: list[str], timeout: float) -> None:
        """Run `mlc-sandbox serve <name> <flags>` in a fresh folder and wait until it serves."""
        self._prepare_folder(f"mlc-sandbox-{name}-")
        self._spawn(serve_command(name, *flags, "--ready-file", str(self._ready_file)), timeout)

    def _spawn(self, args: list[str], timeout: float) -> None:
        self._stderr = open(self._folder / "stderr.log", "wb")
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self._wait_ready(timeout)

    def stderr_tail(self, size: int = 3000) -> str:
        """The end of what the child wrote to stderr (tracebacks of stand-in bugs land there)."""
        path = self._folder / "stderr.log"
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else ""

    def _exit_message(self) -> str:
        message = self.stderr_tail()
        self._cleanup()
        return message

    def _cleanup(self) -> None:
        self._stderr.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def stop(self) -> None:
        terminate(self.process)
        self._cleanup()
