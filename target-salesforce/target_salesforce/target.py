"""target-salesforce: mapped IFS records upserted into Salesforce objects by external id, parents before children,
never a duplicate."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.api_target import ParentsFirstTarget
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE_SETTING
from ml_connector_core.audited_target import PAYLOAD_RETENTION_SETTING
from ml_connector_core.bad_records import BAD_RECORDS_SETTING
from ml_connector_core.salesforce import (
    COLLECTION_LIMIT,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceConfigError,
    SalesforceLimitError,
    client_from_config,
    connection_properties,
)
from ml_connector_core.secrets import SecretKeyError
from target_salesforce.sinks import SObjectSink
from target_salesforce.writer import RecordError, RecordWriter, Route, parse_routes, relationship_sobject

SOBJECT_ROUTE = th.ObjectType(
    th.Property("sobject", th.StringType, required=True, description="Salesforce object, e.g. Account, Order, OrderItem."),
    th.Property("external_id_field", th.StringType, required=True,
                description="External id field every record is upserted by, e.g. IFS_Supplier_Id__c."),
    th.Property("depends_on", th.ArrayType(th.StringType),
                description="Streams whose pending records are written before a batch of this one (parents first). "
                            "Default: the streams writing the objects this stream's records reference."),
    th.Property("defaults", th.ObjectType(additional_properties=True),
                description="Field → value for fields a record lacks or leaves null, e.g. {\"Pricebook2Id\": "
                            "\"01s...\"} for Orders or {\"PricebookEntryId\": \"01u...\"} for OrderItems."),
)


class TargetSalesforce(ParentsFirstTarget, Target):
    """Upserts every record by its external id through the sObject Collections API (200 per call), parents first."""

    name = "target-salesforce"
    default_sink_class = SObjectSink

    config_jsonschema = th.PropertiesList(
        *connection_properties("writes as"),
        th.Property("sobjects", th.ObjectType(additional_properties=SOBJECT_ROUTE), required=True,
                    description="Incoming stream → {sobject, external_id_field, depends_on, defaults}, e.g. "
                                "{\"sf_supplier_accounts\": {\"sobject\": \"Account\", \"external_id_field\": "
                                "\"IFS_Supplier_Id__c\"}}."),
        th.Property("batch_size", th.IntegerType, default=COLLECTION_LIMIT,
                    description="Records per collections upsert call (at most 200, Salesforce's limit)."),
        th.Property("audit_url", th.StringType, description="Audit trail database URL (default: .ml-connector/audit.sqlite)."),
        th.Property("flow", th.StringType, default="ifs-to-salesforce", description="Flow name in the audit trail."),
        EXPECT_CLOSING_STATE_SETTING,
        BAD_RECORDS_SETTING,
        PAYLOAD_RETENTION_SETTING,
    ).to_dict()

    client_config_errors = (SalesforceConfigError, SecretKeyError)
    stopping_errors = (SalesforceLimitError, SalesforceAuthError, RecordError)
    outcomes_title = "Salesforce upserts"
    undelivered_log_text = "%d record(s) were refused by Salesforce; they are redone at the start of the next run"
    streams_setting = "sobjects"
    missing_parent_note = " (their parents were missing)"
    holding_log_text = ("Holding %d '%s' record(s) until the end of the input: the streams they reference (%s) have not "
                        "started yet")
    parent_first_log_text = "Writing %d pending '%s' record(s) first: '%s' references them"

    def connect(self) -> SalesforceClient:
        return client_from_config(self.config)

    def client_summary(self) -> dict:
        summary = {"api_requests": self.client.requests_sent}
        if self.client.usage is not None:
            summary["api_usage"] = f"{self.client.usage.used}/{self.client.usage.limit}"
        return summary

    @cached_property
    def writer(self) -> RecordWriter:
        batch_size = int(self.config.get("batch_size") or COLLECTION_LIMIT)
        if not 1 <= batch_size <= COLLECTION_LIMIT:
            raise ConfigValidationError(f"batch_size must be between 1 and {COLLECTION_LIMIT}, not {batch_size}",
                                        errors=["batch_size"])
        try:
            routes = parse_routes(self.config)
        except RecordError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        return RecordWriter(self.client, routes, batch_size=batch_size)

    # What Salesforce's writing differs in

    def parent_streams(self, stream: str, planned: list) -> list[str]:
        return self.writer.parent_streams(stream, planned)

    def write_order(self, records_by_stream: Mapping[str, list[Mapping]]) -> list[str]:
        return parents_first(self.writer.routes, records_by_stream)

    def refused_for_missing_parent(self, error: str | None) -> bool:
        return waits_for_parent(error)

    def redo_key_field(self, stream: str) -> str:
        return self.writer.routes[stream].external_id_field


def waits_for_parent(error: str | None) -> bool:
    """Salesforce refused the record because the parent it references by external id does not exist (yet)."""
    return "Foreign key external ID" in (error or "") and "not found" in (error or "")


def parents_first(routes: Mapping[str, Route], records_by_stream: Mapping[str, list[Mapping]]) -> list[str]:
    """The streams in an order where every stream comes after the streams it depends on (explicitly, or through
    the objects its records reference)."""
    def parents(stream: str) -> set[str]:
        route = routes[stream]
        if route.depends_on:
            return set(route.depends_on)
        wanted = {relationship_sobject(name.partition(".")[0]) for record in records_by_stream.get(stream, [])
                  for name, value in record.items() if "." in name or isinstance(value, Mapping)}
        return {s for s, r in routes.items() if r.sobject in wanted and s != stream}

    ordered: list[str] = []

    def place(stream: str, path: tuple[str, ...]) -> None:
        if stream in ordered or stream in path:
            return
        for parent in sorted(parents(stream)):
            if parent in records_by_stream:
                place(parent, (*path, stream))
        ordered.append(stream)

    for stream in records_by_stream:
        place(stream, ())
    return ordered


if __name__ == "__main__":
    TargetSalesforce.cli()
