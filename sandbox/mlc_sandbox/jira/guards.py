"""Injected faults (the next N matching requests are throttled, fail, hang or lose their connection), the per-user
rate limit (a sliding one-minute window, as Jira's quota) and the request log."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..faults import ApiFault, ApiFaultQueue as FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "FAULT_APIS", "Fault", "FaultQueue", "RateLimiter", "RequestLog"]

FAULT_KINDS = ("rate_limit", "status", "drop", "delay")
# the REST API (site URL and /ex/jira), the OAuth token endpoint, or the gateway's list of sites an OAuth app may use
FAULT_APIS = ("rest", "oauth", "resources")


@dataclass
class Fault(ApiFault):
    KINDS = FAULT_KINDS
    APIS = FAULT_APIS

    api: str = "rest"
    path: str | None = None  # a substring of the API path (after /ex/jira/<cloudid>); None: any
    status: int = 503  # retry_after is sent with 429 (and 503)

    @classmethod
    def default_status(cls, kind: str) -> int:
        return 429 if kind == "rate_limit" else 503


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
