"""Injected faults (the next N matching requests fail, are throttled, hang, lose their connection, or lose their
answer after the write was made) on the shared fault queue, and the request log."""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import FaultQueue as _FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "FAULT_APIS", "Fault", "FaultQueue", "RequestLog"]

FAULT_KINDS = ("status", "rate_limit", "drop", "delay", "lost_answer")
FAULT_APIS = ("api", "oauth")  # requests under /api/ or the token endpoint
FAULT_FIELDS = {"kind", "count", "api", "method", "path", "status", "retry_after", "delay_seconds"}


@dataclass
class Fault:
    kind: str
    count: int = 1
    api: str = "api"
    method: str | None = None  # None: any method
    path: str | None = None  # a substring of the request path; None: any
    status: int = 500
    retry_after: int = 1  # seconds, sent with 429 and 503
    delay_seconds: float = 2.0

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        unknown = set(body) - FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(kind=kind, count=int(body.get("count", 1)), api=body.get("api") or "api",
                    method=(body.get("method") or None) and str(body["method"]).upper(), path=body.get("path"),
                    status=int(body.get("status", 500)), retry_after=int(body.get("retry_after", 1)),
                    delay_seconds=float(body.get("delay_seconds", 2.0)))
        if fault.api not in FAULT_APIS:
            raise ValueError(f"'api' must be one of {', '.join(FAULT_APIS)}")
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.kind == "lost_answer" and fault.api != "api":
            raise ValueError("'lost_answer' applies to API requests only")
        if fault.count < 1 or fault.retry_after < 0 or fault.delay_seconds < 0:
            raise ValueError("'count' must be at least 1, 'retry_after' and 'delay_seconds' at least 0")
        return fault

    def hits(self, api: str, method: str, path: str) -> bool:
        return (self.api == api and (self.method is None or self.method == method)
                and (self.path is None or self.path in path))


class FaultQueue(_FaultQueue):
    def next_for(self, api: str, method: str, path: str) -> Fault | None:
        return self.take(lambda fault: fault.hits(api, method, path))
