"""One stream of mapped records → JAGGAER suppliers or purchase orders, a batch at a time, suppliers first."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import BatchSink

from ml_connector_core.bad_records import BadRecordsSink

if t.TYPE_CHECKING:
    from target_jaggaer.target import TargetJaggaer


class JaggaerSink(BadRecordsSink, BatchSink):
    """Collects up to ``batch_size`` records, then has the target write them (suppliers pending in other streams
    first) and audit every one.

    The SDK emits the STATE covering a batch only after every sink is drained, so the bookmark never runs ahead of
    what JAGGAER has; what JAGGAER refused is in the audit trail and is redone by the next run.
    """

    MAX_SIZE_DEFAULT = 100

    def __init__(self, target: TargetJaggaer, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.jaggaer_target = target
        target.audit_run.remember_schema(stream_name, schema, list(self.key_properties or ["externalId"]))

    @property
    def max_size(self) -> int:
        return self.jaggaer_target.batch_size

    def process_batch(self, context: dict) -> None:
        records = context.get("records") or []
        if records:
            self.jaggaer_target.write(self.stream_name, records)
