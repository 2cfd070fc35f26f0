"""Injected faults (the next N matching requests fail, are throttled, hang, lose their connection or get a cut-off
answer) and the request
log, on the shared fault queue."""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import ApiFault, ApiFaultQueue as FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "FAULT_APIS", "Fault", "FaultQueue", "RequestLog"]

FAULT_KINDS = ("status", "busy", "rate_limit", "session", "drop", "delay", "truncated")
FAULT_APIS = ("rest", "oauth")  # the REST API under /services/data or the token endpoint


@dataclass
class Fault(ApiFault):
    KINDS = FAULT_KINDS
    APIS = FAULT_APIS

    api: str = "rest"  # retry_after is sent with 503 only

    @classmethod
    def default_status(cls, kind: str) -> int:
        return 503 if kind == "busy" else 500
