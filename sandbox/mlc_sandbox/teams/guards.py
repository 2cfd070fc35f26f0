"""Injected faults (the next N matching requests are throttled, fail, hang, lose their connection, or lose their answer
after the message was posted) and the request log."""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import FaultQueue as _FaultQueue, RequestLog

__all__ = ["FAULT_KINDS", "FAULT_APIS", "Fault", "FaultQueue", "RequestLog"]

FAULT_KINDS = ("rate_limit", "status", "drop", "delay", "lost_answer", "late_answer")
# a message post carried out (the card is in the channel), then the connection closes without an answer
# (lost_answer), or the answer comes only after delay_seconds (late_answer: a client may be gone by then)
POSTED_KINDS = ("lost_answer", "late_answer")
# which requests a fault can aim at: message posts of either API (the default), one of them, or the token endpoint
FAULT_APIS = ("workflows", "graph", "token")


@dataclass
class Fault:
    kind: str
    count: int = 1
    channel: str | None = None  # a channel id; None: any channel
    api: str | None = None  # None: Workflows webhooks and Graph message requests
    status: int = 503
    retry_after: int = 1  # seconds, sent with 429 (and 503)
    delay_seconds: float = 2.0

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        unknown = set(body) - {"kind", "count", "channel", "api", "status", "retry_after", "delay_seconds"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(kind=kind, count=int(body.get("count", 1)), channel=body.get("channel"), api=body.get("api"),
                    status=int(body.get("status", 429 if kind == "rate_limit" else 503)),
                    retry_after=int(body.get("retry_after", 1)), delay_seconds=float(body.get("delay_seconds", 2.0)))
        if fault.api is not None and fault.api not in FAULT_APIS:
            raise ValueError(f"'api' must be one of {', '.join(FAULT_APIS)} (or absent: message posts of both)")
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.kind in POSTED_KINDS and fault.api == "token":
            raise ValueError(f"'{fault.kind}' applies to message posts only (api 'workflows', 'graph' or absent)")
        if fault.count < 1 or fault.retry_after < 0:
            raise ValueError("'count' must be at least 1 and 'retry_after' at least 0")
        return fault

    def hits(self, api: str, channel_id: str | None, method: str) -> bool:
        if self.kind in POSTED_KINDS and method != "POST":  # only a post leaves something behind to lose the answer of
            return False
        if self.api is None and api == "token":
            return False
        if self.api is not None and self.api != api:
            return False
        return self.channel is None or self.channel == channel_id


class FaultQueue(_FaultQueue):
    def next_for(self, api: str, channel_id: str | None, method: str) -> Fault | None:
        return self.take(lambda fault: fault.hits(api, channel_id, method))

