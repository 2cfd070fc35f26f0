"""Everything a Jira stand-in run is configured with; `rate_limit` and `token_ttl` can be changed live via
/_admin/settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JiraSettings:
    rate_limit: int = 600  # requests per minute per user (sliding window); 0 disables
    user_time_zone: str = "Europe/Stockholm"  # the API user's profile zone: rendered times and JQL dates use it
    field_id_base: int = 10050  # custom fields are customfield_<base+n>, so clients must resolve them by name
    token_ttl: int = 3600  # seconds an OAuth access token lives
    email: str = "mlc-bot@example.com"
    api_token: str = "mlc-sandbox-jira-token"
    client_id: str = "mlc-jira-client"
    client_secret: str = "mlc-jira-secret"
    initial_refresh_token: str = "mlc-sandbox-refresh-token"
    cloud_id: str = "b3d7c1f2-5a4e-4c6b-9d8e-2f1a0c3b4d5e"
    site_name: str = "mlc-sandbox"
    # Atlassian lets a rotated refresh token be used again for a short while (concurrent refreshes do not lock out)
    refresh_reuse_seconds: float = 10.0
