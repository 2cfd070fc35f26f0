"""What the stand-ins' guards share: a queue of injected faults (the next N matching requests suffer them) and the
log of recent requests. Which requests a fault matches, and the fault's fields, stay with each stand-in."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar


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


def new_entry(method: str, path: str, **fields) -> dict:
    """A request's log entry as it arrives: when, the method and path, then what the stand-in adds."""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": method, "path": path, **fields}


class RequestLog:
    """The recent requests, for tests and the demo to inspect."""

    def __init__(self, size: int = 5000):
        self._entries: deque[dict] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def finish(self, entry: dict, response, started: float) -> None:
        """Log `entry` with the answer's status (None: the connection was dropped) and how long it took since
        `started` (time.monotonic())."""
        entry["status"] = None if response.drop else response.status
        entry["duration_ms"] = round((time.monotonic() - started) * 1000, 2)
        self.add(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class ApiFault:
    """A fault aimed at one of a stand-in's APIs (`api`, one of `APIS`; the first is the default), optionally only at
    one HTTP method and at paths containing `path`. Each stand-in names its `KINDS` and `APIS` and, where they differ,
    its default `status` per kind and any further checks (`check`)."""

    KINDS: ClassVar[tuple[str, ...]] = ()
    APIS: ClassVar[tuple[str, ...]] = ()
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"kind", "count", "api", "method", "path", "status", "retry_after", "delay_seconds"})

    kind: str
    count: int = 1
    api: str = ""
    method: str | None = None  # None: any method
    path: str | None = None  # a substring of the request path; None: any
    status: int = 500
    retry_after: int = 1  # seconds, sent with 429 and 503
    delay_seconds: float = 2.0

    @classmethod
    def default_status(cls, kind: str) -> int:
        return 500

    def check(self) -> None:
        """Raise ValueError for a combination the stand-in cannot honour."""

    @classmethod
    def from_json(cls, body: dict) -> "ApiFault":
        kind = body.get("kind")
        if kind not in cls.KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(cls.KINDS)}")
        unknown = set(body) - cls.FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(kind=kind, count=int(body.get("count", 1)), api=body.get("api") or cls.APIS[0],
                    method=(body.get("method") or None) and str(body["method"]).upper(), path=body.get("path"),
                    status=int(body.get("status", cls.default_status(kind))),
                    retry_after=int(body.get("retry_after", 1)), delay_seconds=float(body.get("delay_seconds", 2.0)))
        if fault.api not in cls.APIS:
            raise ValueError(f"'api' must be one of {', '.join(cls.APIS)}")
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        fault.check()
        if fault.count < 1 or fault.retry_after < 0 or fault.delay_seconds < 0:
            raise ValueError("'count' must be at least 1, 'retry_after' and 'delay_seconds' at least 0")
        return fault

    def hits(self, api: str, method: str, path: str) -> bool:
        return (self.api == api and (self.method is None or self.method == method)
                and (self.path is None or self.path in path))


class ApiFaultQueue(FaultQueue):
    """Queued ApiFaults."""

    def next_for(self, api: str, method: str, path: str) -> ApiFault | None:
        return self.take(lambda fault: fault.hits(api, method, path))

    def strike(self, api: str, method: str, path: str, entry: dict) -> ApiFault | None:
        """The fault this request suffers, its kind noted in the request's log `entry`. A delay is served here and
        the request then goes on as usual (None), so callers only answer the faults that change the answer."""
        fault = self.next_for(api, method, path)
        if fault is None:
            return None
        entry["fault"] = fault.kind
        if fault.kind == "delay":
            time.sleep(fault.delay_seconds)
            return None
        return fault
