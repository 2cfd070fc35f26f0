"""Injected faults (the next N matching requests fail, are throttled, hang, lose their connection, or lose their
answer after the write was made) on the shared fault queue, and the request log."""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import ApiFault, ApiFaultQueue as FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "FAULT_APIS", "Fault", "FaultQueue", "RequestLog"]

FAULT_KINDS = ("status", "rate_limit", "drop", "delay", "lost_answer")
FAULT_APIS = ("api", "oauth")  # requests under /api/ or the token endpoint


@dataclass
class Fault(ApiFault):
    KINDS = FAULT_KINDS
    APIS = FAULT_APIS

    api: str = "api"

    def check(self) -> None:
        if self.kind == "lost_answer" and self.api != "api":
            raise ValueError("'lost_answer' applies to API requests only")
