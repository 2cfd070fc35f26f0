"""One stream of mapped records → Salesforce upserts, a batch at a time, parents first."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import BatchSink

from ml_connector_core.bad_records import BadRecordsSink
from ml_connector_core.salesforce import COLLECTION_LIMIT

if t.TYPE_CHECKING:
    from target_salesforce.target import TargetSalesforce


class SObjectSink(BadRecordsSink, BatchSink):
    """Collects up to ``batch_size`` records (one collections call), drains the parent streams, then upserts them and
    audits every one.

    The SDK emits the STATE covering a batch only after every sink is drained, so the bookmark never runs ahead of
    what Salesforce has; what Salesforce refused is in the audit trail and is redone first on the next run.
    """

    MAX_SIZE_DEFAULT = COLLECTION_LIMIT

    def __init__(self, target: TargetSalesforce, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.sf_target = target
        # A stream a stream map drops (`__NULL__`) still gets its SCHEMA here: only records of unknown streams are refused.
        route = target.writer.routes.get(stream_name)
        keys = list(self.key_properties or ([route.external_id_field] if route else []))
        target.audit_run.remember_schema(stream_name, schema, keys)

    @property
    def max_size(self) -> int:
        return self.sf_target.writer.batch_size

    def process_batch(self, context: dict) -> None:
        records = context.get("records") or []
        if records:
            self.sf_target.write(self.stream_name, records)
