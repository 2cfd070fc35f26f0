"""A small Jira Cloud REST v3 client shared by tap-jiracloud and target-jira.

Authentication is Basic (account email + API token) or OAuth 2.0 (3LO) with a rotating refresh token; either way every
request goes through one session with the per-site request budget, ``Retry-After``-aware waits on 429/5xx, one fresh
token after a 401, and Jira's JSON errors (``errorMessages`` / ``errors``) turned into messages that quote them.

Plugins build it from their flat settings with :func:`client_from_config`::

    client = client_from_config(config)          # base_url, email + api_token, or oauth_client_id/secret/refresh_token
    client.field_ids({"IFS Key", "GL Account"})  # name → customfield id of this site
    for page in client.search_pages('labels in ("ifs-PurchaseOrder-P1")', ["summary"]):
        ...
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import requests

from ml_connector_core.api_client import ApiClient
from ml_connector_core.http import RETRIABLE_STATUS
from ml_connector_core.oauth import RenewingBearerAuth, RetriableTokenResponse, token_body, token_failure
from ml_connector_core.redaction import redact_text, register_secret
from ml_connector_core.secrets import load_key, seal, unseal
from ml_connector_core.tls import new_session

logger = logging.getLogger(__name__)

ATLASSIAN_TOKEN_URL = "https://auth.atlassian.com/oauth/token"
ATLASSIAN_API_URL = "https://api.atlassian.com"
SEARCH_PAGE_LIMIT = 100  # Jira's cap on maxResults when fields are asked for


class JiraError(RuntimeError):
    """Jira refused a request; the message quotes Jira's own ``errorMessages`` and ``errors``."""

    def __init__(self, message: str, *, status: int | None = None, error_messages: list[str] | None = None,
                 errors: Mapping[str, str] | None = None) -> None:
        super().__init__(redact_text(message))
        self.status = status
        self.error_messages = list(error_messages or [])
        self.errors = dict(errors or {})


class JiraAuthError(JiraError):
    """The credentials were refused (wrong token, refresh token used up or revoked, no access to the site)."""


class JiraConfigError(ValueError):
    """The Jira connection settings are incomplete or contradictory."""


def jira_error_text(response: requests.Response) -> str:
    """Jira's explanation of a failed response: its errorMessages and field errors, else the start of the body."""
    messages, errors = _jira_error_parts(response)
    parts = list(messages) + [f"{field}: {message}" for field, message in errors.items()]
    if parts:
        return "; ".join(parts)
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("message") or body.get("error")):
        return str(body.get("message") or body.get("error_description") or body.get("error"))
    return (response.text or response.reason or "").strip()[:300]


def element_error_text(element_errors: Mapping[str, Any] | None) -> str:
    """One bulk-create element's errors (``{"errorMessages": [...], "errors": {...}}``) as one line."""
    element_errors = element_errors or {}
    parts = [str(m) for m in element_errors.get("errorMessages") or []]
    parts += [f"{field}: {message}" for field, message in (element_errors.get("errors") or {}).items()]
    return "; ".join(parts) or "Jira gave no reason"


def _jira_error_parts(response: requests.Response) -> tuple[list[str], dict[str, str]]:
    try:
        body = response.json()
    except ValueError:
        return [], {}
    if not isinstance(body, dict):
        return [], {}
    messages = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = {str(k): str(v) for k, v in (body.get("errors") or {}).items()} if isinstance(body.get("errors"), dict) else {}
    return messages, errors


# --- Authentication ---


class BasicTokenAuth(requests.auth.HTTPBasicAuth):
    """Basic auth with the account's email and an API token (https://id.atlassian.com/manage-profile/security/api-tokens)."""

    def __init__(self, email: str, api_token: str) -> None:
        super().__init__(email, api_token)
        register_secret(api_token)

    def __repr__(self) -> str:
        return f"BasicTokenAuth(email={self.username!r})"

    def invalidate(self) -> bool:
        """A 401 with an API token cannot be cured by asking again."""
        return False


class RefreshTokenAuth(RenewingBearerAuth):
    """OAuth 2.0 (3LO) bearer tokens from a rotating refresh token, renewed ahead of expiry and after a 401.

    Atlassian answers every refresh with a new refresh token and refuses the old one soon after, so the newest one is
    kept in memory and, when ``refresh_token_file`` is given, written there (sealed when a secret key is available) and
    read from there on the next start in preference to the configured one.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        token_url: str = ATLASSIAN_TOKEN_URL,
        refresh_token_file: str | os.PathLike | None = None,
        refresh_margin_seconds: float = 60.0,
        timeout_seconds: float = 30.0,
        max_tries: int = 5,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(token_url, client_id, refresh_margin_seconds=refresh_margin_seconds,
                         timeout_seconds=timeout_seconds, max_tries=max_tries, session=session, clock=clock)
        self._client_secret = client_secret
        self.refresh_token_file = Path(refresh_token_file).expanduser() if refresh_token_file else None
        self._refresh_token = self._stored_refresh_token() or refresh_token
        register_secret(client_secret)
        register_secret(self._refresh_token)

    def __repr__(self) -> str:
        return f"RefreshTokenAuth(token_url={self.token_url!r}, client_id={self.client_id!r})"

    @property
    def refresh_token(self) -> str:
        """The newest refresh token (after a rotation, the one to keep)."""
        return self._refresh_token

    def _kept_failing_error(self, response: requests.Response) -> Exception:
        return JiraAuthError(f"the token endpoint {self.token_url} kept answering {token_failure(response)} "
                             f"after {self.max_tries} tries", status=response.status_code)

    def _unreachable_error(self, exc: Exception) -> Exception:
        return JiraAuthError(f"cannot reach the token endpoint {self.token_url}: {type(exc).__name__}")

    def _fetch_token(self) -> None:
        body = self._post_with_retries(self._post_refresh)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise JiraAuthError(f"the token endpoint {self.token_url} answered without an access_token")
        register_secret(token)
        rotated = body.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            register_secret(rotated)
            self._refresh_token = rotated
            self._store_refresh_token(rotated)
        lifetime = float(body.get("expires_in") or 3600)
        self._keep(token, lifetime)
        self.tokens_fetched += 1
        logger.info("Obtained a Jira access token valid for %.0f s", lifetime)

    def _post_refresh(self) -> dict:
        form = {"grant_type": "refresh_token", "client_id": self.client_id, "client_secret": self._client_secret,
                "refresh_token": self._refresh_token}
        response = self._session.post(self.token_url, json=form, timeout=self.timeout_seconds)
        if response.status_code in RETRIABLE_STATUS:
            raise RetriableTokenResponse(response)
        if response.status_code != 200:
            reason = _oauth_error_text(response)
            hint = ""
            if "invalid_grant" in reason:
                hint = (" (the refresh token was used already, expired or was revoked: Atlassian rotates refresh tokens, "
                        "so set oauth_refresh_token_file to keep the newest one, or authorize the app again)")
            raise JiraAuthError(f"the token endpoint {self.token_url} refused client '{self.client_id}' "
                                f"(HTTP {response.status_code}): {reason}{hint}", status=response.status_code)
        return token_body(response)

    def _stored_refresh_token(self) -> str | None:
        if self.refresh_token_file is None or not self.refresh_token_file.is_file():
            return None
        stored = self.refresh_token_file.read_text(encoding="utf-8").strip()
        return unseal(stored, setting_name="oauth_refresh_token_file") if stored else None

    def _store_refresh_token(self, token: str) -> None:
        if self.refresh_token_file is None:
            logger.warning("Jira rotated the OAuth refresh token and oauth_refresh_token_file is not set: the configured "
                           "refresh token will be refused once its reuse interval has passed")
            return
        text = seal(token)  # a key is there: client_from_config required one for the file
        path = self.refresh_token_file
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(temporary, path)


def _oauth_error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return (response.text or response.reason or "")[:200]
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "error_description") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return response.reason or ""


# --- The client ---


class JiraClient(ApiClient):
    """One Jira Cloud site: ``request`` for any REST v3 call, and the few helpers both plugins need."""

    service_name = "Jira"
    error_class = JiraError
    auth_error_class = JiraAuthError
    retry_logger = logger

    def __init__(
        self,
        site_url: str,
        auth: BasicTokenAuth | RefreshTokenAuth,
        *,
        api_root: str | None = None,
        requests_per_minute: int = 300,
        max_tries: int = 8,
        timeout_seconds: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        self.site_url = site_url.rstrip("/")
        self.api_root = (api_root or f"{self.site_url}/rest/api/3").rstrip("/")
        super().__init__(auth, budget_key=f"jira:{self.site_url}", requests_per_minute=requests_per_minute,
                         max_tries=max_tries, timeout_seconds=timeout_seconds, session=session)

    def __repr__(self) -> str:
        return f"JiraClient({self.api_root!r})"

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                retry_unsafe: bool = True, accept: Iterable[int] = ()) -> requests.Response:
        """Send one call (``path`` under /rest/api/3) and return the response of a 2xx, or of a status in ``accept``.

        429 and 5xx are retried after ``Retry-After`` (or backoff) up to ``max_tries``; with ``retry_unsafe=False``
        (a create, which a 5xx may have carried out) only 429, which Jira answers before doing anything, is retried.
        A 401 gets one fresh token and one more try. Anything else raises :class:`JiraError` quoting Jira.
        """
        url = f"{self.api_root}/{path.lstrip('/')}"
        return self._send(method, path, url, accept=accept, retry_unsafe=retry_unsafe, params=params, json=json)

    # Hooks of the shared send loop

    def error_text(self, response: requests.Response) -> str:
        return jira_error_text(response)

    def _error(self, message: str, response: requests.Response, error_class: type[Exception] | None = None) -> Exception:
        return (error_class or JiraError)(message, status=response.status_code, **_error_fields(response))

    def _unreachable_message(self, method: str, path: str, exc: Exception, attempts: int) -> str:
        return f"{method} {path}: cannot reach Jira at {self.api_root} ({type(exc).__name__})"

    def _refusal(self, method: str, path: str, response: requests.Response) -> Exception:
        if response.status_code == 401:
            return self._error(f"{method} {path}: Jira refused the credentials (HTTP 401): {jira_error_text(response)}",
                               response, JiraAuthError)
        if response.status_code == 403:
            return self._error(f"{method} {path}: HTTP 403: {jira_error_text(response)}", response, JiraAuthError)
        return super()._refusal(method, path, response)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None).json()

    def cloud_id_of_site(self, api_url: str) -> str:
        """The cloud id of this client's site, from the sites the OAuth app may use (Atlassian's accessible-resources),
        asked through the send loop like any call: a GET, safe to repeat."""
        url = f"{api_url.rstrip('/')}/oauth/token/accessible-resources"
        try:
            resources = self._send("GET", url, url).json() or []
        except JiraError as exc:
            raise type(exc)(f"cannot list the sites this OAuth app may use: {exc}", status=exc.status) from None
        wanted = self.site_url.casefold()
        for resource in resources:
            if str(resource.get("url", "")).rstrip("/").casefold() == wanted:
                return str(resource["id"])
        shown = ", ".join(str(r.get("url")) for r in resources) or "none"
        raise JiraConfigError(f"the OAuth app has no access to {self.site_url} (it may use: {shown}); set cloud_id or "
                              "base_url")

    # Helpers both plugins need

    def myself(self) -> dict:
        return self.get("myself")

    def fields(self) -> list[dict]:
        return self.get("field")

    def field_ids(self, names: Iterable[str], fields: list[dict] | None = None) -> dict[str, str]:
        """Field name → id on this site (custom field ids differ per site). A value that already is an id
        (``customfield_10050``, ``summary``) is kept. Unknown or ambiguous names raise a JiraError naming them.
        ``fields`` is GET /field's answer when the caller has it already."""
        wanted = list(dict.fromkeys(names))
        by_name: dict[str, list[str]] = {}
        ids: set[str] = set()
        for field in self.fields() if fields is None else fields:
            by_name.setdefault(str(field.get("name", "")).casefold(), []).append(field["id"])
            ids.add(field["id"])
        resolved, missing, ambiguous = {}, [], []
        for name in wanted:
            if name in ids:
                resolved[name] = name
                continue
            matches = by_name.get(name.casefold(), [])
            if len(matches) == 1:
                resolved[name] = matches[0]
            elif not matches:
                missing.append(name)
            else:
                ambiguous.append(f"'{name}' ({', '.join(sorted(matches))})")
        problems = []
        if missing:
            problems.append("no field named " + ", ".join(f"'{n}'" for n in missing))
        if ambiguous:
            problems.append("several fields named " + ", ".join(ambiguous) + " (give the id instead of the name)")
        if problems:
            raise JiraError(f"Jira site {self.site_url} has {'; '.join(problems)}: create the field(s) or change the "
                            "custom_fields setting")
        return resolved

    def search_pages(self, jql: str, fields: Iterable[str], *, page_size: int = SEARCH_PAGE_LIMIT) -> Iterator[list[dict]]:
        """The issues matching ``jql``, one page at a time, through POST /search/jql and its nextPageToken."""
        body: dict[str, Any] = {"jql": jql, "fields": list(fields), "maxResults": min(page_size, SEARCH_PAGE_LIMIT)}
        while True:
            page = self.request("POST", "search/jql", json=body).json()
            yield page.get("issues") or []
            token = page.get("nextPageToken")
            if page.get("isLast", token is None) or not token:
                return
            body = {**body, "nextPageToken": token}

    def find_user(self, query: str) -> dict | None:
        """The one active user whose email or display name is ``query``; None when there is none. Several people
        matching only as prefixes (``anna`` for Anna Berg and Annabel Ek) raise a JiraError naming them."""
        users = [u for u in self.get("user/search", query=query) or [] if u.get("active", True)]
        wanted = query.casefold()
        exact = [u for u in users if wanted in (str(u.get("emailAddress", "")).casefold(), str(u.get("displayName", "")).casefold())]
        if len(exact) == 1:
            return exact[0]
        candidates = exact or users
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            return None
        names = ", ".join(sorted(str(u.get("displayName") or u.get("accountId")) for u in candidates))
        raise JiraError(f"'{query}' matches several Jira users ({names}): use the email address")


def _error_fields(response: requests.Response) -> dict:
    messages, errors = _jira_error_parts(response)
    return {"error_messages": messages, "errors": errors}


# --- From plugin settings ---


def client_from_config(config: Mapping[str, Any], *, session: requests.Session | None = None) -> JiraClient:
    """The client described by the flat settings both Jira plugins declare:

    ``base_url`` (the site, https://<site>.atlassian.net), then either ``email`` + ``api_token`` (Basic) or
    ``oauth_client_id`` + ``oauth_client_secret`` + ``oauth_refresh_token`` (OAuth 2.0 3LO; ``cloud_id`` optional, found
    through accessible-resources; ``oauth_token_url`` / ``oauth_api_url`` for other hosts; ``oauth_refresh_token_file``
    keeps the rotated refresh token), ``requests_per_minute``, ``max_tries``, ``request_timeout_seconds``. Secrets may
    be sealed (sealed:v1:...).
    """
    base_url = str(config.get("base_url") or "").rstrip("/")
    if not base_url:
        raise JiraConfigError("base_url is required: the Jira site, e.g. https://acme.atlassian.net")
    options = {
        "requests_per_minute": int(config.get("requests_per_minute") or 300),
        "max_tries": int(config.get("max_tries") or 8),
        "timeout_seconds": float(config.get("request_timeout_seconds") or 60),
    }
    oauth_keys = ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")
    uses_oauth = any(config.get(k) for k in oauth_keys)
    if uses_oauth:
        missing = [k for k in oauth_keys if not config.get(k) and not (k == "oauth_refresh_token" and config.get("oauth_refresh_token_file"))]
        if missing:
            raise JiraConfigError(f"OAuth needs {', '.join(missing)} as well")
        if config.get("oauth_refresh_token_file"):
            # The file keeps a live credential between runs: sealed, never plain on disk. Asked for before the first
            # token request rotates the refresh token, as a token that cannot be kept would be lost.
            load_key("oauth_refresh_token_file keeps the rotated OAuth refresh token, sealed")
        auth = RefreshTokenAuth(
            str(config["oauth_client_id"]),
            unseal(str(config["oauth_client_secret"]), setting_name="oauth_client_secret"),
            unseal(str(config.get("oauth_refresh_token") or ""), setting_name="oauth_refresh_token"),
            token_url=str(config.get("oauth_token_url") or ATLASSIAN_TOKEN_URL),
            refresh_token_file=config.get("oauth_refresh_token_file") or None,
            timeout_seconds=options["timeout_seconds"],
            session=new_session(config),
        )
        if not auth.refresh_token:
            raise JiraConfigError("OAuth needs oauth_refresh_token (or an oauth_refresh_token_file that holds one)")
        api_url = str(config.get("oauth_api_url") or ATLASSIAN_API_URL).rstrip("/")
        client = JiraClient(base_url, auth, session=session or new_session(config), **options)
        cloud_id = config.get("cloud_id") or client.cloud_id_of_site(api_url)
        client.api_root = f"{api_url}/ex/jira/{cloud_id}/rest/api/3"  # OAuth calls go through the API gateway
        return client
    if not (config.get("email") and config.get("api_token")):
        raise JiraConfigError("Jira credentials are missing: set email and api_token (Basic), or oauth_client_id, "
                              "oauth_client_secret and oauth_refresh_token (OAuth 2.0)")
    auth = BasicTokenAuth(str(config["email"]), unseal(str(config["api_token"]), setting_name="api_token"))
    return JiraClient(base_url, auth, session=session or new_session(config), **options)

