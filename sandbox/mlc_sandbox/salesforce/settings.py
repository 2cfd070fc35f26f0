"""Everything a Salesforce stand-in run is configured with; `session_ttl`, `daily_api_limit` and `query_batch_size`
can be changed live via /_admin/settings."""

from __future__ import annotations

from dataclasses import dataclass

API_VERSION = "62.0"
OLDEST_VERSION = 31  # versions 31.0 ... 62.0 are served alike


@dataclass
class SalesforceSettings:
    session_ttl: int = 7200  # seconds of inactivity after which a session ends (Salesforce's default: 2 hours)
    daily_api_limit: int = 15000  # API requests per rolling day; at the limit calls are refused with 403
    query_batch_size: int = 2000  # records per query page (Salesforce's default and maximum)
    client_id: str = "mlc-sf-client"
    client_secret: str = "mlc-sf-secret"
    org_id: str = "00D5e000000MLCsEAG"
    integration_user_id: str = "0055e000001MLCbAAO"  # the connected app's run-as user: API writes are made by it
    ui_user_id: str = "0055e000001MLCuAAO"  # the person whose edits /_admin/records makes
