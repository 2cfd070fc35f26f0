"""Running the Teams stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..http import Server
from . import channels as channel_specs
from .app import TeamsApp
from .cards import CardValidator, load_schema
from .channels import Channels
from .settings import TeamsSettings

ChannelsOption = str | dict | list | None


def channel_sources(value: ChannelsOption) -> list[str]:
    """`channels=` in Python, as command-line sources: a spec ("a=A,b=B"), a file path, {id: name}, or a list of
    ids, (id, name) pairs or {"id", "name"} objects. None: the default channels."""
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [str(value)]
    if isinstance(value, dict):
        return [json.dumps(value)]
    items = [list(v) if isinstance(v, tuple) else v for v in value]
    return [json.dumps([{"id": v[0], "name": v[1]} if isinstance(v, list) else v for v in items])]


class _AdminClient:
    """The admin interface over HTTP, so in-process and subprocess stand-ins are driven the same way."""

    base_url: str
    tenant_id: str
    client_id: str
    client_secret: str
    team_id: str

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base_url}/_admin/{path.lstrip('/')}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"admin {method} {path}: {exc.code} {exc.read().decode()[:2000]}") from None

    def channels(self) -> list[dict]:
        return self.admin("GET", "channels")["channels"]

    def channel(self, channel_id: str) -> dict:
        return self.admin("GET", f"channels/{channel_id}")

    def webhook_url(self, channel_id: str) -> str:
        return self.channel(channel_id)["webhook_url"]

    def webhooks(self) -> dict[str, str]:
        """Channel id -> Workflows webhook URL (signature included)."""
        return {c["id"]: c["webhook_url"] for c in self.channels()}

    def graph_channel_id(self, channel_id: str) -> str:
        return self.channel(channel_id)["graph_channel_id"]

    def add_channel(self, channel_id: str, name: str | None = None) -> dict:
        return self.admin("POST", "channels", {"id": channel_id, "name": name})

    def messages(self, channel_id: str | None = None) -> list[dict]:
        if channel_id is None:
            return self.admin("GET", "messages")["messages"]
        return self.admin("GET", f"channels/{channel_id}/messages")["messages"]

    def cards(self, channel_id: str) -> list[dict]:
        return [m["card"] for m in self.messages(channel_id)]

    def clear_messages(self) -> int:
        return self.admin("DELETE", "messages")["deleted"]

    def rejections(self) -> list[dict]:
        return self.admin("GET", "rejections")["rejections"]

    def throttle(self, channel_id: str | None = None, count: int = 1, retry_after: int = 1,
                 api: str | None = None) -> dict:
        """The next `count` requests to the channel (any channel when None) answer 429 with Retry-After."""
        return self.add_fault("rate_limit", count=count, channel=channel_id, retry_after=retry_after, api=api)

    def add_fault(self, kind: str, count: int = 1, **details) -> dict:
        body = {"kind": kind, "count": count, **{k: v for k, v in details.items() if v is not None}}
        return self.admin("POST", "faults", body)

    def clear_faults(self) -> dict:
        return self.admin("DELETE", "faults")

    def change_settings(self, **values) -> dict:
        return self.admin("POST", "settings", values)

    def expire_tokens(self) -> int:
        return self.admin("POST", "tokens/expire")["expired"]

    def requests(self) -> list[dict]:
        return self.admin("GET", "requests")["requests"]

    def reset(self) -> dict:
        """Forget messages, rejections, faults and the request log (channels and tokens stay)."""
        return self.admin("POST", "reset")

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def graph_url(self) -> str:
        """What stands in for https://graph.microsoft.com."""
        return self.base_url

    def graph_messages_url(self, channel_id: str) -> str:
        return self.channel(channel_id)["graph_messages_url"]


class TeamsSandbox(_AdminClient):
    """The Teams stand-in in this process, serving from a background thread.

        with TeamsSandbox(port=0, channels="finance-10=Finance%20SE,general") as teams:
            requests.post(teams.webhook_url("finance-10"), json={"type": "message", "attachments": [...]})
            teams.messages("finance-10")[0]["card"]
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", channels: ChannelsOption = None,
                 schema_path: str | Path | None = None, signing_key: str = TeamsSettings.signing_key,
                 tenant_id: str = TeamsSettings.tenant_id, client_id: str = TeamsSettings.client_id,
                 client_secret: str = TeamsSettings.client_secret, token_ttl: int = TeamsSettings.token_ttl,
                 team_id: str = TeamsSettings.team_id, max_message_bytes: int = TeamsSettings.max_message_bytes,
                 validation: str = TeamsSettings.validation):
        if validation not in ("sync", "flow"):
            raise ValueError("validation must be 'sync' or 'flow'")
        self.settings = TeamsSettings(signing_key=signing_key, tenant_id=tenant_id, client_id=client_id,
                                      client_secret=client_secret, token_ttl=token_ttl, team_id=team_id,
                                      max_message_bytes=max_message_bytes, validation=validation)
        self.tenant_id, self.client_id, self.client_secret, self.team_id = tenant_id, client_id, client_secret, team_id
        self._channels = channel_specs.load(channel_sources(channels))
        self._schema_path = schema_path
        self.host, self.requested_port = host, port
        self.app: TeamsApp | None = None
        self._server: Server | None = None
        self.base_url = ""
        self.port = 0

    def start(self) -> "TeamsSandbox":
        self.app = TeamsApp(self.settings, Channels(self._channels), CardValidator(load_schema(self._schema_path)))
        self._server = Server(self.app, self.host, self.requested_port).start()
        self.port = self._server.port
        self.base_url = f"http://{self.host}:{self.port}"
        self.app.host_port = f"{self.host}:{self.port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> "TeamsSandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class TeamsSandboxProcess(_AdminClient):
    """The Teams stand-in as a child process (`mlc-sandbox serve teams ...`), started and stopped from Python.
    `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves. Other
    options are passed on as command-line flags (`token_ttl=5` -> `--token-ttl 5`)."""

    def __init__(self, *, port: int = 0, channels: ChannelsOption = None,
                 tenant_id: str = TeamsSettings.tenant_id, client_id: str = TeamsSettings.client_id,
                 client_secret: str = TeamsSettings.client_secret, team_id: str = TeamsSettings.team_id,
                 timeout: float = 30, **options):
        self.tenant_id, self.client_id, self.client_secret, self.team_id = tenant_id, client_id, client_secret, team_id
        self._folder = Path(tempfile.mkdtemp(prefix="mlc-sandbox-teams-"))
        self._ready_file = self._folder / "ready.json"
        args = [sys.executable, "-m", "mlc_sandbox", "serve", "teams", "--port", str(port),
                "--tenant-id", tenant_id, "--client-id", client_id, "--client-secret", client_secret,
                "--team-id", team_id, "--ready-file", str(self._ready_file)]
        for source in channel_sources(channels):
            args += ["--channels", source]
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
                raise RuntimeError(f"the Teams stand-in exited: {message}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Teams stand-in did not become ready in time")
            time.sleep(0.05)
        ready = json.loads(self._ready_file.read_text())
        self.base_url, self.port = ready["base_url"], ready["port"]

    def stderr_tail(self, size: int = 3000) -> str:
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

    def __enter__(self) -> "TeamsSandboxProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
