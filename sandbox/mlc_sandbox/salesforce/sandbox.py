"""Running the Salesforce stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

from pathlib import Path

from ..runner import InProcessStandIn, LoggedStandInProcess, SettingsAdminClient, option_flags, tls_flags
from .app import SalesforceApp
from .settings import API_VERSION, SalesforceSettings


class _AdminClient(SettingsAdminClient):
    """The Salesforce admin interface (records, sessions, API usage, clock, faults) over HTTP."""

    settings: SalesforceSettings

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/services/oauth2/token"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/services/data/v{API_VERSION}"

    def records(self, sobject: str, include_deleted: bool = False) -> list[dict]:
        """Every row of `sobject` as stored (datetimes rendered as the API does)."""
        suffix = "?deleted=true" if include_deleted else ""
        return self.admin("GET", f"records/{sobject}{suffix}")["records"]

    def record(self, sobject: str, record_id: str) -> dict:
        return self.admin("GET", f"records/{sobject}/{record_id}")

    def insert(self, sobject: str, fields: dict, allow_duplicate_external_ids: bool = False) -> str:
        """Create a record as a person in Salesforce would; returns its id."""
        return self.admin("POST", f"records/{sobject}", {
            "fields": fields, "allow_duplicate_external_ids": allow_duplicate_external_ids})["id"]

    def edit(self, sobject: str, record_id: str, fields: dict) -> dict:
        """Change a record as a person in Salesforce would (LastModifiedDate and SystemModstamp move)."""
        return self.admin("PATCH", f"records/{sobject}/{record_id}", {"fields": fields})["record"]

    def delete(self, sobject: str, record_id: str) -> None:
        self.admin("DELETE", f"records/{sobject}/{record_id}")

    def expire_sessions(self) -> int:
        return self.admin("POST", "sessions/expire")["expired"]

    def set_api_usage(self, used: int) -> dict:
        return self.admin("POST", "api-usage", {"used": used})

    def advance_clock(self, seconds: float) -> str:
        """Move the org's clock forward; returns the new now as the API renders it."""
        return self.admin("POST", "clock", {"advance_seconds": seconds})["now"]


def _settings(session_ttl: int, daily_api_limit: int, query_batch_size: int,
              client_secret: str = SalesforceSettings.client_secret) -> SalesforceSettings:
    return SalesforceSettings(session_ttl=session_ttl, daily_api_limit=daily_api_limit,
                              query_batch_size=query_batch_size, client_secret=client_secret)


class SalesforceSandbox(_AdminClient, InProcessStandIn):
    """The Salesforce stand-in in this process, serving from a background thread.

        with SalesforceSandbox(port=0) as sf:
            token = requests.post(sf.token_url, data={"grant_type": "client_credentials",
                                                      "client_id": sf.client_id, "client_secret": sf.client_secret})
            sf.records("Account")
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", session_ttl: int = SalesforceSettings.session_ttl,
                 daily_api_limit: int = SalesforceSettings.daily_api_limit,
                 query_batch_size: int = SalesforceSettings.query_batch_size,
                 client_secret: str = SalesforceSettings.client_secret, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None):
        self.settings = _settings(session_ttl, daily_api_limit, query_batch_size, client_secret)
        self._init_server(host, port, tls_cert, tls_key)
        self.app: SalesforceApp | None = None

    def _build_app(self) -> SalesforceApp:
        return SalesforceApp(self.settings)


class SalesforceSandboxProcess(_AdminClient, LoggedStandInProcess):
    """The Salesforce stand-in as a child process (`mlc-sandbox serve salesforce ...`), started and stopped from
    Python. `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves."""

    label = "Salesforce"

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", session_ttl: int = SalesforceSettings.session_ttl,
                 daily_api_limit: int = SalesforceSettings.daily_api_limit,
                 query_batch_size: int = SalesforceSettings.query_batch_size, timeout: float = 60,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None):
        self.settings = _settings(session_ttl, daily_api_limit, query_batch_size)
        flags = option_flags({"port": port, "host": host, "session_ttl": session_ttl,
                              "daily_api_limit": daily_api_limit, "query_batch_size": query_batch_size})
        self._serve_child("salesforce", flags + tls_flags(self, tls_cert, tls_key), timeout)
