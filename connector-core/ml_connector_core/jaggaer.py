"""A small JAGGAER REST client shared by target-jaggaer and tap-jaggaer.

JAGGAER One customers integrate through their instance's REST API (``<base_url>/api/v1``) with OAuth 2.0 client
credentials at the instance's token endpoint (``<base_url>/oauth/token`` unless told otherwise). The token is renewed a
margin before it expires; a 401 all the same (revoked, or expired early) gets one new token and one more try. 429 is
waited out after ``Retry-After``, 5xx and lost connections after a jittered backoff, within a client-side request
budget shared by every stream of the process. JAGGAER's error lists (``{"errors": [{"code", "field", "message"}]}``)
become messages quoting ``CODE field: message``.

Every call this client makes may be repeated safely: reads, PUTs (full replaces), and POSTs of objects with a unique
``externalId`` (a create that did happen before its answer was lost is refused 409 DUPLICATE_EXTERNAL_ID the second
time, which the target resolves by looking the object up and updating it).

Plugins build it from their flat settings with :func:`client_from_config`::

    client = client_from_config(config)   # base_url, client_id, client_secret (may be sealed), token_url, ...
    supplier = client.find_by_external_id("suppliers", "S1")
    for page in client.pages("invoices", {"modifiedSince": "2026-01-01T00:00:00.000Z"}, page_size=100):
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests

from ml_connector_core.api_client import ApiClient
from ml_connector_core.audit import dump_json, load_json
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.redaction import redact_text
from ml_connector_core.secrets import unseal
from ml_connector_core.tls import ca_bundle_property, new_session

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_PAGE_SIZE = 500  # JAGGAER's cap on pageSize


class JaggaerError(RuntimeError):
    """JAGGAER refused a request; the message quotes its ``code field: message`` list."""

    def __init__(self, message: str, *, status: int | None = None, errors: Sequence[Mapping[str, Any]] = (),
                 body: Any = None) -> None:
        super().__init__(redact_text(message))
        self.status = status
        self.errors = [dict(e) for e in errors]
        self.body = body

    @property
    def error_codes(self) -> list[str]:
        return [str(e.get("code") or "") for e in self.errors]


class JaggaerAuthError(JaggaerError):
    """The client credentials were refused, or a fresh token was refused as well."""


class JaggaerConfigError(ValueError):
    """The JAGGAER connection settings are incomplete or wrong."""


def error_list_text(errors: Sequence[Mapping[str, Any]]) -> str:
    """JAGGAER's error objects as one line: ``UNKNOWN_SUPPLIER supplierExternalId: No supplier with externalId 'S99'``."""
    parts = []
    for error in errors:
        text = str(error.get("code") or "ERROR")
        if error.get("field"):
            text += f" {error['field']}"
        if error.get("message"):
            text += f": {error['message']}"
        parts.append(text)
    return "; ".join(parts)


def response_body(response: requests.Response) -> Any:
    """The decoded JSON body (numbers with a fraction as Decimals), else the start of the text, else None."""
    if not response.content:
        return None
    try:
        return load_json(response.content)
    except ValueError:
        return response.text[:500]


def error_objects(body: Any) -> list[dict]:
    if isinstance(body, Mapping):
        if isinstance(body.get("errors"), list):
            return [dict(e) for e in body["errors"] if isinstance(e, Mapping)]
        if body.get("error"):  # OAuth shape
            return [{"code": body["error"], "message": body.get("error_description") or ""}]
    return []


def response_error_text(response: requests.Response) -> str:
    body = response_body(response)
    errors = error_objects(body)
    if errors:
        return error_list_text(errors)
    return (response.text or response.reason or "").strip()[:300]


class JaggaerClient(ApiClient):
    """One JAGGAER customer instance: ``request`` for any REST call and the few calls both plugins need."""

    service_name = "JAGGAER"
    error_class = JaggaerError
    auth_error_class = JaggaerAuthError
    retry_logger = logger

    def __init__(
        self,
        base_url: str,
        auth: ClientCredentialsAuth,
        *,
        requests_per_minute: int = 300,
        max_tries: int = 8,
        timeout_seconds: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_root = f"{self.base_url}{API_PREFIX}"
        super().__init__(auth, budget_key=f"jaggaer:{self.base_url}", requests_per_minute=requests_per_minute,
                         max_tries=max_tries, timeout_seconds=timeout_seconds, session=session)
        self.tokens_renewed = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"JaggaerClient({self.api_root!r})"

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith(API_PREFIX + "/"):
            return f"{self.base_url}{path}"
        return f"{self.api_root}/{path.lstrip('/')}"

    def api_path(self, path: str) -> str:
        """``suppliers/SUP-1`` → ``/api/v1/suppliers/SUP-1`` (how requests are named in audit entries and errors)."""
        return self.url(path)[len(self.base_url):]

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                accept: Sequence[int] = ()) -> requests.Response:
        """Send one call (``path`` under /api/v1) and return the response of a 2xx or of a status in ``accept``;
        any other answer raises :class:`JaggaerError` quoting JAGGAER's errors.

        JSON bodies are encoded with Decimals as exact numbers. 429 is retried after ``Retry-After``, 5xx and lost
        connections after a jittered backoff, up to ``max_tries``; a 401 gets one new token.
        """
        data = dump_json(json).encode("utf-8") if json is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        return self._send(method, path, self.url(path), accept=accept, params=params, data=data, headers=headers)

    # Hooks of the shared send loop

    def error_text(self, response: requests.Response) -> str:
        return response_error_text(response)

    def _error(self, message: str, response: requests.Response, error_class: type[Exception] | None = None) -> Exception:
        body = response_body(response)
        return (error_class or JaggaerError)(message, status=response.status_code, errors=error_objects(body), body=body)

    def _shown_path(self, path: str) -> str:
        return self.api_path(path)

    def _note_response(self, response: requests.Response) -> None:
        if response.status_code == 429:
            with self._lock:
                self.rate_limited += 1
            logger.info("JAGGAER asks to slow down (429, Retry-After %s)", response.headers.get("Retry-After"))

    def _renew_auth(self, response: requests.Response) -> bool:
        self.auth.invalidate()
        with self._lock:
            self.tokens_renewed += 1
        logger.info("JAGGAER refused the access token (%s): getting a new one", response_error_text(response))
        return True

    def _refusal(self, method: str, path: str, response: requests.Response) -> Exception:
        if response.status_code == 401:
            errors = error_objects(response_body(response))
            return self._error(f"{method} {self.api_path(path)}: JAGGAER refused a fresh token as well (HTTP 401): "
                               f"{error_list_text(errors) or response.reason}", response, JaggaerAuthError)
        return super()._refusal(method, path, response)

    def get(self, path: str, **params: Any) -> Any:
        return load_json(self.request("GET", path, params=params or None).content)

    # What the plugins need

    def find_by_external_id(self, collection: str, external_id: str) -> dict | None:
        """The object of ``collection`` (suppliers, purchase-orders) with this exact externalId, or None."""
        page = self.get(collection, externalId=external_id)
        items = [i for i in page.get("items") or [] if str(i.get("externalId")) == str(external_id)]
        return items[0] if items else None

    def find_by_id(self, collection: str, object_id: str) -> dict | None:
        response = self.request("GET", f"{collection}/{object_id}", accept=(404,))
        return None if response.status_code == 404 else load_json(response.content)

    def pages(self, collection: str, params: Mapping[str, Any] | None = None, *, page_size: int = 100) -> Iterator[list[dict]]:
        """Every page of a listing (``page`` from 1, ``pageSize``), until JAGGAER answers ``hasMore: false``.
        Numbers with a fraction come back as Decimals, exactly as JAGGAER wrote them."""
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
        page = 1
        while True:
            answer = self.get(collection, **dict(params or {}), page=page, pageSize=page_size)
            items = list(answer.get("items") or [])
            yield items
            if not answer.get("hasMore") or not items:
                return
            page += 1


# --- From plugin settings ---


def token_url_for(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/oauth/token"


def client_from_config(config: Mapping[str, Any], *, session: requests.Session | None = None) -> JaggaerClient:
    """The client described by the flat settings both JAGGAER plugins declare (see :func:`connection_properties`)."""
    base_url = str(config.get("base_url") or "").rstrip("/")
    if not base_url.startswith(("https://", "http://")):
        raise JaggaerConfigError("base_url is required: the JAGGAER instance's URL, e.g. https://acme.jaggaer.com")
    if base_url.endswith(API_PREFIX):
        base_url = base_url[: -len(API_PREFIX)]
    missing = [k for k in ("client_id", "client_secret") if not config.get(k)]
    if missing:
        raise JaggaerConfigError(f"{' and '.join(missing)} missing: the API client's id and secret issued by the "
                                 "JAGGAER instance (OAuth 2.0 client credentials)")
    requests_per_minute = int(config.get("requests_per_minute") or 300)
    if requests_per_minute < 1:
        raise JaggaerConfigError(f"requests_per_minute must be at least 1, not {requests_per_minute}")
    timeout = float(config.get("request_timeout_seconds") or 60)
    auth = ClientCredentialsAuth(
        str(config.get("token_url") or token_url_for(base_url)),
        str(config["client_id"]),
        unseal(str(config["client_secret"]), setting_name="client_secret"),
        scope=config.get("scope") or None,
        timeout_seconds=timeout,
        session=session or new_session(config),
    )
    return JaggaerClient(base_url, auth, requests_per_minute=requests_per_minute,
                         max_tries=int(config.get("max_tries") or 8), timeout_seconds=timeout,
                         session=session or new_session(config))


def connection_properties(acting: str) -> list:
    """The connection settings every JAGGAER plugin declares (singer-sdk ``th.Property`` objects; singer-sdk is
    imported here only, so the rest of this module does not need it). ``acting`` completes "the API client the
    plugin ...", e.g. "reads as"."""
    from singer_sdk import typing as th

    return [
        th.Property("base_url", th.StringType, required=True, title="JAGGAER instance URL",
                    description="The customer instance, e.g. https://acme.jaggaer.com (the API is under /api/v1)."),
        th.Property("client_id", th.StringType, required=True,
                    description=f"OAuth 2.0 client id of the API client the plugin {acting} (issued at onboarding)."),
        th.Property("client_secret", th.StringType, required=True, secret=True,
                    description="OAuth 2.0 client secret; plain or sealed (sealed:v1:...)."),
        th.Property("token_url", th.StringType, description="Token endpoint, when not <base_url>/oauth/token."),
        th.Property("scope", th.StringType, description="OAuth scope to ask for, when the instance wants one."),
        th.Property("requests_per_minute", th.IntegerType, default=300,
                    description="Client-side request budget for the instance, shared by every stream."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per request on 429 (after Retry-After), 5xx and lost connections."),
        th.Property("request_timeout_seconds", th.IntegerType, default=60, description="Timeout of one HTTP request."),
        ca_bundle_property(),
    ]
