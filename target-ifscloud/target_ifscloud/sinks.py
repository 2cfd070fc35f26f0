"""One incoming stream written record by record into its IFS entity set, each record audited as soon as it is done."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import RecordSink

from ml_connector_core.bad_records import BadRecordsSink

if t.TYPE_CHECKING:
    from target_ifscloud.target import TargetIfsCloud


class IfsWriteSink(BadRecordsSink, RecordSink):
    # A record that breaks its schema is still written: each value is checked against the IFS property it goes to, and
    # one IFS cannot take fails that record alone, in the audit trail (a missing key is a bad record, see bad_records).
    fail_on_record_validation_exception = False

    def __init__(self, target: TargetIfsCloud, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.ifs = target
        self.plan = None
        if stream_name not in (target.config.get("streams") or {}):
            # Taps send the SCHEMA of every stream and stream maps pass on that of a stream they drop (`stream:
            # __NULL__`): not routing it is a flow's deliberate choice, so no warning. A record of it is still never
            # dropped quietly: process_record stops the run naming the stream and the setting.
            target.logger.debug("stream '%s' is not in the streams setting: nothing to write unless a record of it "
                                "arrives, which stops the run", stream_name)
            return
        # Configuration problems surface here, at SCHEMA time, before any record of the stream is written.
        self.plan = target.plan_for(stream_name, list(self.key_properties or []), list(schema.get("properties") or {}))
        target.audit_run.remember_schema(stream_name, schema, list(self.key_properties or []))

    def process_record(self, record: dict, context: dict) -> None:
        if self.plan is None:
            self.ifs.plan_for(self.stream_name, [], [])  # raises the error naming the stream and the setting
        self.ifs.write(self.plan, record)
