"""Injected faults (the next N matching requests are throttled, fail, hang or lose their connection) and the request
log."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

FAULT_KINDS = ("rate_limit", "status", "drop", "delay")
# which requests a fault can aim at: message posts of either API (the default), one of them, or the token endpoint
FAULT_APIS = ("workflows", "graph", "token")


@dataclass
class Fault:
    kind: str
    count: int = 1
    channel: str | None = None  # a channel id; None: any channel
    api: str | None = None  # None: Workflows webhooks and Graph message requests
    status: int = 503
    retry_after: int = 1  # seconds, sent with 429 (and 503)
    delay_seconds: float = 2.0

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        unknown = set(body) - {"kind", "count", "channel", "api", "status", "retry_after", "delay_seconds"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(kind=kind, count=int(body.get("count", 1)), channel=body.get("channel"), api=body.get("api"),
                    status=int(body.get("status", 429 if kind == "rate_limit" else 503)),
                    retry_after=int(body.get("retry_after", 1)), delay_seconds=float(body.get("delay_seconds", 2.0)))
        if fault.api is not None and fault.api not in FAULT_APIS:
            raise ValueError(f"'api' must be one of {', '.join(FAULT_APIS)} (or absent: message posts of both)")
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.count < 1 or fault.retry_after < 0:
            raise ValueError("'count' must be at least 1 and 'retry_after' at least 0")
        return fault

    def hits(self, api: str, channel_id: str | None) -> bool:
        if self.api is None and api == "token":
            return False
        if self.api is not None and self.api != api:
            return False
        return self.channel is None or self.channel == channel_id


class FaultQueue:
    def __init__(self):
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def next_for(self, api: str, channel_id: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits(api, channel_id):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None


class RequestLog:
    def __init__(self, size: int = 5000):
        self._entries: deque[dict] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
