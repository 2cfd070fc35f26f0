"""A small Salesforce REST client shared by target-salesforce and tap-sfdc.

OAuth 2.0 client credentials against the org's My Domain (``<base_url>/services/oauth2/token``). Salesforce's token
answer has no ``expires_in``: the token is kept until Salesforce answers 401 ``INVALID_SESSION_ID``, then one new token
is fetched and the call tried once more. Every answer's ``Sforce-Limit-Info: api-usage=<used>/<limit>`` is read: above
``slowdown_share`` of the org's daily limit the client pauses between calls, above ``stop_share`` it refuses new
calls with :class:`SalesforceLimitError` (as it does when Salesforce itself answers 403 ``REQUEST_LIMIT_EXCEEDED``),
so that this integration never takes the org's last API calls from its other users. 5xx and lost connections are
retried after ``Retry-After`` or a jittered backoff. Salesforce's error lists become messages quoting
``errorCode: message``.

Plugins build it from their flat settings with :func:`client_from_config`::

    client = client_from_config(config)   # base_url, client_id, client_secret (may be sealed), api_version, ...
    results = client.upsert_collection("Account", "IFS_Supplier_Id__c", records)
    for page in client.query_pages("SELECT Id, Name FROM Account"):
        ...
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from ml_connector_core.api_client import ApiClient
from ml_connector_core.audit import dump_json, load_json
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.redaction import redact_text
from ml_connector_core.secrets import unseal
from ml_connector_core.tls import ca_bundle_property, new_session

logger = logging.getLogger(__name__)

DEFAULT_API_VERSION = "v62.0"
COLLECTION_LIMIT = 200  # records per sObject Collections call
_API_VERSION = re.compile(r"^v?\d{2,3}\.\d$")
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


class SalesforceError(RuntimeError):
    """Salesforce refused a request; the message quotes its ``errorCode: message`` list."""

    def __init__(self, message: str, *, status: int | None = None, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(redact_text(message))
        self.status = status
        self.errors = [dict(e) for e in errors]

    @property
    def error_codes(self) -> list[str]:
        return [str(e.get("errorCode") or e.get("statusCode") or "") for e in self.errors]


class SalesforceAuthError(SalesforceError):
    """The connected app's credentials were refused, or a fresh session was refused as well."""


class SalesforceLimitError(SalesforceError):
    """The org's API request limit is reached (403 REQUEST_LIMIT_EXCEEDED) or above the share this client may use."""


class SalesforceConfigError(ValueError):
    """The Salesforce connection settings are incomplete or wrong."""


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0

    def __str__(self) -> str:
        return f"{self.used}/{self.limit} API requests in the last 24 hours ({self.share:.0%})"


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``api-usage=135/15000`` (the Sforce-Limit-Info header) → ApiUsage(135, 15000); None when absent."""
    match = _LIMIT_INFO.search(header or "")
    return ApiUsage(int(match.group(1)), int(match.group(2))) if match else None


def error_list_text(errors: Sequence[Mapping[str, Any]]) -> str:
    """Salesforce's error objects (``errorCode``/``statusCode``, ``message``, ``fields``) as one line."""
    parts = []
    for error in errors:
        code = error.get("errorCode") or error.get("statusCode") or "ERROR"
        text = f"{code}: {error.get('message') or ''}".rstrip(": ")
        fields = [str(f) for f in error.get("fields") or []]
        if fields:
            text += f" (fields: {', '.join(fields)})"
        parts.append(text)
    return "; ".join(parts)


def _error_objects(response: requests.Response) -> list[dict]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        if body.get("error"):  # OAuth shape
            return [{"errorCode": body["error"], "message": body.get("error_description") or ""}]
        body = [body]
    return [e for e in body if isinstance(e, dict) and (e.get("errorCode") or e.get("message"))] if isinstance(body, list) else []


def response_error_text(response: requests.Response) -> str:
    errors = _error_objects(response)
    if errors:
        return error_list_text(errors)
    return (response.text or response.reason or "").strip()[:300]


class SalesforceClient(ApiClient):
    """One Salesforce org (its My Domain URL): ``request`` for any REST call and the few calls both plugins need."""

    service_name = "Salesforce"
    error_class = SalesforceError
    auth_error_class = SalesforceAuthError
    retry_logger = logger

    def __init__(
        self,
        base_url: str,
        auth: ClientCredentialsAuth,
        *,
        api_version: str = DEFAULT_API_VERSION,
        slowdown_share: float = 0.8,
        stop_share: float = 0.9,
        slowdown_seconds: float = 1.0,
        requests_per_minute: int = 1000,
        max_tries: int = 6,
        timeout_seconds: float = 120.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version if api_version.startswith("v") else f"v{api_version}"
        self.api_root = f"{self.base_url}/services/data/{self.api_version}"
        self.slowdown_share = slowdown_share
        self.stop_share = stop_share
        self.slowdown_seconds = slowdown_seconds
        super().__init__(auth, budget_key=f"salesforce:{self.base_url}", requests_per_minute=requests_per_minute,
                         max_tries=max_tries, timeout_seconds=timeout_seconds, session=session)
        self.usage: ApiUsage | None = None
        self.sessions_renewed = 0
        self._slowdown_announced = False

    def __repr__(self) -> str:
        return f"SalesforceClient({self.api_root!r})"

    # Limits

    def check_usage(self) -> None:
        """Refuse new work once the org's usage is above ``stop_share``; pause a little above ``slowdown_share``."""
        usage = self.usage
        if usage is None or not usage.limit:
            return
        if usage.share >= self.stop_share:
            raise SalesforceLimitError(
                f"Salesforce API usage is {usage}, at or above the {self.stop_share:.0%} this integration may use "
                "(setting api_usage_stop_share): no new work is started, to leave the rest to the org's other users; "
                "what was not done is failed in the audit trail and redone by the next run")
        if usage.share >= self.slowdown_share and self.slowdown_seconds > 0:
            if not self._slowdown_announced:
                logger.warning("Salesforce API usage is %s, above %.0f%% (api_usage_slowdown_share): pausing %.1f s "
                               "between calls", usage, self.slowdown_share * 100, self.slowdown_seconds)
                self._slowdown_announced = True
            time.sleep(self.slowdown_seconds)

    def _note_response(self, response: requests.Response) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.usage = usage

    # Calls

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/services/"):
            return f"{self.base_url}{path}"
        return f"{self.api_root}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                accept: Sequence[int] = ()) -> requests.Response:
        """Send one call (``path`` under /services/data/<version>, or a /services/... path as Salesforce gives in
        ``nextRecordsUrl``) and return the response of a 2xx or of a status in ``accept``.

        JSON bodies are encoded with Decimals as exact numbers. 5xx and lost connections are retried (every call
        this client makes is safe to repeat: reads, and upserts by external id); a 401 gets one new session.
        """
        self.check_usage()
        url = self.url(path)
        data = dump_json(json).encode("utf-8") if json is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else None
        return self._send(method, path, url, accept=accept, params=params, data=data, headers=headers)

    # Hooks of the shared send loop

    def error_text(self, response: requests.Response) -> str:
        return response_error_text(response)

    def _error(self, message: str, response: requests.Response, error_class: type[Exception] | None = None) -> Exception:
        return (error_class or SalesforceError)(message, status=response.status_code, errors=_error_objects(response))

    def _renew_auth(self, response: requests.Response) -> bool:
        self.auth.invalidate()
        with self._lock:
            self.sessions_renewed += 1
        logger.info("Salesforce session expired or invalid (%s): getting a new one", response_error_text(response))
        return True

    def _refusal(self, method: str, path: str, response: requests.Response) -> Exception:
        errors = _error_objects(response)
        codes = {str(e.get("errorCode")) for e in errors}
        if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
            return SalesforceLimitError(
                f"{method} {path}: Salesforce refused the call: the org's API request limit is reached "
                f"({error_list_text(errors)}{'; usage ' + str(self.usage) if self.usage else ''}); what was not done is "
                "failed in the audit trail and redone by the next run", status=403, errors=errors)
        if response.status_code == 401:
            return SalesforceAuthError(f"{method} {path}: Salesforce refused a fresh session as well (HTTP 401): "
                                       f"{error_list_text(errors) or response.reason}", status=401, errors=errors)
        return super()._refusal(method, path, response)

    def get(self, path: str, **params: Any) -> Any:
        return load_json(self.request("GET", path, params=params or None).content)

    # What the plugins need

    def describe(self, sobject: str) -> dict:
        return self.get(f"sobjects/{sobject}/describe")

    def query_pages(self, soql: str) -> Iterator[list[dict]]:
        """The rows of a SOQL query, one page (up to 2000 rows) at a time, following ``nextRecordsUrl``.
        Numbers with a fraction come back as Decimals, exactly as Salesforce wrote them."""
        page = self.get("query", q=soql)
        while True:
            yield list(page.get("records") or [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = self.get(next_url)

    def upsert_collection(self, sobject: str, external_id_field: str, records: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Upsert up to 200 records of one type by their external id (``allOrNone: false``): one result per record,
        in order (``id``, ``success``, ``errors``, ``created``). Errors of single records are in their results; a
        refusal of the whole call raises :class:`SalesforceError`."""
        if len(records) > COLLECTION_LIMIT:
            raise ValueError(f"at most {COLLECTION_LIMIT} records per collections call, not {len(records)}")
        body = {"allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **record} for record in records]}
        response = self.request("PATCH", f"composite/sobjects/{sobject}/{external_id_field}", json=body)
        results = load_json(response.content)
        if not isinstance(results, list) or len(results) != len(records):
            raise SalesforceError(f"PATCH composite/sobjects/{sobject}/{external_id_field}: Salesforce answered "
                                  f"{len(results) if isinstance(results, list) else 'no list of'} results for "
                                  f"{len(records)} records")
        return results


# --- From plugin settings ---


def token_url_for(base_url: str) -> str:
    return f"{base_url.rstrip('/')}/services/oauth2/token"


def client_from_config(config: Mapping[str, Any], *, session: requests.Session | None = None) -> SalesforceClient:
    """The client described by the flat settings both Salesforce plugins declare:

    ``base_url`` (the org's My Domain, https://<domain>.my.salesforce.com), ``client_id``, ``client_secret`` (of a
    connected app with the client credentials flow and a run-as user; may be sealed), ``token_url`` (default
    <base_url>/services/oauth2/token), ``api_version`` (v62.0), ``api_usage_slowdown_share`` (0.8),
    ``api_usage_stop_share`` (0.9), ``api_usage_slowdown_seconds`` (1), ``requests_per_minute`` (1000),
    ``max_tries`` (6), ``request_timeout_seconds`` (120).
    """
    base_url = str(config.get("base_url") or "").rstrip("/")
    if not base_url.startswith(("https://", "http://")):
        raise SalesforceConfigError("base_url is required: the org's My Domain URL, e.g. https://acme.my.salesforce.com")
    missing = [k for k in ("client_id", "client_secret") if not config.get(k)]
    if missing:
        raise SalesforceConfigError(f"{' and '.join(missing)} missing: the connected app's consumer key and secret "
                                    "(client credentials flow enabled, with a run-as user)")
    api_version = str(config.get("api_version") or DEFAULT_API_VERSION)
    if not _API_VERSION.match(api_version):
        raise SalesforceConfigError(f"api_version '{api_version}' is not a Salesforce API version such as v62.0")
    slowdown = float(config.get("api_usage_slowdown_share") if config.get("api_usage_slowdown_share") is not None else 0.8)
    stop = float(config.get("api_usage_stop_share") if config.get("api_usage_stop_share") is not None else 0.9)
    if not (0 < slowdown <= 1 and 0 < stop <= 1):
        raise SalesforceConfigError("api_usage_slowdown_share and api_usage_stop_share are shares of the daily limit, "
                                    "between 0 and 1 (e.g. 0.8 and 0.9)")
    timeout = float(config.get("request_timeout_seconds") or 120)
    auth = ClientCredentialsAuth(
        str(config.get("token_url") or token_url_for(base_url)),
        str(config["client_id"]),
        unseal(str(config["client_secret"]), setting_name="client_secret"),
        lifetime_when_unannounced=None,
        timeout_seconds=timeout,
        session=session or new_session(config),
    )
    return SalesforceClient(
        base_url, auth, api_version=api_version, slowdown_share=slowdown, stop_share=stop,
        slowdown_seconds=float(config.get("api_usage_slowdown_seconds") if config.get("api_usage_slowdown_seconds") is not None else 1.0),
        requests_per_minute=int(config.get("requests_per_minute") or 1000),
        max_tries=int(config.get("max_tries") or 6), timeout_seconds=timeout,
        session=session or new_session(config),
    )


def connection_properties(acting: str) -> list:
    """The connection settings every Salesforce plugin declares (singer-sdk ``th.Property`` objects; singer-sdk is
    imported here only, so the rest of this module does not need it). ``acting`` completes "the run-as user the
    plugin ...", e.g. "reads as"."""
    from singer_sdk import typing as th

    return [
        th.Property("base_url", th.StringType, required=True, title="Salesforce My Domain URL",
                    description="The org's My Domain, e.g. https://acme.my.salesforce.com (the token is asked for at "
                                "<base_url>/services/oauth2/token)."),
        th.Property("client_id", th.StringType, required=True,
                    description="Consumer key of the connected app (OAuth client credentials flow enabled, with a run-as "
                                f"user the plugin {acting})."),
        th.Property("client_secret", th.StringType, required=True, secret=True,
                    description="Consumer secret of the connected app; plain or sealed (sealed:v1:...)."),
        th.Property("token_url", th.StringType, description="Token endpoint, when not <base_url>/services/oauth2/token."),
        th.Property("api_version", th.StringType, default=DEFAULT_API_VERSION, description="REST API version, e.g. v62.0."),
        th.Property("api_usage_slowdown_share", th.NumberType, default=0.8,
                    description="Share of the org's daily API request limit (Sforce-Limit-Info) above which calls are "
                                "spaced by api_usage_slowdown_seconds."),
        th.Property("api_usage_slowdown_seconds", th.NumberType, default=1.0,
                    description="Pause between calls above api_usage_slowdown_share."),
        th.Property("api_usage_stop_share", th.NumberType, default=0.9,
                    description="Share of the daily limit above which no new call is made: the run stops with a clear "
                                "message, leaving the rest of the limit to the org's other users."),
        th.Property("requests_per_minute", th.IntegerType, default=1000,
                    description="Client-side request budget for the org, shared by every stream."),
        th.Property("max_tries", th.IntegerType, default=6,
                    description="Attempts per call on 5xx / Server Busy (after Retry-After) and lost connections."),
        th.Property("request_timeout_seconds", th.IntegerType, default=120, description="Timeout of one HTTP request."),
        ca_bundle_property(),
    ]
