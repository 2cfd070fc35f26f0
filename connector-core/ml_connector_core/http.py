"""Being a polite HTTP client: a request budget per tenant, and how long to wait before a retry."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import deque
from collections.abc import Generator

import requests

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_WAIT_SECONDS = 120.0


class RequestBudget:
    """At most ``requests_per_minute`` requests in any sliding 60-second window, shared by every thread."""

    def __init__(self, requests_per_minute: int, *, clock=time.monotonic, sleep=time.sleep) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.requests_per_minute = requests_per_minute
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Wait until one more request fits in the budget; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 60.0:
                    self._sent.popleft()
                if len(self._sent) < self.requests_per_minute:
                    self._sent.append(now)
                    return waited
                pause = 60.0 - (now - self._sent[0])
            self._sleep(pause)
            waited += pause


_budgets: dict[str, RequestBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(tenant_key: str, requests_per_minute: int) -> RequestBudget:
    """One budget per tenant in this process, whatever number of streams or sessions use it."""
    with _budgets_lock:
        budget = _budgets.get(tenant_key)
        if budget is None or budget.requests_per_minute != requests_per_minute:
            budget = _budgets[tenant_key] = RequestBudget(requests_per_minute)
        return budget


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """The server's own wait, from ``Retry-After`` as seconds or as an HTTP date; None when absent or unreadable."""
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retry_waits(
    *, base: float = 1.0, factor: float = 2.0, cap: float = 60.0
) -> Generator[float, BaseException | None, None]:
    """Wait generator for ``backoff.on_exception``: backoff sends it each exception.

    A ``Retry-After`` on the failed response wins (never shortened by jitter: the caller adds jitter on top);
    otherwise the wait grows exponentially with full jitter, up to ``cap``.
    """
    attempt = 0
    exception = yield 0.0  # backoff primes the generator before the first failure
    while True:
        response = getattr(exception, "response", None)
        server_wait = retry_after_seconds(response)
        if server_wait is not None:
            wait = min(server_wait, MAX_WAIT_SECONDS)
        elif getattr(exception, "retry_immediately", False):
            wait = 0.0
        else:
            wait = random.uniform(0, min(cap, base * factor**attempt))
        attempt += 1
        exception = yield wait
