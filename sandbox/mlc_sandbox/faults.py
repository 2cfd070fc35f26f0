"""What the stand-ins' guards share: a queue of injected faults (the next N matching requests suffer them) and the
log of recent requests. Which requests a fault matches, and the fault's fields, stay with each stand-in."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any


class FaultQueue:
    """Queued faults, each with a `count` of requests left to hit; the first match takes one and leaves when spent.

    A fault whose `method` is set (e.g. "PATCH") hits only requests of that method, so a test can slow down or fail
    the write of a read-then-write pair without touching the read.
    """

    def __init__(self):
        self._faults: list[Any] = []
        self._lock = threading.Lock()

    def add(self, fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def _take_locked(self, matches: Callable[[Any], bool], method: str | None = None):
        """The first queued fault that `matches` (and the request's `method`, if the fault names one), its count
        spent by one (hold `_lock`)."""
        for fault in self._faults:
            wanted_method = getattr(fault, "method", None)
            if wanted_method is not None and method is not None and wanted_method.upper() != method.upper():
                continue
            if matches(fault):
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def take(self, matches: Callable[[Any], bool], method: str | None = None):
        with self._lock:
            return self._take_locked(matches, method)


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
