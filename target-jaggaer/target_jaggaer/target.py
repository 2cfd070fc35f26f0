"""target-jaggaer: mapped IFS suppliers and purchase orders created or updated in JAGGAER by their IFS key
(externalId), suppliers before the purchase orders that name them, never a duplicate, every record audited."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.api_target import ParentsFirstTarget
from ml_connector_core.audited_target import PAYLOAD_RETENTION_SETTING
from ml_connector_core.bad_records import BAD_RECORDS_SETTING
from ml_connector_core.jaggaer import (
    JaggaerClient,
    JaggaerConfigError,
    JaggaerError,
    client_from_config,
    connection_properties,
)
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE_SETTING
from ml_connector_core.secrets import SecretKeyError
from target_jaggaer.sinks import JaggaerSink
from target_jaggaer.writer import KINDS, SUPPLIER, RecordError, RecordWriter, parse_routes, waits_for_supplier

STREAM_ROUTE = th.ObjectType(
    th.Property("object", th.StringType, required=True, allowed_values=list(KINDS),
                description="The JAGGAER object the stream's records are: supplier or purchase_order."),
)


class TargetJaggaer(ParentsFirstTarget, Target):
    """Creates or updates JAGGAER suppliers and purchase orders by externalId; writes nothing for unchanged records."""

    name = "target-jaggaer"
    default_sink_class = JaggaerSink

    config_jsonschema = th.PropertiesList(
        *connection_properties("writes as"),
        th.Property("streams", th.ObjectType(additional_properties=STREAM_ROUTE), required=True,
                    description="Incoming stream → {object}, e.g. {\"jaggaer_suppliers\": {\"object\": \"supplier\"}, "
                                "\"jaggaer_purchase_orders\": {\"object\": \"purchase_order\"}}."),
        th.Property("batch_size", th.IntegerType, default=100,
                    description="Records a stream collects before they are written (and its STATE may follow)."),
        th.Property("audit_url", th.StringType, description="Audit trail database URL (default: .ml-connector/audit.sqlite)."),
        th.Property("flow", th.StringType, default="ifs-to-jaggaer", description="Flow name in the audit trail."),
        EXPECT_CLOSING_STATE_SETTING,
        BAD_RECORDS_SETTING,
        PAYLOAD_RETENTION_SETTING,
    ).to_dict()

    client_config_errors = (JaggaerConfigError, SecretKeyError)
    stopping_errors = (JaggaerError, RecordError)
    outcomes_title = "JAGGAER writes"
    undelivered_log_text = "%d record(s) were refused by JAGGAER; they are redone by the next run"
    streams_setting = "streams"
    missing_parent_note = " (their supplier was missing)"
    holding_log_text = ("Holding %d '%s' record(s) until the end of the input: the supplier stream(s) %s have not "
                        "started yet")
    parent_first_log_text = "Writing %d pending '%s' record(s) first: '%s' names their suppliers"

    def connect(self) -> JaggaerClient:
        return client_from_config(self.config)

    def client_summary(self) -> dict:
        return {"api_requests": self.client.requests_sent, "rate_limited": self.client.rate_limited,
                "tokens_renewed": self.client.tokens_renewed}

    @cached_property
    def writer(self) -> RecordWriter:
        try:
            routes = parse_routes(self.config)
        except RecordError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        return RecordWriter(self.client, routes)

    @cached_property
    def batch_size(self) -> int:
        size = int(self.config.get("batch_size") or 100)
        if size < 1:
            raise ConfigValidationError(f"batch_size must be at least 1, not {size}", errors=["batch_size"])
        return size

    # What JAGGAER's writing differs in

    def parent_streams(self, stream: str, planned: list) -> list[str]:
        """Purchase orders name their supplier: the supplier streams are written before them."""
        if self.writer.route(stream).kind is SUPPLIER:
            return []
        return self.writer.supplier_streams()

    def write_order(self, records_by_stream: Iterable[str]) -> list[str]:
        """Suppliers first."""
        return sorted(records_by_stream,
                      key=lambda s: 0 if s in self.writer.routes and self.writer.routes[s].kind is SUPPLIER else 1)

    def refused_for_missing_parent(self, error: str | None) -> bool:
        """A purchase order refused for a supplier JAGGAER did not have."""
        return waits_for_supplier(error)

    def redo_key_field(self, stream: str) -> str:
        return "externalId"


if __name__ == "__main__":
    TargetJaggaer.cli()
