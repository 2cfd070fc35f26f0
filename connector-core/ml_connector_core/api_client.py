"""What the REST clients of ml-connector (Jira, Salesforce, JAGGAER) share: one session with the service's auth, a
request budget per tenant, and one send loop.

The loop sends a call within the budget; waits out 429 (and, for calls safe to repeat, 5xx, lost connections and JSON
bodies cut off on the way) after ``Retry-After`` or a jittered backoff, up to ``max_tries``; after a 401 (or whatever
else the service refuses a token with) asks the auth for one new token and tries once more. A call that is not safe to
repeat is never sent again after an answer that may mean it was carried out (5xx, a lost connection, a cut-off body). What stays with each client: its URLs, how its auth is
renewed, how its error bodies read, and which exception classes it raises (the hooks below).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, ClassVar

import requests

from ml_connector_core.http import (
    RETRIABLE_STATUS, TRANSPORT_ERRORS, RequestBudget, is_complete_json, shared_budget, with_retries,
)
from ml_connector_core.oauth import TokenRequestError
from ml_connector_core.tls import new_session


class RetriableResponse(RuntimeError):
    """An answer worth another try; ``retry_immediately`` (after a 401 and a new token) skips the backoff wait."""

    def __init__(self, response: requests.Response, *, retry_immediately: bool = False, reason: str = "") -> None:
        super().__init__(reason or f"HTTP {response.status_code}")
        self.response = response
        self.retry_immediately = retry_immediately


def cut_off_json(response: requests.Response) -> bool:
    """Whether a JSON answer arrived incomplete (a proxy or a reset connection cut it, with a matching Content-Length)."""
    content_type = response.headers.get("Content-Type") or ""
    return "json" in content_type and bool(response.content) and not is_complete_json(response.content)


def cut_off_reason(response: requests.Response) -> str:
    return f"HTTP {response.status_code} with a JSON body cut off after {len(response.content)} bytes"


class ApiClient:
    """The send loop of a REST client; subclasses name the service and supply the hooks."""

    service_name: ClassVar[str]  # as it appears in messages: "Jira", "Salesforce", "JAGGAER"
    error_class: ClassVar[type[Exception]]
    auth_error_class: ClassVar[type[Exception]]
    retry_logger: ClassVar[logging.Logger]  # where long retry waits are announced (the client module's logger)
    base_url: str  # named in the message when the service cannot be reached

    def __init__(self, auth: requests.auth.AuthBase, *, budget_key: str, requests_per_minute: int, max_tries: int,
                 timeout_seconds: float, session: requests.Session | None) -> None:
        self.auth = auth
        self.max_tries = max_tries
        self.timeout_seconds = timeout_seconds
        self.session = session or new_session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json"})
        self.budget: RequestBudget = shared_budget(budget_key, requests_per_minute)
        self.requests_sent = 0
        self._lock = threading.Lock()

    # Hooks

    def error_text(self, response: requests.Response) -> str:
        """The service's explanation of a failed response, for messages."""
        raise NotImplementedError

    def _error(self, message: str, response: requests.Response, error_class: type[Exception] | None = None) -> Exception:
        """``error_class`` (default :attr:`error_class`) with the message and what the response's body says."""
        raise NotImplementedError

    def _shown_path(self, path: str) -> str:
        """How a call's path is named in messages."""
        return path

    def _unreachable_message(self, method: str, path: str, exc: Exception, attempts: int) -> str:
        return (f"{method} {self._shown_path(path)}: cannot reach {self.service_name} at {self.base_url} "
                f"({type(exc).__name__}) after {attempts} tries")

    def _note_response(self, response: requests.Response) -> None:
        """Called with every answer, before it is judged (usage headers, counters)."""

    def _token_refused(self, response: requests.Response) -> bool:
        """Whether the answer refuses the access token itself (expired early, revoked), so that a new token may help:
        a 401 by default; services that answer an expired token otherwise say so here."""
        return response.status_code == 401

    def _renew_auth(self, response: requests.Response) -> bool:
        """After a first refused token: make the next call use a new token; False when a new try cannot help."""
        return bool(self.auth.invalidate())

    def _refusal(self, method: str, path: str, response: requests.Response) -> Exception:
        """The exception for an answer that is neither 2xx nor accepted (a 401 here came after a new token too)."""
        return self._error(f"{method} {self._shown_path(path)}: HTTP {response.status_code}: {self.error_text(response)}",
                           response)

    # The loop

    def _send(self, method: str, path: str, url: str, *, accept: Iterable[int] = (), retry_unsafe: bool = True,
              **request_arguments: Any) -> requests.Response:
        """Send one call to ``url`` (``path`` names it in messages) and return the response of a 2xx or of a status in
        ``accept``; anything else raises the client's error. With ``retry_unsafe=False`` (a call a 5xx may have carried
        out) only 429, which services answer before doing anything, is retried; a cut-off answer to such a call is an
        error saying the call may have been carried out, never a second send."""
        accepted = frozenset(accept)
        state = {"renewed": False, "attempts": 0}

        def send() -> requests.Response:
            state["attempts"] += 1
            self.budget.acquire()
            with self._lock:
                self.requests_sent += 1
            response = self.session.request(method, url, timeout=self.timeout_seconds, **request_arguments)
            self._note_response(response)
            status = response.status_code
            if status == 429 or (status in RETRIABLE_STATUS and retry_unsafe):
                raise RetriableResponse(response)
            if not state["renewed"] and self._token_refused(response) and self._renew_auth(response):
                state["renewed"] = True
                raise RetriableResponse(response, retry_immediately=True)
            if (response.ok or status in accepted) and cut_off_json(response):
                if retry_unsafe:
                    raise RetriableResponse(response, reason=cut_off_reason(response))
                # The service took the call (the answer began with a success): another send could do it twice.
                raise self._error(f"{method} {self._shown_path(path)}: {self.service_name} answered "
                                  f"{cut_off_reason(response)}; the call may have been carried out, so it is not sent "
                                  "again", response)
            return response

        retriable = (RetriableResponse, *TRANSPORT_ERRORS) if retry_unsafe else (RetriableResponse,)
        try:
            response = with_retries(send, retriable, max_tries=self.max_tries, log=self.retry_logger)()
        except RetriableResponse as exc:
            response = exc.response
            if response.ok or response.status_code in accepted:  # a success status: its body kept arriving cut off
                raise self._error(f"{method} {self._shown_path(path)}: {self.service_name} kept answering "
                                  f"{cut_off_reason(response)} after {state['attempts']} tries", response) from None
            if not self._token_refused(response):
                raise self._error(
                    f"{method} {self._shown_path(path)}: {self.service_name} kept answering HTTP {response.status_code} "
                    f"after {state['attempts']} tries: {self.error_text(response)}", response) from None
        except TRANSPORT_ERRORS as exc:
            raise self.error_class(self._unreachable_message(method, path, exc, state["attempts"])) from None
        except TokenRequestError as exc:
            raise self.auth_error_class(str(exc)) from None
        if response.ok or response.status_code in accepted:
            return response
        raise self._refusal(method, path, response)
