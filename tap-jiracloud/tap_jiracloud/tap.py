"""tap-jiracloud: Jira Cloud issues through REST API v3 (POST /rest/api/3/search/jql), incremental on `updated`."""

from __future__ import annotations

import re
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import StateMessage

from ml_connector_core.jira import JiraClient, JiraConfigError, JiraError, client_from_config
from ml_connector_core.secrets import SecretKeyError
from tap_jiracloud.streams import IssuesStream

DEFAULT_CUSTOM_FIELDS = {"ifs_key": "IFS Key"}
_PROPERTY_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_RESERVED = set(IssuesStream.build_schema({})["properties"])


class TapJiraCloud(Tap):
    """Reads Jira Cloud issues changed since the last run, with the custom fields named in the settings."""

    name = "tap-jiracloud"

    config_jsonschema = th.PropertiesList(
        th.Property("base_url", th.StringType, required=True, title="Jira site URL",
                    description="The Jira Cloud site, e.g. https://acme.atlassian.net (with OAuth: the site the app may use)."),
        th.Property("email", th.StringType, description="Basic auth: the email of the Atlassian account the tap reads as."),
        th.Property("api_token", th.StringType, secret=True,
                    description="Basic auth: an API token of that account; plain or sealed (sealed:v1:...)."),
        th.Property("oauth_client_id", th.StringType, description="OAuth 2.0 (3LO): the app's client id."),
        th.Property("oauth_client_secret", th.StringType, secret=True, description="OAuth 2.0: the app's secret; may be sealed."),
        th.Property("oauth_refresh_token", th.StringType, secret=True,
                    description="OAuth 2.0: a refresh token (offline_access); may be sealed. Jira rotates it on every refresh."),
        th.Property("oauth_refresh_token_file", th.StringType,
                    description="OAuth 2.0: file keeping the newest rotated refresh token (sealed when a key is set); read "
                                "in preference to oauth_refresh_token."),
        th.Property("cloud_id", th.StringType,
                    description="OAuth 2.0: the site's cloud id; found through accessible-resources when empty."),
        th.Property("oauth_token_url", th.StringType, default="https://auth.atlassian.com/oauth/token",
                    description="OAuth 2.0 token endpoint."),
        th.Property("oauth_api_url", th.StringType, default="https://api.atlassian.com",
                    description="OAuth 2.0 API gateway (requests go to <oauth_api_url>/ex/jira/<cloud_id>/rest/api/3)."),
        th.Property("jql", th.StringType,
                    description="Which issues to read, as a JQL condition without ORDER BY, e.g. "
                                "'project in (PUR, MNT) AND labels is not EMPTY'; empty reads every issue."),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest `updated` to read on the first run (UTC); empty reads all history."),
        th.Property("custom_fields", th.ObjectType(additional_properties=th.StringType), default=DEFAULT_CUSTOM_FIELDS,
                    description="Record property → Jira field name (or id), resolved per site, e.g. "
                                "{\"ifs_key\": \"IFS Key\", \"gl_account\": \"GL Account\"}."),
        th.Property("lookback_minutes", th.IntegerType, default=2,
                    description="Re-read this many minutes before the bookmark (JQL dates have minute precision; late commits)."),
        th.Property("page_size", th.IntegerType, default=100, description="Issues per search page (Jira allows 100)."),
        th.Property("requests_per_minute", th.IntegerType, default=300,
                    description="Client-side request budget for the site."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per request on 429 (after Retry-After), 5xx and lost connections."),
        th.Property("request_timeout_seconds", th.IntegerType, default=60, description="Timeout of one HTTP request."),
    ).to_dict()

    @cached_property
    def client(self) -> JiraClient:
        if re.search(r"\border\s+by\b", self.config.get("jql") or "", re.IGNORECASE):
            raise ConfigValidationError("jql must not have ORDER BY: the tap orders by updated itself",
                                        errors=["jql has ORDER BY"])
        try:
            return client_from_config(self.config)
        except (JiraConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    def custom_field_types(self) -> dict[str, tuple[str, str]]:
        """Record property → (field id on this site, Jira type)."""
        wanted = {name: field for name, field in (self.config.get("custom_fields") or {}).items() if field}
        bad = sorted(n for n in wanted if not _PROPERTY_NAME.match(n) or n in _RESERVED)
        if bad:
            raise ConfigValidationError(
                f"custom_fields: {', '.join(bad)} cannot be record properties (lower-case snake_case, not a built-in one)",
                errors=bad)
        try:
            site_fields = self.client.fields()
            ids = self.client.field_ids(wanted.values(), site_fields)
            kinds = {f["id"]: str((f.get("schema") or {}).get("type") or "string") for f in site_fields}
        except JiraError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        return {name: (ids[field], kinds.get(ids[field], "string")) for name, field in wanted.items()}

    def discover_streams(self) -> list[IssuesStream]:
        return [IssuesStream(self, self.custom_field_types())]

    def sync_all(self) -> None:
        super().sync_all()
        # End on STATE even when the last records were look-back re-reads that did not move the bookmark.
        self.write_message(StateMessage(value=self.state))


if __name__ == "__main__":
    TapJiraCloud.cli()
