"""What stands between a request and its answer: the per-tenant rate limit and injected faults."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

FAULT_KINDS = ("status", "rate_limit", "drop", "malformed", "delay")


class RateLimiter:
    """Sliding 60-second window over accepted requests; 0 or less disables it."""

    WINDOW = 60.0

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> int | None:
        """None if the request may proceed, else the seconds to wait (Retry-After)."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - self.WINDOW:
                self._accepted.popleft()
            if len(self._accepted) >= self.per_minute:
                return max(1, math.ceil(self._accepted[0] + self.WINDOW - now))
            self._accepted.append(now)
            return None


@dataclass
class Fault:
    kind: str
    count: int
    status: int = 503
    retry_after: int = 1
    delay_seconds: float = 2.0
    path_contains: str | None = None

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        fault = cls(
            kind=kind,
            count=int(body.get("count", 1)),
            status=int(body.get("status", 503)),
            retry_after=int(body.get("retry_after", 1)),
            delay_seconds=float(body.get("delay_seconds", 2.0)),
            path_contains=body.get("path_contains"),
        )
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.count < 1:
            raise ValueError("'count' must be at least 1")
        return fault


@dataclass
class FaultRates:
    """Probabilities per data request, drawn from a seeded generator so a run can be repeated."""

    status_5xx: float = 0.0
    rate_limit: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0
    delay: float = 0.0

    def total(self) -> float:
        return self.status_5xx + self.rate_limit + self.drop + self.malformed + self.delay


RANDOM_STATUSES = (500, 502, 503)


class FaultInjector:
    def __init__(self, rates: FaultRates, seed: int):
        self.rates = rates
        self._queue: list[Fault] = []
        self._rng = random.Random(f"faults:{seed}")
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def pending(self) -> list[dict]:
        with self._lock:
            return [dict(vars(f)) for f in self._queue]

    def next_for(self, path: str, data_request: bool) -> Fault | None:
        """The fault this request suffers, if any: queued ones first, then the random rates.

        Faults without `path_contains` and the random rates hit data requests only; a fault with `path_contains`
        hits any request whose path matches (so the token endpoint can fail too).
        """
        with self._lock:
            for fault in self._queue:
                matches = fault.path_contains in path if fault.path_contains is not None else data_request
                if matches:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._queue.remove(fault)
                    return fault
            rates = self.rates
            if not data_request or rates.total() <= 0:
                return None
            draw = self._rng.random()
            for kind, rate in (("status", rates.status_5xx), ("rate_limit", rates.rate_limit),
                               ("drop", rates.drop), ("malformed", rates.malformed), ("delay", rates.delay)):
                if draw < rate:
                    return Fault(kind, 1, status=self._rng.choice(RANDOM_STATUSES), retry_after=1,
                                 delay_seconds=1.0)
                draw -= rate
        return None


class RequestLog:
    """The recent requests, for tests and the demo to inspect."""

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
