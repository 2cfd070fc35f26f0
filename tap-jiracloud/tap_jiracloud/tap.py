"""tap-jiracloud: Jira Cloud issues through REST API v3 (POST /rest/api/3/search/jql), incremental on `updated`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import StateMessage

from ml_connector_core.jira import JiraClient, JiraConfigError, JiraError, client_from_config
from ml_connector_core.jira_settings import jira_connection_properties
from ml_connector_core.secrets import SecretKeyError
from ml_connector_core.tap_cli import ConfigErrorsInOneLine, state_interval_property
from tap_jiracloud.streams import IssuesStream

DEFAULT_CUSTOM_FIELDS = {"ifs_key": "IFS Key"}
_PROPERTY_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_RESERVED = set(IssuesStream.build_schema({})["properties"])


class TapJiraCloud(ConfigErrorsInOneLine, Tap):
    """Reads Jira Cloud issues changed since the last run, with the custom fields named in the settings."""

    name = "tap-jiracloud"

    config_jsonschema = th.PropertiesList(
        state_interval_property("target-ifscloud writes one record at a time"),
        *jira_connection_properties("reads as"),
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
    ).to_dict()

    @cached_property
    def client(self) -> JiraClient:
        refuse_order_by(self.config.get("jql"))
        try:
            return client_from_config(self.config)
        except (JiraConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    def custom_field_types(self) -> dict[str, tuple[str, str]]:
        """Record property → (field id on this site, Jira type)."""
        return custom_field_types(self.client, self.config.get("custom_fields") or {})

    def discover_streams(self) -> list[IssuesStream]:
        return [IssuesStream(self, self.custom_field_types())]

    def sync_all(self) -> None:
        super().sync_all()
        # End on STATE even when the last records were look-back re-reads that did not move the bookmark.
        self.write_message(StateMessage(value=self.state))


def refuse_order_by(jql: str | None) -> None:
    if re.search(r"\border\s+by\b", jql or "", re.IGNORECASE):
        raise ConfigValidationError("jql must not have ORDER BY: the tap orders by updated itself",
                                    errors=["jql has ORDER BY"])


def custom_field_types(client: JiraClient, custom_fields: Mapping[str, str],
                       site_fields: list[dict] | None = None) -> dict[str, tuple[str, str]]:
    """The custom_fields setting (record property → field name or id) resolved on the site: property → (field id,
    Jira type). ``site_fields`` is GET /field's answer when the caller has it already."""
    wanted = {name: field for name, field in custom_fields.items() if field}
    bad = sorted(n for n in wanted if not _PROPERTY_NAME.match(n) or n in _RESERVED)
    if bad:
        raise ConfigValidationError(
            f"custom_fields: {', '.join(bad)} cannot be record properties (lower-case snake_case, not a built-in one)",
            errors=bad)
    try:
        site_fields = client.fields() if site_fields is None else site_fields
        ids = client.field_ids(wanted.values(), site_fields)
    except JiraError as exc:
        raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
    kinds = {f["id"]: str((f.get("schema") or {}).get("type") or "string") for f in site_fields}
    return {name: (ids[field], kinds.get(ids[field], "string")) for name, field in wanted.items()}


if __name__ == "__main__":
    TapJiraCloud.cli()
