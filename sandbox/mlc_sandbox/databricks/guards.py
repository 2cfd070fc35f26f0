"""Injected faults (queued: the next N matching requests suffer them; random: a seeded share of API requests) and the
request log.

What each kind does, as a workspace does it:

- `status`: the front door answers `status` (default 503) in Databricks' error shape, nothing is carried out; a 503
  carries `Retry-After`.
- `rate_limit`: 429 `REQUEST_LIMIT_EXCEEDED` with `Retry-After`, nothing is carried out.
- `drop`: the connection closes before the request is carried out.
- `drop_response`: the request is carried out (a statement runs, a job starts), then the connection closes before the
  answer: the client cannot tell whether it happened.
- `delay`: the answer comes `delay_seconds` late.
- `statement_failed`: a statement submission is accepted and the statement ends FAILED with `error_code` and
  `message` (default: the concurrent-write conflict Delta reports, ABORTED `[DELTA_CONCURRENT_APPEND]`); nothing of it
  is written.
- `slow_statement`: a statement submission takes `delay_seconds` longer to run (RUNNING meanwhile), so a client whose
  wait_timeout is shorter gets it back RUNNING and must poll.
- `token_expired`: the bearer token of the request expires now: this request and every later one with it are refused
  as workspaces refuse expired tokens (OAuth: `expired_token_status`, PAT: 403 "Invalid access token.").

Faults without `path_contains` hit /api/ requests; `path_contains` can aim one at the token endpoint too. `method`
narrows to one HTTP method; `statement_contains` to statement submissions whose text contains it (statement kinds hit
statement submissions only, whatever their filters). A request takes at most one queued fault on the way and, if it
gets through to its statement, one statement fault (a slow statement whose answer is lost).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from ..faults import FaultQueue as _FaultQueue, RequestLog
from .sql_errors import concurrent_append

__all__ = ["FAULT_KINDS", "RANDOM_STATUSES", "STATEMENT_KINDS", "STATUS_ERROR_CODES", "Fault", "FaultInjector",
           "FaultRates", "RequestLog"]

FAULT_KINDS = ("status", "rate_limit", "drop", "drop_response", "delay", "statement_failed", "slow_statement",
               "token_expired")
STATEMENT_KINDS = ("statement_failed", "slow_statement")
CARRIED_OUT = ("delay", "drop_response")  # the kinds on the way after which the request is still carried out

# what a workspace's front door sends with each status
STATUS_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                      409: "RESOURCE_CONFLICT", 429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
                      502: "BAD_GATEWAY", 503: "TEMPORARILY_UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
RANDOM_STATUSES = (500, 502, 503)

# `status.error.error_code` of a failed statement: the Statement Execution API's ServiceErrorCode values
STATEMENT_ERROR_CODES = ("ABORTED", "ALREADY_EXISTS", "BAD_REQUEST", "CANCELLED", "DEADLINE_EXCEEDED",
                         "INTERNAL_ERROR", "IO_ERROR", "NOT_FOUND", "RESOURCE_EXHAUSTED", "SERVICE_UNDER_MAINTENANCE",
                         "TEMPORARILY_UNAVAILABLE", "UNAUTHENTICATED", "UNKNOWN", "WORKSPACE_TEMPORARILY_UNAVAILABLE")
# the message a statement failed with each of these codes carries when the fault names none
_TRANSIENT_MESSAGES = {
    "TEMPORARILY_UNAVAILABLE": "The service is temporarily unavailable. Please try again later.",
    "WORKSPACE_TEMPORARILY_UNAVAILABLE": "The workspace is temporarily unavailable. Please try again later.",
    "SERVICE_UNDER_MAINTENANCE": "The service is under maintenance. Please try again later.",
    "RESOURCE_EXHAUSTED": "The SQL warehouse is overloaded: too many statements are queued. Please try again later.",
    "INTERNAL_ERROR": "An internal error occurred. Please try again later.",
}
# the failures random statement faults play: a concurrent writer, a warehouse that is briefly unavailable
RANDOM_STATEMENT_ERRORS = ("ABORTED", "TEMPORARILY_UNAVAILABLE")


@dataclass
class Fault:
    kind: str
    count: int = 1
    status: int | None = None  # status: default 503; token_expired: default the expired_token_status setting
    retry_after: int = 1  # seconds, sent with 429 and 503
    delay_seconds: float = 2.0
    path_contains: str | None = None  # None: any /api/ request
    method: str | None = None  # None: any method
    statement_contains: str | None = None  # only statement submissions whose text contains this
    error_code: str = "ABORTED"  # statement_failed
    message: str | None = None  # statement_failed; None: the usual message for error_code

    @classmethod
    def from_json(cls, body: dict) -> "Fault":
        kind = body.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"'kind' must be one of {', '.join(FAULT_KINDS)}")
        unknown = set(body) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        status = body.get("status")
        fault = cls(kind=kind, count=int(body.get("count", 1)),
                    status=int(status) if status is not None else (503 if kind == "status" else None),
                    retry_after=int(body.get("retry_after", 1)),
                    delay_seconds=float(body.get("delay_seconds", 2.0)), path_contains=body.get("path_contains"),
                    method=str(body["method"]).upper() if body.get("method") else None,
                    statement_contains=body.get("statement_contains"),
                    error_code=str(body.get("error_code", "ABORTED")), message=body.get("message"))
        if fault.kind == "status" and not 400 <= fault.status <= 599:
            raise ValueError("'status' must be a 4xx or 5xx code")
        if fault.kind == "token_expired" and fault.status not in (None, 401, 403):
            raise ValueError("'status' of token_expired is 401 or 403 (how workspaces refuse an expired token)")
        if fault.kind == "statement_failed":
            if fault.error_code not in STATEMENT_ERROR_CODES:
                raise ValueError(f"'error_code' must be one of {', '.join(STATEMENT_ERROR_CODES)}")
            if fault.message is None and fault.error_code != "ABORTED" \
                    and fault.error_code not in _TRANSIENT_MESSAGES:
                raise ValueError(f"give the 'message' a statement failed with {fault.error_code} carries "
                                 "(e.g. \"[INSUFFICIENT_PERMISSIONS] ... SQLSTATE: 42501\")")
        if fault.count < 1 or fault.retry_after < 0 or fault.delay_seconds < 0:
            raise ValueError("'count' must be at least 1, 'retry_after' and 'delay_seconds' at least 0")
        return fault

    def hits(self, path: str, method: str, statement: str | None) -> bool:
        """Whether a request to `path` with `method` suffers this fault; `statement` is the text of a statement
        submission (None for any other request)."""
        if self.kind in STATEMENT_KINDS or self.statement_contains is not None:
            if statement is None or (self.statement_contains is not None and self.statement_contains not in statement):
                return False
        if self.method is not None and self.method != method.upper():
            return False
        if self.path_contains is not None:
            return self.path_contains in path
        return path.startswith("/api/")

    def statement_error(self) -> dict:
        """`status.error` of the statement a statement_failed fault fails."""
        if self.message is not None:
            return {"error_code": self.error_code, "message": self.message}
        if self.error_code == "ABORTED":
            return concurrent_append().as_status_error()
        return {"error_code": self.error_code, "message": _TRANSIENT_MESSAGES[self.error_code]}


@dataclass
class FaultRates:
    """Shares of API requests (statement kinds: of statement submissions; token_expired: of requests with an OAuth
    token that has served a few requests (auth.SERVED_BEFORE_RANDOM_EXPIRY): it lives an hour where a personal access
    token lives for days, and expires at the end of its life, not while a call's first tries with it are under way)
    that suffer each kind, drawn from a seeded generator so that a run can be repeated. Random faults never hit the
    token endpoint."""

    status_5xx: float = 0.0
    rate_limit: float = 0.0
    drop: float = 0.0
    drop_response: float = 0.0
    delay: float = 0.0
    statement_failed: float = 0.0
    slow_statement: float = 0.0
    token_expired: float = 0.0

    @classmethod
    def from_json(cls, given: dict, current: "FaultRates | None" = None) -> "FaultRates":
        known = {f.name for f in fields(cls)}
        unknown = set(given) - known
        if unknown:
            raise ValueError(f"unknown fault rates: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        rates = cls(**{**asdict(current or cls()), **{name: float(value) for name, value in given.items()}})
        if any(not 0 <= rate <= 1 for rate in asdict(rates).values()) or rates.total() > 1:
            raise ValueError("fault rates are shares between 0 and 1 that add up to at most 1")
        return rates

    def total(self) -> float:
        return sum(asdict(self).values())


class FaultInjector(_FaultQueue):
    """The queued faults, then random ones at the configured rates."""

    def __init__(self, rates: FaultRates | None = None, seed: int = 0):
        super().__init__()
        self.rates = rates or FaultRates()
        self._rng = random.Random(f"databricks-faults:{seed}")

    def faults_for(self, path: str, method: str = "GET", statement: str | None = None,
                   oauth_token: bool = False) -> tuple[Fault | None, Fault | None]:
        """What this request suffers: (a fault on the way, a fault of the statement it submits), each None when
        there is none. Queued faults first, one of each sort, so that a statement can be slow and its answer lost
        as well; then, when nothing is queued for it, at most one random fault (API requests only)."""
        with self._lock:
            on_the_way = self._take_locked(lambda queued: queued.kind not in STATEMENT_KINDS
                                           and queued.hits(path, method, statement))
            of_the_statement = None
            if on_the_way is None or on_the_way.kind in CARRIED_OUT:  # else the statement never runs
                of_the_statement = self._take_locked(lambda queued: queued.kind in STATEMENT_KINDS
                                                     and queued.hits(path, method, statement))
            if on_the_way or of_the_statement or not path.startswith("/api/") or self.rates.total() <= 0:
                return on_the_way, of_the_statement
            draw = self._rng.random()
            for kind, rate in asdict(self.rates).items():
                applies = ((kind not in STATEMENT_KINDS or statement is not None)
                           and (kind != "token_expired" or oauth_token))
                if not applies:
                    continue
                if draw < rate:
                    fault = self._random_fault(kind)
                    return (None, fault) if fault.kind in STATEMENT_KINDS else (fault, None)
                draw -= rate
        return None, None

    def _random_fault(self, kind: str) -> Fault:
        if kind == "status_5xx":
            return Fault("status", status=self._rng.choice(RANDOM_STATUSES), retry_after=1)
        if kind == "statement_failed":
            return Fault(kind, error_code=self._rng.choice(RANDOM_STATEMENT_ERRORS))
        if kind == "slow_statement":
            return Fault(kind, delay_seconds=3.0)
        return Fault(kind, retry_after=1, delay_seconds=1.0)
