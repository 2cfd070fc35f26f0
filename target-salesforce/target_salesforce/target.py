"""target-salesforce: mapped IFS records upserted into Salesforce objects by external id, parents before children,
never a duplicate."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.audit import AuditEntry
from ml_connector_core.audited_target import AuditedTarget
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


class TargetSalesforce(AuditedTarget, Target):
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
    ).to_dict()

    def __init__(self, *args, **kwargs) -> None:
        self.outcomes: Counter[str] = Counter()
        self._writing: set[str] = set()
        # Batches whose parent streams have not started yet (taps order streams by name, not by reference), and
        # whether the input has ended, after which nothing more can arrive for them to wait for.
        self._held: dict[str, list[dict]] = {}
        self._input_ended = False
        super().__init__(*args, **kwargs)

    @cached_property
    def client(self) -> SalesforceClient:
        try:
            return client_from_config(self.config)
        except (SalesforceConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

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

    # Writing

    def write(self, stream: str, records: list[dict]) -> None:
        """Drain the parents' pending records, upsert this batch, audit every record; stop the run at the limit."""
        planned = self.writer.plan(stream, records)
        if not self._input_ended:
            not_started = [p for p in self.writer.parent_streams(stream, planned) if p not in self._sinks_active]
            if not_started:
                self.logger.info("Holding %d '%s' record(s) until the end of the input: the streams they reference "
                                 "(%s) have not started yet", len(records), stream, ", ".join(not_started))
                self._held.setdefault(stream, []).extend(records)
                return
        self._writing.add(stream)
        try:
            for parent in self.writer.parent_streams(stream, planned):
                sink = self._sinks_active.get(parent)
                if sink is not None and parent not in self._writing and sink.current_size:
                    self.logger.info("Writing %d pending '%s' record(s) first: '%s' references them",
                                     sink.current_size, parent, stream)
                    self.drain_one(sink)
            entries = self.writer.write(stream, planned)
        finally:
            self._writing.discard(stream)
        self.audit_run.record(entries)
        self.count(entries)
        if self.writer.stopped is not None:
            raise self.writer.stopped

    def drain_all(self, *, is_endofpipe: bool = False) -> None:
        if is_endofpipe:
            self._input_ended = True
            held, self._held = self._held, {}
            for stream in parents_first(self.writer.routes, held):
                self.write(stream, held[stream])
        super().drain_all(is_endofpipe=is_endofpipe)

    def _write_state_message(self, state: dict) -> None:
        if self._held:
            # This STATE covers held records not written yet; the one after them (end of input at the latest) follows.
            return
        super()._write_state_message(state)

    def count(self, entries: Iterable[AuditEntry]) -> None:
        for entry in entries:
            self.outcomes["failed" if entry.outcome == "failed" else str(entry.operation)] += 1

    def audit_status(self) -> str:
        return "failed" if self.outcomes["failed"] else "succeeded"

    def audit_summary(self) -> dict:
        summary = dict(self.outcomes)
        if "client" in self.__dict__:
            summary["api_requests"] = self.client.requests_sent
            if self.client.usage is not None:
                summary["api_usage"] = f"{self.client.usage.used}/{self.client.usage.limit}"
        return summary

    def listen(self, file_input=None) -> None:
        try:
            super().listen(file_input)
        except (SalesforceLimitError, SalesforceAuthError, RecordError) as exc:
            self.logger.error("%s", exc)
            self.logger.error("Stopped: the STATE of the unfinished batch was not emitted, so nothing is lost; %d "
                              "record(s) are failed in the audit trail and redone first by the next run",
                              self.outcomes["failed"])
            sys.exit(1)
        self.logger.info("Salesforce upserts: %s", ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) or "none")
        if self.outcomes["failed"]:
            self.logger.error("%d record(s) were refused by Salesforce; they are redone at the start of the next run "
                              "(see mlc-audit failures)", self.outcomes["failed"])

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self.settle_failures()
        # Children refused because their parent was missing are redone after this run's input, which may have brought
        # the parent (the start-of-run redo comes before it).
        self.redo_failed_work(waiting_for_parent=True)

    # Failed work of earlier runs

    def _open_failures(self) -> dict[tuple[str, str], list]:
        latest_failed: dict[tuple[str, str], list] = {}
        for failed in self.audit_trail.failures():
            if failed.flow != self.config["flow"] or failed.source is None:
                continue
            latest_failed.setdefault((failed.stream, failed.record_key), []).append(failed)
        return latest_failed

    def _written_since(self, stream: str, newest_failure) -> bool:
        return any(e.id > newest_failure.id
                   for e in self.audit_trail.entries(stream=stream, key=newest_failure.key, outcome="succeeded"))

    def settle_failures(self) -> None:
        """Failures whose record this run wrote after all (a later version from the input) are marked replayed."""
        for (stream, _), failures in self._open_failures().items():
            if self._written_since(stream, failures[-1]):
                self.audit_trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)

    def redo_failed_work(self, *, waiting_for_parent: bool = False) -> None:
        """Records Salesforce refused (or the limit left undone) in earlier runs of this flow are upserted again,
        parents before children, unless a later run wrote them since. Those refused for a missing parent
        (``waiting_for_parent``) are redone at the end of the run instead of the start."""
        trail = self.audit_trail
        by_stream: dict[str, list[list]] = {}
        for (stream, _), failures in self._open_failures().items():
            newest = failures[-1]
            if newest.run_id == self.audit_run.run_id:
                continue
            if self._written_since(stream, newest):
                trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)
            elif waits_for_parent(newest.error) != waiting_for_parent:
                continue
            elif stream not in self.writer.routes:
                self.logger.warning("Failed '%s' records in the audit trail are not redone: the stream is no longer "
                                    "in the sobjects setting", stream)
            else:
                by_stream.setdefault(stream, []).append(failures)
        if not by_stream:
            return
        self.logger.info("Redoing %d record(s) failed in earlier runs%s", sum(len(g) for g in by_stream.values()),
                         " (their parents were missing)" if waiting_for_parent else "")
        for stream in parents_first(self.writer.routes, {s: [g[-1].source for g in groups] for s, groups in by_stream.items()}):
            groups = by_stream[stream]
            external_id_field = self.writer.routes[stream].external_id_field
            planned = self.writer.plan(stream, [failures[-1].source for failures in groups])
            entries = self.writer.write(stream, planned)
            self.audit_run.record(entries)
            self.count(entries)
            done = {str(e.key.get(external_id_field)) for e in entries if e.outcome == "succeeded"}
            for failures in groups:
                if str(failures[-1].key.get(external_id_field)) in done:
                    trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)
            if self.writer.stopped is not None:
                raise self.writer.stopped


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
