"""Running the Teams stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

import json
from pathlib import Path

from ..runner import AdminClient, InProcessStandIn, LoggedStandInProcess, option_flags, tls_flags
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


class _AdminClient(AdminClient):
    """The Teams admin interface (channels, messages, rejections, faults, tokens) over HTTP."""

    admin_timeout = 60
    tenant_id: str
    client_id: str
    client_secret: str
    team_id: str

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

    def expire_tokens(self) -> int:
        return self.admin("POST", "tokens/expire")["expired"]

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


class TeamsSandbox(_AdminClient, InProcessStandIn):
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
                 validation: str = TeamsSettings.validation, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None):
        if validation not in ("sync", "flow"):
            raise ValueError("validation must be 'sync' or 'flow'")
        self.settings = TeamsSettings(signing_key=signing_key, tenant_id=tenant_id, client_id=client_id,
                                      client_secret=client_secret, token_ttl=token_ttl, team_id=team_id,
                                      max_message_bytes=max_message_bytes, validation=validation)
        self.tenant_id, self.client_id, self.client_secret, self.team_id = tenant_id, client_id, client_secret, team_id
        self._channels = channel_specs.load(channel_sources(channels))
        self._schema_path = schema_path
        self._init_server(host, port, tls_cert, tls_key)
        self.app: TeamsApp | None = None

    def _build_app(self) -> TeamsApp:
        return TeamsApp(self.settings, Channels(self._channels), CardValidator(load_schema(self._schema_path)))


class TeamsSandboxProcess(_AdminClient, LoggedStandInProcess):
    """The Teams stand-in as a child process (`mlc-sandbox serve teams ...`), started and stopped from Python.
    `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves. Other
    options are passed on as command-line flags (`token_ttl=5` -> `--token-ttl 5`)."""

    label = "Teams"

    def __init__(self, *, port: int = 0, channels: ChannelsOption = None,
                 tenant_id: str = TeamsSettings.tenant_id, client_id: str = TeamsSettings.client_id,
                 client_secret: str = TeamsSettings.client_secret, team_id: str = TeamsSettings.team_id,
                 timeout: float = 30, tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                 **options):
        self.tenant_id, self.client_id, self.client_secret, self.team_id = tenant_id, client_id, client_secret, team_id
        flags = option_flags({"port": port, "tenant_id": tenant_id, "client_id": client_id,
                              "client_secret": client_secret, "team_id": team_id})
        for source in channel_sources(channels):
            flags += ["--channels", source]
        self._serve_child("teams", flags + option_flags(options) + tls_flags(self, tls_cert, tls_key), timeout)
