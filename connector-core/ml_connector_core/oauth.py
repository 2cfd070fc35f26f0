"""OAuth2 client credentials for ``requests``: one token per client, refreshed before it expires."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import requests

from ml_connector_core.http import RETRIABLE_STATUS, TRANSPORT_ERRORS, with_retries
from ml_connector_core.redaction import register_secret
from ml_connector_core.tls import new_session

logger = logging.getLogger(__name__)


class TokenRequestError(RuntimeError):
    """The token endpoint refused the credentials or answered something that is not a token."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  #: the token endpoint's HTTP status, when it answered


class RetriableTokenResponse(RuntimeError):
    """The token endpoint answered 429 or 5xx, or a 200 whose body is cut off: worth another try."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"token endpoint answered {token_failure(response)}")
        self.response = response


def token_failure(response: requests.Response) -> str:
    """How a token answer that kept failing is named: ``HTTP 503``, or ``HTTP 200 with a body that is not JSON``."""
    if response.ok:
        return f"HTTP {response.status_code} with a body that is not JSON ({len(response.content)} bytes, cut off?)"
    return f"HTTP {response.status_code}"


def token_body(response: requests.Response) -> dict:
    """The JSON object of a 200 from a token endpoint. A body that does not parse was cut off on the way (or came from a
    proxy): :class:`RetriableTokenResponse`, as asking for a token again is safe (see
    :meth:`RenewingBearerAuth._post_with_retries`)."""
    try:
        body = response.json()
    except ValueError:
        raise RetriableTokenResponse(response) from None
    if not isinstance(body, dict):
        raise RetriableTokenResponse(response)
    return body


class RenewingBearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer`` to every request; one token per instance, fetched again a margin ahead of its
    expiry and after ``invalidate()``. Thread-safe: every stream of a plugin shares one instance and so one token.

    Subclasses fetch the token (:meth:`_fetch_token`, usually through :meth:`_post_with_retries`) and say how failures
    read (:meth:`_kept_failing_error`, :meth:`_unreachable_error`).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        refresh_margin_seconds: float,
        timeout_seconds: float,
        max_tries: int,
        session: requests.Session | None,
        clock: Callable[[], float],
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.refresh_margin_seconds = refresh_margin_seconds
        self.timeout_seconds = timeout_seconds
        self.max_tries = max_tries
        self._session = session or new_session()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.tokens_fetched = 0
        #: Seconds the newest token was announced to live; None when the service announced no lifetime.
        self.token_lifetime: float | None = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch_token()
            return self._token  # type: ignore[return-value]

    def invalidate(self) -> bool:
        """After a 401: the next request gets a fresh access token (a token can be revoked before it expires)."""
        with self._lock:
            self._token = None
        return True

    def _fetch_token(self) -> None:
        raise NotImplementedError

    def _kept_failing_error(self, response: requests.Response) -> Exception:
        raise NotImplementedError

    def _unreachable_error(self, exc: Exception) -> Exception:
        raise NotImplementedError

    def _post_with_retries(self, post: Callable[[], dict]) -> dict:
        """``post`` (which raises :class:`RetriableTokenResponse` on 429/5xx or a cut-off body) tried up to
        ``max_tries`` times, also after a lost connection.

        Asking again is safe: a client credentials grant only issues one more token, and a rotating refresh token
        (Atlassian) stays valid for a reuse interval after its first use, so a retry after a lost answer is still
        honoured."""
        retried = with_retries(post, (RetriableTokenResponse, *TRANSPORT_ERRORS), max_tries=self.max_tries, log=logger)
        try:
            return retried()
        except RetriableTokenResponse as exc:
            raise self._kept_failing_error(exc.response) from None
        except TRANSPORT_ERRORS as exc:
            raise self._unreachable_error(exc) from None

    def _keep(self, token: str, lifetime: float) -> None:
        """Use ``token`` until a margin before its ``lifetime`` (seconds) ends."""
        # Very short tokens keep at least a quarter of their life as margin.
        margin = min(self.refresh_margin_seconds, lifetime * 0.25)
        self.token_lifetime = lifetime
        self._token = token
        self._refresh_at = self._clock() + lifetime - margin


class ClientCredentialsAuth(RenewingBearerAuth):
    """Bearer tokens from the OAuth2 client credentials grant.

    A token answer without ``expires_in`` is taken to live ``lifetime_when_unannounced`` seconds; ``None`` keeps such a
    token until ``invalidate()`` (Salesforce announces no lifetime: its sessions end after a timeout the org sets).
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        refresh_margin_seconds: float = 30.0,
        lifetime_when_unannounced: float | None = 300.0,
        timeout_seconds: float = 30.0,
        max_tries: int = 5,
        session: requests.Session | None = None,
        clock=time.monotonic,
        basic_auth: bool = False,
    ) -> None:
        super().__init__(token_url, client_id, refresh_margin_seconds=refresh_margin_seconds,
                         timeout_seconds=timeout_seconds, max_tries=max_tries, session=session, clock=clock)
        self._client_secret = client_secret
        self.scope = scope
        # The client's id and secret in an HTTP Basic header (client_secret_basic) instead of the form
        # (client_secret_post): what some token endpoints document, e.g. Databricks' /oidc/v1/token.
        self.basic_auth = basic_auth
        self.lifetime_when_unannounced = lifetime_when_unannounced
        register_secret(client_secret)

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def _kept_failing_error(self, response: requests.Response) -> Exception:
        return TokenRequestError(
            f"token endpoint {self.token_url} kept failing ({token_failure(response)}) after {self.max_tries} tries",
            status=response.status_code)

    def _unreachable_error(self, exc: Exception) -> Exception:
        return TokenRequestError(f"cannot reach the token endpoint {self.token_url}: {type(exc).__name__}")

    def _fetch_token(self) -> None:
        body = self._post_with_retries(self._post_token_request)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenRequestError(f"token endpoint {self.token_url} answered without an access_token")
        register_secret(token)
        self.tokens_fetched += 1
        if not body.get("expires_in") and self.lifetime_when_unannounced is None:
            self._token = token
            self.token_lifetime = None
            self._refresh_at = float("inf")
            logger.info("Obtained an access token from %s (no lifetime announced: kept until refused)", self.token_url)
            return
        lifetime = float(body.get("expires_in") or self.lifetime_when_unannounced or 300)
        self._keep(token, lifetime)
        logger.info("Obtained an access token from %s valid for %.0f s", self.token_url, lifetime)

    def _post_token_request(self) -> dict:
        form = {"grant_type": "client_credentials"}
        if not self.basic_auth:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        if self.scope:
            form["scope"] = self.scope
        response = self._session.post(self.token_url, data=form, timeout=self.timeout_seconds,
                                      auth=(self.client_id, self._client_secret) if self.basic_auth else None)
        if response.status_code in RETRIABLE_STATUS:
            raise RetriableTokenResponse(response)
        if response.status_code != 200:
            raise TokenRequestError(
                f"token endpoint {self.token_url} refused client '{self.client_id}' "
                f"(HTTP {response.status_code}): {_describe_oauth_error(response)}",
                status=response.status_code,
            )
        return token_body(response)


def _describe_oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("error", "error_description") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return response.reason
