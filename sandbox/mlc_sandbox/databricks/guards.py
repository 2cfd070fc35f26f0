"""Injected faults (the next N matching requests fail) and the request log."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

FAULT_KINDS = ("status", "rate_limit", "drop", "delay")

# what a workspace's front door sends with each status
STATUS_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                      409: "RESOURCE_CONFLICT", 429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
                      502: "BAD_GATEWAY", 503: "TEMPORARILY_UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass
class Fault:
    kind: str
    count: int = 1
    status: int = 503
    retry_after: int = 1
    delay_seconds: float = 2.0
    path_contains: str | None = None  # None: any /api/ request

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        fault = cls(kind=kind, count=int(body.get("count", 1)), status=int(body.get("status", 503)),
                    retry_after=int(body.get("retry_after", 1)),
                    delay_seconds=float(body.get("delay_seconds", 2.0)), path_contains=body.get("path_contains"))
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.count < 1:
            raise ValueError("'count' must be at least 1")
        return fault


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

    def next_for(self, path: str) -> Fault | None:
        """The fault this request suffers: faults without `path_contains` hit API requests only."""
        with self._lock:
            for fault in self._faults:
                hit = fault.path_contains in path if fault.path_contains is not None else path.startswith("/api/")
                if hit:
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
