"""The `issues` stream: Jira issues changed since the bookmark, read with JQL through POST /rest/api/3/search/jql."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from collections.abc import Iterator, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import Stream
from singer_sdk import typing as th

from ml_connector_core.tap_cli import state_interval

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_jiracloud.tap import TapJiraCloud

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
# Jira's field types (GET /field → schema.type) and how their values are carried in a record.
_NUMBER_TYPES = {"number"}
_TEXT_TYPES = {"string", "url", "date", "datetime", "option", "user", "priority", "status", "project", "issuetype"}
# A full pass is repeated when an issue showed up twice (it changed while we paged, which shifts Jira's offset-based
# pages: an issue can slip from the next page onto the one already read). Bounded: a very busy site still finishes.
MAX_PASSES = 3

SYSTEM_FIELDS = ["summary", "status", "priority", "assignee", "labels", "created", "updated", "project", "issuetype"]


def jira_time_to_utc(value: str | None) -> str | None:
    """``2026-11-25T20:15:03.123+0100`` (Jira's format, in the API user's zone) → ``2026-11-25T19:15:03.123Z``."""
    if not value:
        return None
    parsed = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z") if "." in value else dt.datetime.fromisoformat(value)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(value: str | dt.datetime) -> dt.datetime:
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def jql_since(moment: dt.datetime, zone: dt.tzinfo) -> str:
    """A JQL date (minute precision, in the API user's zone) at or before ``moment``.

    Seconds are dropped, which reads a little earlier. Where the local time is ambiguous (the hour clocks go back),
    Jira may read it as either instant, so an hour earlier is asked for.
    """
    local = moment.astimezone(zone).replace(second=0, microsecond=0)
    naive = local.replace(tzinfo=None)
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        local = (moment - dt.timedelta(hours=1)).astimezone(zone).replace(second=0, microsecond=0)
    return local.strftime("%Y-%m-%d %H:%M")


def issues_jql(user_jql: str | None, since: str) -> str:
    condition = f'updated >= "{since}"'
    user_jql = (user_jql or "").strip()
    if user_jql:
        condition = f"({user_jql}) AND {condition}"
    return f"{condition} ORDER BY updated ASC, key ASC"


def _custom_value(value: t.Any, kind: str) -> t.Any:
    if value is None:
        return None
    if kind in _NUMBER_TYPES:
        return value
    if isinstance(value, Mapping):
        for name in ("value", "name", "emailAddress", "displayName", "key", "id"):
            if value.get(name) is not None:
                return str(value[name])
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


class IssuesStream(Stream):
    """Issues in the order Jira last changed them; the bookmark is the newest ``updated``, in UTC."""

    name = "issues"
    primary_keys = ["id"]
    replication_key = "updated"
    is_sorted = True

    def __init__(self, tap: TapJiraCloud, custom_fields: Mapping[str, tuple[str, str]]) -> None:
        #: property name → (field id, Jira type)
        self.custom_fields = dict(custom_fields)
        super().__init__(tap, schema=self.build_schema(self.custom_fields))
        self._tap_jira = tap
        self.STATE_MSG_FREQUENCY = state_interval(self.config)

    @staticmethod
    def build_schema(custom_fields: Mapping[str, tuple[str, str]]) -> dict:
        properties = [
            th.Property("id", th.StringType, required=True, description="Issue id."),
            th.Property("key", th.StringType, description="Issue key, e.g. PUR-12."),
            th.Property("project_key", th.StringType),
            th.Property("issue_type", th.StringType),
            th.Property("summary", th.StringType),
            th.Property("status", th.StringType, description="Status name, e.g. Done."),
            th.Property("status_category", th.StringType, description="new, indeterminate or done."),
            th.Property("priority", th.StringType),
            th.Property("assignee_email", th.StringType),
            th.Property("labels", th.ArrayType(th.StringType)),
            th.Property("created", th.DateTimeType, description="UTC."),
            th.Property("updated", th.DateTimeType, required=True, description="Last change, UTC; the bookmark."),
        ]
        for name, (_, kind) in custom_fields.items():
            kind_type = th.NumberType if kind in _NUMBER_TYPES else th.StringType
            properties.append(th.Property(name, kind_type, description=f"Custom field ({kind})."))
        return th.PropertiesList(*properties).to_dict()

    # Reading

    def user_zone(self) -> dt.tzinfo:
        name = self._tap_jira.client.myself().get("timeZone")
        try:
            return ZoneInfo(name) if name else UTC
        except (ZoneInfoNotFoundError, ValueError):
            self.logger.warning("Jira reports the unknown time zone %r for the API user; reading JQL dates as UTC "
                                "with an extra day of look-back", name)
            return _WideUtc()

    def search_jql(self, context: Context | None) -> str:
        start = self.get_starting_timestamp(context)
        since = EPOCH if start is None else parse_utc(start) - dt.timedelta(minutes=int(self.config["lookback_minutes"]))
        zone = self.user_zone()
        if isinstance(zone, _WideUtc):
            since -= dt.timedelta(days=1)
        return issues_jql(self.config.get("jql"), jql_since(max(since, EPOCH), zone))

    def get_records(self, context: Context | None) -> t.Iterable[dict]:
        jql = self.search_jql(context)
        self.logger.info("Searching Jira: %s", jql)
        fields = SYSTEM_FIELDS + [field_id for field_id, _ in self.custom_fields.values()]
        emitted: dict[str, str | None] = {}
        for _ in range(MAX_PASSES):
            disturbed = False
            for issue in self._issues(jql, fields):
                record = self.to_record(issue)
                seen = emitted.get(record["id"], False)
                if seen == record["updated"]:
                    continue
                if seen is not False:
                    disturbed = True
                emitted[record["id"]] = record["updated"]
                yield record
            if not disturbed:
                return
            self.logger.info("Issues changed while they were read; reading the same range once more so that none is missed")

    def _issues(self, jql: str, fields: list[str]) -> Iterator[dict]:
        for page in self._tap_jira.client.search_pages(jql, fields, page_size=int(self.config["page_size"])):
            yield from page

    def to_record(self, issue: Mapping[str, t.Any]) -> dict:
        fields = issue.get("fields") or {}
        status = fields.get("status") or {}
        record = {
            "id": str(issue["id"]),
            "key": issue.get("key"),
            "project_key": (fields.get("project") or {}).get("key"),
            "issue_type": (fields.get("issuetype") or {}).get("name"),
            "summary": fields.get("summary"),
            "status": status.get("name"),
            "status_category": (status.get("statusCategory") or {}).get("key"),
            "priority": (fields.get("priority") or {}).get("name"),
            "assignee_email": (fields.get("assignee") or {}).get("emailAddress"),
            "labels": list(fields.get("labels") or []),
            "created": jira_time_to_utc(fields.get("created")),
            "updated": jira_time_to_utc(fields.get("updated")),
        }
        for name, (field_id, kind) in self.custom_fields.items():
            record[name] = _custom_value(fields.get(field_id), kind)
        return record

    # Bookmarks

    def _increment_stream_state(self, latest_record: Record, *, context: Context | None = None) -> None:
        # Look-back and second passes re-read issues older than the bookmark; they must not move it backwards.
        current = self.get_context_state(context).get("replication_key_value")
        value = latest_record.get(self.replication_key)
        if current and value and parse_utc(value) < parse_utc(current):
            return
        super()._increment_stream_state(latest_record, context=context)


class _WideUtc(dt.tzinfo):
    """Stands for an unknown zone: UTC, with the caller widening its look-back by a day."""

    def utcoffset(self, moment):
        return dt.timedelta(0)

    def dst(self, moment):
        return dt.timedelta(0)

    def tzname(self, moment):
        return "UTC"
