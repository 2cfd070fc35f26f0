"""The channels of the stand-in's team: their ids, names, Workflows webhook (workflow id + signature) and Graph id.

Ids are derived from the channel id, so a channel's webhook URL and Graph id are the same in every run (with the same
signing key): a demo's configuration stays valid across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

CHANNEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# one channel per IFS company of the IFS stand-in (10 Sweden, 20 United States, 30 Germany) and a catch-all
DEFAULT_CHANNELS = (
    ("company-10", "IFS 10 Sweden"),
    ("company-20", "IFS 20 United States"),
    ("company-30", "IFS 30 Germany"),
    ("general", "General"),
)

# what a Workflows trigger URL carries besides the signature: permissions and signature version
TRIGGER_PERMISSIONS = "/triggers/manual/run"
SIGNATURE_VERSION = "1.0"
API_VERSION = "2016-06-01"


def workflow_id_of(channel_id: str) -> str:
    """A Logic Apps-style workflow id (32 hex digits)."""
    return hashlib.sha256(f"workflow:{channel_id}".encode()).hexdigest()[:32]


def graph_id_of(channel_id: str) -> str:
    """A Teams channel thread id as Graph shows it: 19:<hex>@thread.tacv2."""
    return f"19:{hashlib.sha256(f'thread:{channel_id}'.encode()).hexdigest()[:32]}@thread.tacv2"


def signature(signing_key: str, workflow_id: str, permissions: str = TRIGGER_PERMISSIONS,
              version: str = SIGNATURE_VERSION) -> str:
    """HMAC-SHA256 over the workflow, permissions and version, base64url without padding (43 characters)."""
    digest = hmac.new(signing_key.encode(), f"{workflow_id}\n{permissions}\n{version}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    workflow_id: str
    graph_id: str
    created_at: str

    @classmethod
    def create(cls, channel_id: str, name: str | None = None) -> "Channel":
        if not isinstance(channel_id, str) or not CHANNEL_ID.match(channel_id):
            raise ValueError(f"channel id {channel_id!r} must be 1-64 letters, digits, '.', '_' or '-' "
                             "(starting with a letter or digit)")
        name = channel_id if name is None or name == "" else name
        if not isinstance(name, str) or len(name) > 50:
            raise ValueError(f"channel name {name!r} must be a string of at most 50 characters (Teams' limit)")
        return cls(channel_id, name, workflow_id_of(channel_id), graph_id_of(channel_id),
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def webhook_path(self, signing_key: str) -> str:
        return (f"/workflows/{self.workflow_id}/triggers/manual/paths/invoke?api-version={API_VERSION}"
                f"&sp={quote(TRIGGER_PERMISSIONS, safe='')}&sv={SIGNATURE_VERSION}"
                f"&sig={signature(signing_key, self.workflow_id)}")

    def describe(self, base_url: str, signing_key: str, team_id: str) -> dict:
        return {"id": self.id, "name": self.name, "workflow_id": self.workflow_id,
                "webhook_url": base_url + self.webhook_path(signing_key),
                "team_id": team_id, "graph_channel_id": self.graph_id,
                "graph_messages_url": f"{base_url}/v1.0/teams/{team_id}/channels/{quote(self.graph_id, safe='')}"
                                      "/messages",
                "created_at": self.created_at}


class Channels:
    """The team's channels, found by id, workflow id (webhooks) or Graph thread id."""

    def __init__(self, channels: list[Channel] | None = None):
        self._lock = threading.Lock()
        self._by_id: dict[str, Channel] = {}
        for channel in channels or []:
            self.add(channel)

    def add(self, channel: Channel) -> Channel:
        with self._lock:
            if channel.id in self._by_id:
                raise KeyError(f"a channel '{channel.id}' exists already")
            self._by_id[channel.id] = channel
        return channel

    def all(self) -> list[Channel]:
        with self._lock:
            return list(self._by_id.values())

    def get(self, channel_id: str) -> Channel | None:
        with self._lock:
            return self._by_id.get(channel_id)

    def by_workflow(self, key: str) -> Channel | None:
        """The channel of a webhook path: its workflow id (as the URLs carry it) or, for convenience, its own id."""
        with self._lock:
            for channel in self._by_id.values():
                if key in (channel.workflow_id, channel.id):
                    return channel
        return None

    def by_graph_id(self, key: str) -> Channel | None:
        with self._lock:
            for channel in self._by_id.values():
                if key in (channel.graph_id, channel.id):
                    return channel
        return None


def parse_spec(spec: str) -> list[tuple[str, str | None]]:
    """`finance-10=Finance%20SE,procurement-20=Procurement` (names percent-decoded; `=name` optional)."""
    pairs = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        channel_id, sep, name = item.partition("=")
        pairs.append((channel_id.strip(), unquote(name.strip()) if sep else None))
    return pairs


def parse_json(document) -> list[tuple[str, str | None]]:
    """`[{"id", "name"}...]`, `["id", ...]`, `{"id": "name"}` or `{"channels": [...]}`."""
    if isinstance(document, dict) and isinstance(document.get("channels"), list):
        document = document["channels"]
    if isinstance(document, dict):
        return [(str(k), v) for k, v in document.items()]
    if not isinstance(document, list):
        raise ValueError("a channels file holds a list of {\"id\", \"name\"} objects or an object id -> name")
    pairs = []
    for item in document:
        if isinstance(item, str):
            pairs += parse_spec(item) if "=" in item else [(item, None)]
        elif isinstance(item, dict) and "id" in item:
            pairs.append((item["id"], item.get("name")))
        else:
            raise ValueError(f"not a channel: {item!r}")
    return pairs


def load(sources: list[str] | None) -> list[Channel]:
    """Channels from command-line values: each a JSON file, a JSON document or a spec. None or [] gives the
    defaults."""
    if not sources:
        return [Channel.create(i, n) for i, n in DEFAULT_CHANNELS]
    pairs: list[tuple[str, str | None]] = []
    for source in sources:
        source = source.strip()
        if source.startswith(("[", "{")):
            pairs += parse_json(json.loads(source))
        elif source.endswith(".json") or Path(source).is_file():
            pairs += parse_json(json.loads(Path(source).read_text()))
        else:
            pairs += parse_spec(source)
    channels = [Channel.create(i, n) for i, n in pairs]
    seen = set()
    for channel in channels:
        if channel.id in seen:
            raise ValueError(f"channel '{channel.id}' is given twice")
        seen.add(channel.id)
    return channels
