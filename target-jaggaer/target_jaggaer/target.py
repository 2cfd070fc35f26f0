"""target-jaggaer: mapped IFS suppliers and purchase orders created or updated in JAGGAER by their IFS key
(externalId), suppliers before the purchase orders that name them, never a duplicate, every record audited."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from functools import cached_property

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.audit import AuditEntry
from ml_connector_core.audited_target import AuditedTarget
from ml_connector_core.jaggaer import (
    JaggaerClient,
    JaggaerConfigError,
    JaggaerError,
    client_from_config,
    connection_properties,
)
from ml_connector_core.secrets import SecretKeyError
from target_jaggaer.sinks import JaggaerSink
from target_jaggaer.writer import KINDS, SUPPLIER, RecordError, RecordWriter, parse_routes, waits_for_supplier

STREAM_ROUTE = th.ObjectType(
    th.Property("object", th.StringType, required=True, allowed_values=list(KINDS),
                description="The JAGGAER object the stream's records are: supplier or purchase_order."),
)


class TargetJaggaer(AuditedTarget, Target):
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
    ).to_dict()

    def __init__(self, *args, **kwargs) -> None:
        self.outcomes: Counter[str] = Counter()
        self._writing: set[str] = set()
        # Purchase-order batches that arrived before the supplier streams started (taps order streams by name), and
        # whether the input has ended, after which nothing more can arrive for them to wait for.
        self._held: dict[str, list[dict]] = {}
        self._input_ended = False
        super().__init__(*args, **kwargs)

    @cached_property
    def client(self) -> JaggaerClient:
        try:
            return client_from_config(self.config)
        except (JaggaerConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

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

    # Writing

    def parent_streams(self, stream: str) -> list[str]:
        """Purchase orders name their supplier: the supplier streams are written before them."""
        if self.writer.route(stream).kind is SUPPLIER:
            return []
        return self.writer.supplier_streams()

    def write(self, stream: str, records: list[dict]) -> None:
        """Write the suppliers still pending first, then this batch; audit every record; stop when JAGGAER cannot be
        written to."""
        planned = self.writer.plan(stream, records)
        parents = self.parent_streams(stream)
        if not self._input_ended:
            not_started = [p for p in parents if p not in self._sinks_active]
            if not_started:
                self.logger.info("Holding %d '%s' record(s) until the end of the input: the supplier stream(s) %s "
                                 "have not started yet", len(records), stream, ", ".join(not_started))
                self._held.setdefault(stream, []).extend(records)
                return
        self._writing.add(stream)
        try:
            for parent in parents:
                sink = self._sinks_active.get(parent)
                if sink is not None and parent not in self._writing and sink.current_size:
                    self.logger.info("Writing %d pending '%s' record(s) first: '%s' names their suppliers",
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
            for stream in self.suppliers_first(held):
                self.write(stream, held[stream])
        super().drain_all(is_endofpipe=is_endofpipe)

    def _write_state_message(self, state: dict) -> None:
        if self._held:
            # This STATE covers held records not written yet; the one after them (end of input at the latest) follows.
            return
        super()._write_state_message(state)

    def suppliers_first(self, streams: Iterable[str]) -> list[str]:
        return sorted(streams, key=lambda s: 0 if s in self.writer.routes and self.writer.routes[s].kind is SUPPLIER else 1)

    def count(self, entries: Iterable[AuditEntry]) -> None:
        for entry in entries:
            self.outcomes["failed" if entry.outcome == "failed" else str(entry.operation)] += 1

    def audit_status(self) -> str:
        return "failed" if self.outcomes["failed"] else "succeeded"

    def audit_summary(self) -> dict:
        summary = dict(self.outcomes)
        if "client" in self.__dict__:
            summary["api_requests"] = self.client.requests_sent
            summary["rate_limited"] = self.client.rate_limited
            summary["tokens_renewed"] = self.client.tokens_renewed
        return summary

    def listen(self, file_input=None) -> None:
        try:
            super().listen(file_input)
        except (JaggaerError, RecordError) as exc:
            self.logger.error("%s", exc)
            self.logger.error("Stopped: the STATE of the unfinished batch was not emitted, so nothing is lost; %d "
                              "record(s) are failed in the audit trail and redone first by the next run",
                              self.outcomes["failed"])
            sys.exit(1)
        self.logger.info("JAGGAER writes: %s", ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) or "none")
        if self.outcomes["failed"]:
            self.logger.error("%d record(s) were refused by JAGGAER; they are redone by the next run (see mlc-audit "
                              "failures)", self.outcomes["failed"])

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self.settle_failures()
        # Purchase orders refused for a supplier JAGGAER did not have are redone after this run's input, which may
        # have brought the supplier (the start-of-run redo comes before it).
        self.redo_failed_work(waiting_for_supplier=True)

    # Failed work of earlier runs

    def _open_failures(self) -> dict[tuple[str, str], list]:
        failures_by_record: dict[tuple[str, str], list] = {}
        for failed in self.audit_trail.failures():
            if failed.flow != self.config["flow"] or failed.source is None:
                continue
            failures_by_record.setdefault((failed.stream, failed.record_key), []).append(failed)
        return failures_by_record

    def _written_since(self, stream: str, newest_failure) -> bool:
        return any(e.id > newest_failure.id
                   for e in self.audit_trail.entries(stream=stream, key=newest_failure.key, outcome="succeeded"))

    def settle_failures(self) -> None:
        """Failures whose record this run wrote after all (a later version from the input) are marked replayed."""
        for (stream, _), failures in self._open_failures().items():
            if self._written_since(stream, failures[-1]):
                self.audit_trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)

    def redo_failed_work(self, *, waiting_for_supplier: bool = False) -> None:
        """Records JAGGAER refused (or that were not tried when it could not be reached) in earlier runs of this flow
        are written again from the record as received, suppliers first, unless a later run wrote them since.
        Purchase orders refused for an unknown supplier are redone at the end of the run instead of the start."""
        trail = self.audit_trail
        by_stream: dict[str, list[list]] = {}
        for (stream, _), failures in self._open_failures().items():
            newest = failures[-1]
            if newest.run_id == self.audit_run.run_id:
                continue
            if self._written_since(stream, newest):
                trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)
            elif waits_for_supplier(newest.error) != waiting_for_supplier:
                continue
            elif stream not in self.writer.routes:
                self.logger.warning("Failed '%s' records in the audit trail are not redone: the stream is no longer "
                                    "in the streams setting", stream)
            else:
                by_stream.setdefault(stream, []).append(failures)
        if not by_stream:
            return
        self.logger.info("Redoing %d record(s) failed in earlier runs%s", sum(len(g) for g in by_stream.values()),
                         " (their supplier was missing)" if waiting_for_supplier else "")
        for stream in self.suppliers_first(by_stream):
            groups = by_stream[stream]
            planned = self.writer.plan(stream, [failures[-1].source for failures in groups])
            entries = self.writer.write(stream, planned)
            self.audit_run.record(entries)
            self.count(entries)
            done = {str(e.key.get("externalId")) for e in entries if e.outcome == "succeeded"}
            for failures in groups:
                if str(failures[-1].key.get("externalId")) in done:
                    trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)
            if self.writer.stopped is not None:
                raise self.writer.stopped


if __name__ == "__main__":
    TargetJaggaer.cli()
