"""Injected faults (the next N matching requests fail) and the request log."""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import FaultQueue as _FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "STATUS_ERROR_CODES", "Fault", "FaultQueue", "RequestLog"]

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


class FaultQueue(_FaultQueue):
    def next_for(self, path: str) -> Fault | None:
        """The fault this request suffers: faults without `path_contains` hit API requests only."""
        return self.take(lambda fault: fault.path_contains in path if fault.path_contains is not None
                         else path.startswith("/api/"))

