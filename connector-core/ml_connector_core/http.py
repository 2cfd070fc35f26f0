"""Being a polite HTTP client: a request budget per tenant, how long to wait before a retry, and one retry loop
(:func:`with_retries`) that says so when a wait is long enough for someone watching the run to wonder."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import backoff
import msgspec
import requests
import urllib3

RETRIABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: A request that never got a whole answer: no connection, no answer in time, or a body cut off before its announced
#: length (``ChunkedEncodingError``: the connection closed mid-body). Worth another try when the call is safe to repeat.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
MAX_WAIT_SECONDS = 120.0
#: Waits up to this long pass silently (DEBUG); a longer one gets one INFO line, so a run that seems stuck says why.
LONG_WAIT_SECONDS = 5.0

logger = logging.getLogger(__name__)
_F = TypeVar("_F", bound=Callable[..., Any])


class RequestBudget:
    """At most ``requests_per_minute`` requests in any sliding 60-second window, shared by every thread."""

    def __init__(self, requests_per_minute: int, *, name: str = "", clock=time.monotonic, sleep=time.sleep) -> None:
        if requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1")
        self.requests_per_minute = requests_per_minute
        self.name = name  # the tenant, as messages name it
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        # Until when the current stall has been announced: threads queued behind the same full window add no line.
        self._announced_until = float("-inf")

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
                announce = waited == 0 and pause > LONG_WAIT_SECONDS and now >= self._announced_until
                if announce:
                    self._announced_until = now + pause
            if announce:
                logger.info("Waiting %.0f s for the client-side request budget%s (requests_per_minute %d) to allow "
                            "the next request", pause, f" of {self.name}" if self.name else "",
                            self.requests_per_minute)
            self._sleep(pause)
            waited += pause


_budgets: dict[str, RequestBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(tenant_key: str, requests_per_minute: int) -> RequestBudget:
    """One budget per tenant in this process, whatever number of streams or sessions use it."""
    with _budgets_lock:
        budget = _budgets.get(tenant_key)
        if budget is None or budget.requests_per_minute != requests_per_minute:
            budget = _budgets[tenant_key] = RequestBudget(requests_per_minute, name=tenant_key)
        return budget


def connection_never_made(exception: BaseException) -> bool:
    """Whether a request failed before it left this machine: no connection could be made (refused, host name not
    resolved, connect timeout), so the server cannot have seen it and sending it again can never do it twice. A
    connection dropped after the request was sent, a read timeout or a cut-off answer are not: the server may have
    carried the request out."""
    if isinstance(exception, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exception, requests.ConnectionError):
        return False
    cause = exception.args[0] if exception.args else None
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError carries what failed
    return isinstance(cause, urllib3.exceptions.NewConnectionError)  # NameResolutionError is one too


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


def shown_url(url: str | None) -> str:
    """``scheme://host[:port]/path`` of a URL: no query (Workflows webhooks carry their signature, ``sig=``, there), no
    user or password."""
    if not url:
        return ""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return parts.path
    host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def describe_retry(exception: BaseException | None) -> tuple[str, str]:
    """What a retry is for and why, from the exception backoff caught: ("POST https://host/path", "HTTP 429,
    Retry-After 30") or ("GET https://host/path", "ConnectionError"); empty parts where the exception does not say."""
    response = getattr(exception, "response", None)
    request = getattr(response, "request", None) if response is not None else None
    if request is None:
        request = getattr(exception, "request", None)  # requests' own exceptions carry the request they were for
    target = ""
    if request is not None and getattr(request, "url", None):
        target = f"{request.method or ''} {shown_url(request.url)}".strip()
    if response is None or not isinstance(getattr(response, "status_code", None), int):
        return target, type(exception).__name__ if exception is not None else ""
    if response.status_code < 400:  # retried for its body (e.g. cut off), not its status: the exception says why
        reason = str(exception)[:160] or f"HTTP {response.status_code}"
    else:
        reason = f"HTTP {response.status_code}"
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        reason += f", Retry-After {retry_after.strip()[:40]}"
    return target, reason


def is_complete_json(body: bytes) -> bool:
    """Whether ``body`` is one whole JSON document: a body cut off on the way (a proxy or a reset connection that still
    sent a matching Content-Length) is not. Scans without building objects, so a page is not parsed twice."""
    try:
        msgspec.json.decode(body, type=msgspec.Raw)
    except msgspec.DecodeError:
        return False
    return True


def announce_long_waits(log: logging.Logger | logging.LoggerAdapter, max_tries: int | Callable[[], int] | None = None,
                        *, threshold: float = LONG_WAIT_SECONDS) -> Callable[[dict], None]:
    """An ``on_backoff`` handler for ``backoff.on_exception``: one INFO line for each wait longer than ``threshold``
    seconds saying what it waits for and how long, a DEBUG line for shorter ones."""

    def on_backoff(details: dict) -> None:
        wait = float(details.get("wait") or 0.0)
        tries = int(details.get("tries") or 0)
        limit = max_tries() if callable(max_tries) else max_tries
        target, reason = describe_retry(details.get("exception"))
        attempt = f"attempt {tries + 1}" + (f" of {limit}" if limit else "")
        what = f"retrying {target}" if target else "retrying"
        level = logging.INFO if wait > threshold else logging.DEBUG
        log.log(level, "Waiting %s s before %s%s, %s", f"{wait:.0f}" if wait >= 10 else f"{wait:.1f}", what,
                f" ({reason})" if reason else "", attempt)

    return on_backoff


def with_retries(func: _F, retriable: type[BaseException] | tuple[type[BaseException], ...], *,
                 max_tries: int | Callable[[], int], log: logging.Logger | logging.LoggerAdapter,
                 wait_gen: Callable[..., Generator[float, Any, None]] = retry_waits,
                 on_backoff: Callable[[dict], None] | None = None) -> _F:
    """``func`` tried up to ``max_tries`` times while it raises one of ``retriable``, waiting ``wait_gen``'s waits
    (``Retry-After`` first, see :func:`retry_waits`) plus up to a second of jitter. The last exception escapes for
    the caller to turn into its own one-line error, so backoff's own lines (every wait, giving up) go to DEBUG;
    long waits are announced by :func:`announce_long_waits` (or ``on_backoff``, when the caller has its own)."""
    return backoff.on_exception(
        wait_gen, retriable, max_tries=max_tries, jitter=backoff.random_jitter,
        on_backoff=on_backoff or announce_long_waits(log, max_tries),
        logger=log, backoff_log_level=logging.DEBUG, giveup_log_level=logging.DEBUG,
    )(func)
