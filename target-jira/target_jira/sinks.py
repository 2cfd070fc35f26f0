"""One stream of mapped IFS records → Jira issues, a batch at a time."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import BatchSink

from ml_connector_core.bad_records import BadRecordsSink

if t.TYPE_CHECKING:
    from target_jira.target import TargetJira


class JiraIssueSink(BadRecordsSink, BatchSink):
    """Collects up to 100 records (one label search covers them), then writes them and audits every one.

    The SDK emits the STATE that covers a batch only after ``process_batch`` returned, so the bookmark never runs ahead
    of what Jira has; what Jira refused is in the audit trail and is redone first on the next run.
    """

    MAX_SIZE_DEFAULT = 100

    def __init__(self, target: TargetJira, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.jira_target = target
        target.audit_run.remember_schema(stream_name, schema, list(self.key_properties or ["ifs_key"]))

    def process_batch(self, context: dict) -> None:
        records = context.get("records") or []
        if not records:
            return
        entries = self.jira_target.writer.write(self.stream_name, records)
        self.jira_target.audit_run.record(entries)
        self.jira_target.count(entries)
