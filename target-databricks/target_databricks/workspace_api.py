"""The workspace's REST API as the warehouse load path calls it: through connector-core's one send loop (ApiClient),
so that its requests are retried as every other ml-connector plugin's are.

Why not databricks-sdk's own retries: it retries 429 and 503 (after Retry-After), lost connections and a few known
messages, but not a 500, 502 or 504; it waits silently for up to five minutes; and it cannot tell a statement that
FAILED for a transient reason from one that never will succeed. connector-core's loop retries 429, 5xx and lost
connections with Retry-After first, announces long waits, keeps a request budget per workspace, and after a refused
token gets one new token and tries again. The statement runner (warehouse.py) retries transient statement failures
through the same loop (``with_retries``).

Authentication: a personal access token as it is, or a service principal's OAuth machine-to-machine token from the
workspace's ``/oidc/v1/token`` (client credentials in a Basic header, as Databricks documents; scope ``all-apis``),
renewed a margin before it expires and after the workspace refuses it. Workspaces have refused expired OAuth tokens with 403 "JWT has expired" / "Token is expiring
within 30 seconds. (token expired)" and, lately, with 401 "Token is expired": each gets a new token.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from ml_connector_core.api_client import ApiClient
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.redaction import redact_text, register_secret
from ml_connector_core.tls import new_session
from target_databricks.workspace import missing_credentials, unsealed_setting, workspace_host

logger = logging.getLogger(__name__)

OAUTH_SCOPE = "all-apis"
FILES = "/api/2.0/fs/files"
DIRECTORIES = "/api/2.0/fs/directories"


class DatabricksApiError(RuntimeError):
    """The workspace refused a call, or kept failing it; ``error_code`` is Databricks' own when it sent one."""

    def __init__(self, message: str, *, status: int | None = None, error_code: str | None = None) -> None:
        super().__init__(redact_text(message))
        self.status = status
        self.error_code = error_code


class DatabricksAuthError(DatabricksApiError):
    """The credentials were refused (or the token endpoint could not give a token)."""


class PersonalAccessToken(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``; a refused personal access token cannot be renewed by the plugin."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "PersonalAccessToken(****)"

    def invalidate(self) -> bool:
        return False


def error_body(response: requests.Response) -> tuple[str | None, str]:
    """(error_code, message) of a Databricks error answer: ``{"error_code", "message"}`` (the front door's error_code is
    the numeric status); the start of the body when it is something else (an HTML page from a proxy)."""
    try:
        body = response.json()
    except ValueError:
        return None, " ".join(response.text.split())[:200] or response.reason or ""
    if isinstance(body, Mapping) and body.get("message"):
        code = body.get("error_code")
        return (str(code) if code is not None else None), str(body["message"])
    return None, str(body)[:200]


class WorkspaceApi(ApiClient):
    """One Databricks workspace's REST API: JSON calls and the Files API of volumes, through the shared send loop."""

    service_name = "Databricks"
    error_class = DatabricksApiError
    auth_error_class = DatabricksAuthError
    retry_logger = logger

    def __init__(self, host: str, auth: requests.auth.AuthBase, *, requests_per_minute: int, max_tries: int,
                 timeout_seconds: float, session: requests.Session | None = None) -> None:
        self.base_url = host.rstrip("/")
        super().__init__(auth, budget_key=f"databricks:{self.base_url}", requests_per_minute=requests_per_minute,
                         max_tries=max_tries, timeout_seconds=timeout_seconds, session=session)

    def __repr__(self) -> str:
        return f"WorkspaceApi({self.base_url!r})"

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict:
        return self._json(path, self._send("GET", path, self.base_url + path, params=dict(params or {})))

    def post(self, path: str, body: Mapping[str, Any], *, retry_unsafe: bool) -> dict:
        """``retry_unsafe``: the call may be sent again after a 5xx or a lost connection, which may have carried it
        out (say why at the caller: an idempotent call, or one whose repetition is recognised)."""
        return self._json(path, self._send("POST", path, self.base_url + path, json=dict(body),
                                           retry_unsafe=retry_unsafe))

    # The Files API (Unity Catalog volumes): paths are /Volumes/<catalog>/<schema>/<volume>/...

    def put_file(self, volume_path: str, content: bytes) -> None:
        """Upload ``content`` to a file of a volume, replacing what is there. Sent again after a 5xx or a lost
        connection: the same bytes to the same path leave the same file, however often they arrive."""
        path = FILES + quote(volume_path)
        self._send("PUT", path, self.base_url + path, params={"overwrite": "true"}, data=content,
                   headers={"Content-Type": "application/octet-stream"}, retry_unsafe=True)

    def delete_file(self, volume_path: str) -> bool:
        """Delete a file of a volume; False when it was not there (a delete sent again after a lost answer)."""
        path = FILES + quote(volume_path)
        return self._send("DELETE", path, self.base_url + path, accept=(404,), retry_unsafe=True).status_code != 404

    def delete_empty_directory(self, volume_path: str) -> bool:
        """Delete a directory of a volume if it is empty; False when it is not (400) or not there (404)."""
        path = DIRECTORIES + quote(volume_path)
        return self._send("DELETE", path, self.base_url + path, accept=(400, 404), retry_unsafe=True).ok

    def list_directory(self, volume_path: str) -> list[dict] | None:
        """The entries of a directory of a volume ({path, name, is_directory, file_size, last_modified}), every page;
        None when there is no such directory."""
        path = DIRECTORIES + quote(volume_path)
        entries: list[dict] = []
        token = None
        while True:
            response = self._send("GET", path, self.base_url + path, accept=(404,),
                                  params={"page_token": token} if token else {})
            if response.status_code == 404:
                return None
            page = self._json(path, response)
            entries += page.get("contents") or []
            token = page.get("next_page_token")
            if not token:
                return entries

    def _json(self, path: str, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            raise DatabricksApiError(f"{path}: Databricks answered HTTP {response.status_code} with a body that is not "
                                     f"JSON: {response.text[:200]!r}", status=response.status_code) from None
        if not isinstance(body, dict):
            raise DatabricksApiError(f"{path}: Databricks answered HTTP {response.status_code} with JSON that is not an "
                                     f"object: {str(body)[:200]}", status=response.status_code)
        return body

    # the send loop's hooks

    def error_text(self, response: requests.Response) -> str:
        code, message = error_body(response)
        return f"{code}: {message}" if code and code != str(response.status_code) else message

    def _error(self, message: str, response: requests.Response,
               error_class: type[Exception] | None = None) -> Exception:
        code, _ = error_body(response)
        if error_class is None and response.status_code in (401, 403) and code in ("401", "403"):
            # The front door refused the credentials (the API behind it answers symbolic codes)
            error_class = DatabricksAuthError
            if isinstance(self.auth, PersonalAccessToken):
                message += (" (the personal access token in setting 'token' was refused: expired or revoked? A "
                            "service principal's client_id and client_secret get new tokens as they expire)")
            else:
                message += (f" (a new token for client_id '{self.auth.client_id}' was refused as well: does the "
                            "service principal still have access to this workspace?)")
        return (error_class or DatabricksApiError)(message, status=response.status_code, error_code=code)

    def _token_refused(self, response: requests.Response) -> bool:
        """401, or a 403 from the front door (its error_code is the numeric status: "JWT has expired", "Invalid access
        token."); a 403 PERMISSION_DENIED of the API behind it is about the principal's rights, not its token."""
        if response.status_code == 401:
            return True
        code, _ = error_body(response)
        return response.status_code == 403 and code == "403"

    def _renew_auth(self, response: requests.Response) -> bool:
        renewed = bool(self.auth.invalidate())
        if renewed:
            logger.info("Databricks refused the access token (%s): getting a new one", self.error_text(response))
        return renewed


def workspace_api(config: Mapping, *, max_tries: int | None = None, timeout_seconds: float = 90.0) -> WorkspaceApi:
    """The workspace named by ``workspace_host`` with the configured credentials (``token``, or ``client_id`` and
    ``client_secret``; sealed values are opened)."""
    host = workspace_host(config)
    tries = int(max_tries if max_tries is not None else config.get("max_tries") or 8)
    if config.get("token"):
        auth: requests.auth.AuthBase = PersonalAccessToken(unsealed_setting(config["token"], "token"))
    elif config.get("client_id") and config.get("client_secret"):
        auth = ClientCredentialsAuth(f"{host.rstrip('/')}/oidc/v1/token", config["client_id"],
                                     unsealed_setting(config["client_secret"], "client_secret"), scope=OAUTH_SCOPE,
                                     max_tries=tries, timeout_seconds=min(timeout_seconds, 60.0), basic_auth=True,
                                     session=new_session(config))
    else:
        raise missing_credentials()
    return WorkspaceApi(host, auth, requests_per_minute=int(config.get("requests_per_minute") or 1200),
                        max_tries=tries, timeout_seconds=timeout_seconds, session=new_session(config))
