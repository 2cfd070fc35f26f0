"""One Salesforce object as a stream: SOQL on SystemModstamp, paged with nextRecordsUrl, schema from describe."""

from __future__ import annotations

import datetime as dt
import typing as t
from collections.abc import Iterable, Mapping, Sequence

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from ml_connector_core.tap_cli import state_interval

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_sfdc.tap import TapSfdc

UTC = dt.timezone.utc
REPLICATION_KEY = "SystemModstamp"
# State key: the Ids already emitted whose SystemModstamp equals the bookmark. Salesforce keeps datetimes to the
# second, so the next run must read from the bookmark itself (>=) and skip exactly these.
IDS_AT_BOOKMARK = "ids_at_replication_key_value"

_TEXT_TYPES = {"string", "textarea", "picklist", "multipicklist", "combobox", "phone", "url", "email", "id",
               "reference", "encryptedstring"}
_DECIMAL_TYPES = {"double", "currency", "percent"}


class FieldError(ValueError):
    """The objects setting names a field the object does not have."""


def field_schema(field: Mapping[str, t.Any]) -> dict:
    """JSON schema of one describe field. Numbers with a fraction are decimals carried exactly (never float)."""
    kind = str(field.get("type") or "string")
    if kind in _DECIMAL_TYPES:
        schema: dict = {"type": ["number", "null"], "x-sql-datatype": "decimal"}
        sizes = {k: field[k] for k in ("precision", "scale") if isinstance(field.get(k), int) and field.get(k)}
        if sizes:
            schema["x-sql-datatype-properties"] = sizes
    elif kind in ("int", "long"):
        schema = {"type": ["integer", "null"]}
    elif kind == "boolean":
        schema = {"type": ["boolean", "null"]}
    elif kind == "date":
        schema = {"type": ["string", "null"], "format": "date"}
    elif kind == "datetime":
        schema = {"type": ["string", "null"], "format": "date-time"}
    elif kind == "time":
        schema = {"type": ["string", "null"], "format": "time"}
    else:
        schema = {"type": ["string", "null"]}
        if kind in _TEXT_TYPES and isinstance(field.get("length"), int) and field["length"] > 0:
            schema["maxLength"] = field["length"]
    schema["description"] = f"{field.get('label') or field.get('name')} ({kind})"
    return schema


def object_schema(sobject: str, describe: Mapping[str, t.Any], wanted: Sequence[str]) -> dict:
    fields = {str(f["name"]): f for f in describe.get("fields") or []}
    missing = [name for name in wanted if name not in fields]
    if missing:
        raise FieldError(f"objects.{sobject}.fields: {sobject} has no field {', '.join(missing)} "
                         f"(fields it has: {', '.join(sorted(fields))})")
    properties = {name: field_schema(fields[name]) for name in wanted}
    properties["Id"]["type"] = ["string"]
    properties[REPLICATION_KEY]["type"] = ["string"]
    return {"type": "object", "properties": properties, "required": ["Id", REPLICATION_KEY]}


def salesforce_time_to_utc(value: str | None) -> str | None:
    """``2026-11-25T20:15:03.000+0000`` (how Salesforce renders datetimes) → ``2026-11-25T20:15:03.000Z``."""
    if not value:
        return value
    return parse_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(value: str | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":  # +0000 → +00:00
            text = f"{text[:-2]}:{text[-2:]}"
        parsed = dt.datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def soql_datetime(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build_soql(sobject: str, fields: Sequence[str], where: str | None, since: dt.datetime | None) -> str:
    conditions = []
    if where and where.strip():
        conditions.append(f"({where.strip()})")
    if since is not None:
        conditions.append(f"{REPLICATION_KEY} >= {soql_datetime(since)}")
    soql = f"SELECT {', '.join(fields)} FROM {sobject}"
    if conditions:
        soql += " WHERE " + " AND ".join(conditions)
    return soql + f" ORDER BY {REPLICATION_KEY} ASC, Id ASC"


class SObjectStream(Stream):
    """Rows of one object in the order Salesforce last changed them; the bookmark is the newest SystemModstamp (UTC)."""

    primary_keys = ["Id"]
    replication_key = REPLICATION_KEY
    is_sorted = True
    # Rows come decoded with their Singer types already (Decimals for fractions); datetimes are rewritten to UTC.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: TapSfdc, name: str, sobject: str, fields: Sequence[str], where: str | None,
                 schema: dict) -> None:
        self.sobject = sobject
        self.fields = list(fields)
        self.where = where
        self._datetime_fields = [n for n, s in schema["properties"].items() if s.get("format") == "date-time"]
        super().__init__(tap, name=name, schema=schema)
        self._tap_sfdc = tap
        self.STATE_MSG_FREQUENCY = state_interval(self.config)

    def soql(self, context: Context | None) -> str:
        start = self.get_starting_timestamp(context)
        return build_soql(self.sobject, self.fields, self.where, parse_utc(start) if start else None)

    def get_records(self, context: Context | None) -> Iterable[dict]:
        state = self.get_context_state(context)
        bookmark = state.get("replication_key_value")
        already = set(state.get(IDS_AT_BOOKMARK) or []) if bookmark else set()
        bookmark_moment = parse_utc(bookmark) if bookmark else None
        soql = self.soql(context)
        self.logger.info("Querying Salesforce: %s", soql)
        for page in self._tap_sfdc.client.query_pages(soql):
            for row in page:
                record = self.to_record(row)
                if already and record["Id"] in already and parse_utc(record[REPLICATION_KEY]) == bookmark_moment:
                    continue  # emitted by an earlier run, unchanged since
                yield record

    def to_record(self, row: Mapping[str, t.Any]) -> dict:
        record = {name: row.get(name) for name in self.fields}
        for name in self._datetime_fields:
            record[name] = salesforce_time_to_utc(record.get(name))
        return record

    # Bookmarks

    def _increment_stream_state(self, latest_record: Record, *, context: Context | None = None) -> None:
        state = self.get_context_state(context)
        current = state.get("replication_key_value")
        value = latest_record.get(REPLICATION_KEY)
        if current and value and parse_utc(value) < parse_utc(current):
            return  # the bookmark never moves back
        same_second = bool(current and value and parse_utc(value) == parse_utc(current))
        super()._increment_stream_state(latest_record, context=context)
        ids = list(state.get(IDS_AT_BOOKMARK) or []) if same_second else []
        if latest_record.get("Id") not in ids:
            ids.append(latest_record.get("Id"))
        state[IDS_AT_BOOKMARK] = ids
