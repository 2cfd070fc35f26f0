"""Injected faults (the next N matching requests are throttled, fail, hang or lose their connection), the per-user
rate limit (a sliding one-minute window, as Jira's quota) and the request log."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..faults import FaultQueue as _FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "FAULT_APIS", "Fault", "FaultQueue", "RateLimiter", "RequestLog"]

FAULT_KINDS = ("rate_limit", "status", "drop", "delay")
FAULT_APIS = ("rest", "oauth")  # the REST API (site URL and /ex/jira) or the OAuth token endpoint
FAULT_FIELDS = {"kind", "count", "api", "method", "path", "status", "retry_after", "delay_seconds"}


@dataclass
class Fault:
    kind: str
    count: int = 1
    api: str = "rest"
    method: str | None = None  # None: any method
    path: str | None = None  # a substring of the API path (after /ex/jira/<cloudid>); None: any
    status: int = 503
    retry_after: int = 1  # seconds, sent with 429 (and 503)
    delay_seconds: float = 2.0

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        unknown = set(body) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(kind=kind, count=int(body.get("count", 1)), api=body.get("api") or "rest",
                    method=(body.get("method") or None) and str(body["method"]).upper(), path=body.get("path"),
                    status=int(body.get("status", 429 if kind == "rate_limit" else 503)),
                    retry_after=int(body.get("retry_after", 1)), delay_seconds=float(body.get("delay_seconds", 2.0)))
        if fault.api not in FAULT_APIS:
            raise ValueError(f"'api' must be one of {', '.join(FAULT_APIS)}")
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.count < 1 or fault.retry_after < 0 or fault.delay_seconds < 0:
            raise ValueError("'count' must be at least 1, 'retry_after' and 'delay_seconds' at least 0")
        return fault

    def hits(self, api: str, method: str, path: str) -> bool:
        return (self.api == api and (self.method is None or self.method == method)
                and (self.path is None or self.path in path))


class FaultQueue(_FaultQueue):
    def next_for(self, api: str, method: str, path: str) -> Fault | None:
        return self.take(lambda fault: fault.hits(api, method, path))


class RateLimiter:
    """At most `limit` requests per user in any 60 seconds; `limit` 0 lets everything through."""

    window = 60.0

    def __init__(self, limit: int):
        self.limit = limit
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, user: str) -> tuple[bool, int, int]:
        """(admitted, remaining, seconds until a slot frees when refused)."""
        if self.limit <= 0:
            return True, 0, 0
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(user, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return False, 0, max(1, math.ceil(seen[0] + self.window - now))
            seen.append(now)
            return True, self.limit - len(seen), 0

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()
