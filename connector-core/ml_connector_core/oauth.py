"""OAuth2 client credentials for ``requests``: one token per client, refreshed before it expires."""

from __future__ import annotations

import logging
import threading
import time

import backoff
import requests

from ml_connector_core.http import RETRIABLE_STATUS, retry_waits
from ml_connector_core.redaction import register_secret

logger = logging.getLogger(__name__)


class TokenRequestError(RuntimeError):
    """The token endpoint refused the credentials or answered something that is not a token."""


class _RetriableTokenResponse(RuntimeError):
    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"token endpoint answered HTTP {response.status_code}")
        self.response = response


class ClientCredentialsAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer`` to every request, fetching a new token ahead of expiry.

    Thread-safe: every stream of a tap shares one instance and so one token. ``invalidate()`` after a 401 makes the
    next request fetch a fresh token (a token can be revoked before its announced expiry).

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
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.refresh_margin_seconds = refresh_margin_seconds
        self.lifetime_when_unannounced = lifetime_when_unannounced
        self.timeout_seconds = timeout_seconds
        self.max_tries = max_tries
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.tokens_fetched = 0
        register_secret(client_secret)

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def access_token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch_token()
            return self._token  # type: ignore[return-value]

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch_token(self) -> None:
        fetch = backoff.on_exception(
            retry_waits,
            (_RetriableTokenResponse, requests.ConnectionError, requests.Timeout),
            max_tries=self.max_tries,
            jitter=backoff.random_jitter,
            logger=logger,
        )(self._post_token_request)
        try:
            body = fetch()
        except _RetriableTokenResponse as exc:
            raise TokenRequestError(
                f"token endpoint {self.token_url} kept failing (HTTP {exc.response.status_code}) after {self.max_tries} tries"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TokenRequestError(f"cannot reach the token endpoint {self.token_url}: {type(exc).__name__}") from None
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenRequestError(f"token endpoint {self.token_url} answered without an access_token")
        register_secret(token)
        self._token = token
        self.tokens_fetched += 1
        if not body.get("expires_in") and self.lifetime_when_unannounced is None:
            self._refresh_at = float("inf")
            logger.info("Obtained an access token from %s (no lifetime announced: kept until refused)", self.token_url)
            return
        lifetime = float(body.get("expires_in") or self.lifetime_when_unannounced or 300)
        # Refresh a margin ahead of expiry; very short tokens keep at least a quarter of their life as margin.
        margin = min(self.refresh_margin_seconds, lifetime * 0.25)
        self._refresh_at = self._clock() + lifetime - margin
        logger.info("Obtained an access token from %s valid for %.0f s", self.token_url, lifetime)

    def _post_token_request(self) -> dict:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._client_secret}
        if self.scope:
            form["scope"] = self.scope
        response = self._session.post(self.token_url, data=form, timeout=self.timeout_seconds)
        if response.status_code in RETRIABLE_STATUS:
            raise _RetriableTokenResponse(response)
        if response.status_code != 200:
            raise TokenRequestError(
                f"token endpoint {self.token_url} refused client '{self.client_id}' "
                f"(HTTP {response.status_code}): {_describe_oauth_error(response)}"
            )
        try:
            return response.json()
        except ValueError:
            raise TokenRequestError(f"token endpoint {self.token_url} answered HTTP 200 with a body that is not JSON") from None


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
