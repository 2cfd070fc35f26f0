"""The Jira connection settings, declared once for every Jira plugin (target-jira, tap-jiracloud).

Imports singer-sdk, which every plugin depends on; the rest of connector-core does not need it.
"""

from __future__ import annotations

from singer_sdk import typing as th

from ml_connector_core.tls import ca_bundle_property


def jira_connection_properties(acting: str) -> list[th.Property]:
    """``acting`` completes "the Atlassian account the plugin ...", e.g. "reads as"."""
    return [
        th.Property("base_url", th.StringType, required=True, title="Jira site URL",
                    description="The Jira Cloud site, e.g. https://acme.atlassian.net (with OAuth: the site the app may use)."),
        th.Property("email", th.StringType, description=f"Basic auth: the email of the Atlassian account the plugin {acting}."),
        th.Property("api_token", th.StringType, secret=True,
                    description="Basic auth: an API token of that account; plain or sealed (sealed:v1:...)."),
        th.Property("oauth_client_id", th.StringType, description="OAuth 2.0 (3LO): the app's client id."),
        th.Property("oauth_client_secret", th.StringType, secret=True, description="OAuth 2.0: the app's secret; may be sealed."),
        th.Property("oauth_refresh_token", th.StringType, secret=True,
                    description="OAuth 2.0: a refresh token (offline_access); may be sealed. Jira rotates it on every refresh."),
        th.Property("oauth_refresh_token_file", th.StringType,
                    description="OAuth 2.0: file keeping the newest rotated refresh token, sealed (so it needs the key: "
                                "MLC_SECRET_KEY or MLC_SECRET_KEY_FILE); read in preference to oauth_refresh_token."),
        th.Property("cloud_id", th.StringType,
                    description="OAuth 2.0: the site's cloud id; found through accessible-resources when empty."),
        th.Property("oauth_token_url", th.StringType, default="https://auth.atlassian.com/oauth/token",
                    description="OAuth 2.0 token endpoint."),
        th.Property("oauth_api_url", th.StringType, default="https://api.atlassian.com",
                    description="OAuth 2.0 API gateway (requests go to <oauth_api_url>/ex/jira/<cloud_id>/rest/api/3)."),
        th.Property("requests_per_minute", th.IntegerType, default=300,
                    description="Client-side request budget for the site, shared by every stream."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per request on 429 (after Retry-After), 5xx and lost connections."),
        th.Property("request_timeout_seconds", th.IntegerType, default=60, description="Timeout of one HTTP request."),
        ca_bundle_property(),
    ]
