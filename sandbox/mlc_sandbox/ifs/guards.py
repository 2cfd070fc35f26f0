"""What stands between a request and its answer: the per-tenant rate limit and injected faults."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from ..faults import FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "RANDOM_STATUSES", "Fault", "FaultInjector", "FaultRates", "RateLimiter", "RequestLog"]

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
    method: str | None = None

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
            method=body["method"].upper() if body.get("method") else None,
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


class FaultInjector(FaultQueue):
    """The queued faults, then random ones at the configured rates."""

    def __init__(self, rates: FaultRates, seed: int):
        super().__init__()
        self.rates = rates
        self._rng = random.Random(f"faults:{seed}")

    def next_for(self, path: str, data_request: bool, method: str | None = None) -> Fault | None:
        """The fault this request suffers, if any: queued ones first, then the random rates.

        Faults without `path_contains` and the random rates hit data requests only; a fault with `path_contains`
        hits any request whose path matches (so the token endpoint can fail too); one with `method` only requests
        of that method.
        """
        with self._lock:
            fault = self._take_locked(lambda fault: fault.path_contains in path if fault.path_contains is not None
                                      else data_request, method)
            if fault is not None:
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

