"""Running the Jira stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

from pathlib import Path

from ..runner import InProcessStandIn, LoggedStandInProcess, SettingsAdminClient, option_flags, tls_flags
from .app import JiraApp
from .settings import JiraSettings


class _AdminClient(SettingsAdminClient):
    """The Jira admin interface (issues, workflow moves, violations, faults, tokens) over HTTP."""

    settings: JiraSettings

    @property
    def email(self) -> str:
        return self.settings.email

    @property
    def api_token(self) -> str:
        return self.settings.api_token

    @property
    def refresh_token(self) -> str:
        """The refresh token the site starts with (valid until first used, then rotated)."""
        return self.settings.initial_refresh_token

    @property
    def cloud_id(self) -> str:
        return self.settings.cloud_id

    @property
    def api_url(self) -> str:
        """What stands in for https://api.atlassian.com/ex/jira/<cloudid> (Bearer tokens)."""
        return f"{self.base_url}/ex/jira/{self.settings.cloud_id}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    def field_ids(self) -> dict[str, str]:
        """Custom field name -> id (customfield_...)."""
        return self.info()["field_ids"]

    def issues(self) -> list[dict]:
        """Every issue, rendered with all fields as the API does."""
        return self.admin("GET", "issues")["issues"]

    def issue(self, key: str) -> dict:
        return self.admin("GET", f"issues/{key}")

    def transition(self, key: str, status_name: str) -> dict:
        """Move the issue to `status_name` through the workflow's transitions, as a person would."""
        return self.admin("POST", f"issues/{key}/status", {"status": status_name})

    def violations(self) -> list[dict]:
        return self.admin("GET", "violations")["violations"]

    def clear_violations(self) -> None:
        self.admin("DELETE", "violations")

    def throttle(self, count: int = 1, retry_after: int = 1, **details) -> dict:
        return self.add_fault("rate_limit", count=count, retry_after=retry_after, **details)

    def revoke_tokens(self, refresh_tokens: bool = False) -> dict:
        return self.admin("POST", "tokens/revoke", {"refresh_tokens": refresh_tokens})

    def new_refresh_token(self) -> str:
        return self.admin("POST", "tokens/refresh-token")["refresh_token"]


def _settings(rate_limit: int, user_time_zone: str, field_id_base: int, token_ttl: int,
              api_token: str = JiraSettings.api_token) -> JiraSettings:
    return JiraSettings(rate_limit=rate_limit, user_time_zone=user_time_zone, field_id_base=field_id_base,
                        token_ttl=token_ttl, api_token=api_token)


class JiraSandbox(_AdminClient, InProcessStandIn):
    """The Jira stand-in in this process, serving from a background thread.

        with JiraSandbox(port=0) as jira:
            requests.post(f"{jira.base_url}/rest/api/3/issue", auth=(jira.email, jira.api_token), json={...})
            jira.issues()
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", rate_limit: int = JiraSettings.rate_limit,
                 user_time_zone: str = JiraSettings.user_time_zone, field_id_base: int = JiraSettings.field_id_base,
                 token_ttl: int = JiraSettings.token_ttl, api_token: str = JiraSettings.api_token,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        self.settings = _settings(rate_limit, user_time_zone, field_id_base, token_ttl, api_token)
        self._init_server(host, port, tls_cert, tls_key)
        self.app: JiraApp | None = None

    def _build_app(self) -> JiraApp:
        return JiraApp(self.settings)


class JiraSandboxProcess(_AdminClient, LoggedStandInProcess):
    """The Jira stand-in as a child process (`mlc-sandbox serve jira ...`), started and stopped from Python.
    `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves."""

    label = "Jira"

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", rate_limit: int = JiraSettings.rate_limit,
                 user_time_zone: str = JiraSettings.user_time_zone, field_id_base: int = JiraSettings.field_id_base,
                 token_ttl: int = JiraSettings.token_ttl, timeout: float = 60, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None):
        self.settings = _settings(rate_limit, user_time_zone, field_id_base, token_ttl)
        flags = option_flags({"port": port, "host": host, "rate_limit": rate_limit, "user_time_zone": user_time_zone,
                              "field_id_base": field_id_base, "token_ttl": token_ttl})
        self._serve_child("jira", flags + tls_flags(self, tls_cert, tls_key), timeout)
