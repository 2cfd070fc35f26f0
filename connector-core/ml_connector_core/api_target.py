"""What the targets writing through a service's API client (Salesforce, JAGGAER, Jira) share beyond the audit run:
the client built once from the settings, the errors that stop a run, failed work of earlier runs redone a stream at
a time, and (``ParentsFirstTarget``) child batches held until their parent streams started.

Mixins placed before singer-sdk's ``Target`` in the bases. Each target says what differs through the hooks and class
attributes below: which client, which errors stop the run, the order of its streams, the key its entries carry, the
texts of its log lines.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.audit import AuditEntry, StoredEntry
from ml_connector_core.audited_target import AuditedTarget


class ApiTarget(AuditedTarget):
    #: Errors of building the client from the settings, reported as configuration errors.
    client_config_errors: tuple[type[BaseException], ...] = ()
    #: Errors that stop the run with exit code 1 (the unfinished batch's STATE not emitted).
    stopping_errors: tuple[type[BaseException], ...] = ()
    undelivered_log_text = "%d record(s) were refused; they are redone at the start of the next run"
    #: The setting a stream must be in for its failed records to be redone (named in the warning when it is not).
    streams_setting = "streams"
    #: Logged after "Redoing N record(s) failed in earlier runs" for records refused for a missing parent.
    missing_parent_note = " (their parents were missing)"
    #: Whether the redo says how many records it redoes.
    announce_redo = True

    # The client

    def connect(self) -> Any:
        """The service's client, from the settings."""
        raise NotImplementedError

    @cached_property
    def client(self) -> Any:
        try:
            return self.connect()
        except self.client_config_errors as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    def client_summary(self) -> dict:
        """What the client did this run, for the run's summary (only asked when the client was built)."""
        return {}

    def audit_summary(self) -> dict:
        summary = super().audit_summary()
        if "client" in self.__dict__:
            summary.update(self.client_summary())
        return summary

    def listen(self, file_input=None) -> None:
        try:
            super().listen(file_input)
        except self.stopping_errors as exc:
            self.logger.error("%s", exc)
            self.logger.error("Stopped: the STATE of the unfinished batch was not emitted, so nothing is lost; %d "
                              "record(s) are failed in the audit trail and redone first by the next run",
                              self.outcomes["failed"])
            sys.exit(1)

    # Failed work of earlier runs

    def knows_stream(self, stream: str) -> bool:
        """The stream is still in the settings, so its failed records can be written."""
        return True

    def refused_for_missing_parent(self, error: str | None) -> bool:
        """The service refused the record because a record it references did not exist (yet)."""
        return False

    def write_order(self, records_by_stream: Mapping[str, list]) -> list[str]:
        """The streams in the order their records are written (parents first)."""
        return list(records_by_stream)

    def redo_key_field(self, stream: str) -> str:
        """The field of an entry's key that tells which redone record it is."""
        raise NotImplementedError

    def write_records(self, stream: str, records: list[dict]) -> list[AuditEntry]:
        return self.writer.write(stream, records)

    def raise_if_stopped(self) -> None:
        """Raise the error that made the writer stop, if one did."""

    def redo_failed_work(self, *, waiting_for_parent: bool = False) -> None:
        """Records the service refused (or that were left undone) in earlier runs of this flow are written again from
        the record as received, parents first, unless a later run wrote them since. Those refused for a missing
        parent (``waiting_for_parent``) are redone at the end of the run instead of the start."""
        by_stream: dict[str, list[list[StoredEntry]]] = {}
        for (stream, _), failures in self.open_failures().items():
            newest = failures[-1]
            if newest.run_id == self.audit_run.run_id:
                continue
            if self.written_since(newest):
                self.mark_replayed(failures)
            elif self.refused_for_missing_parent(newest.error) != waiting_for_parent:
                continue
            elif not self.knows_stream(stream):
                self.logger.warning("Failed '%s' records in the audit trail are not redone: the stream is no longer "
                                    "in the %s setting", stream, self.streams_setting)
            else:
                by_stream.setdefault(stream, []).append(failures)
        if not by_stream:
            return
        if self.announce_redo:
            self.logger.info("Redoing %d record(s) failed in earlier runs%s", sum(len(g) for g in by_stream.values()),
                             self.missing_parent_note if waiting_for_parent else "")
        for stream in self.write_order({s: [g[-1].source for g in groups] for s, groups in by_stream.items()}):
            groups = by_stream[stream]
            key_field = self.redo_key_field(stream)
            entries = self.write_records(stream, [failures[-1].source for failures in groups])
            self.audit_run.record(entries)
            self.count(entries)
            done = {str(e.key.get(key_field)) for e in entries if e.outcome == "succeeded"}
            for failures in groups:
                if str(failures[-1].key.get(key_field)) in done:
                    self.mark_replayed(failures)
            self.raise_if_stopped()

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self.settle_failures()

    def settle_failures(self) -> None:
        """Failures whose record this run wrote after all (a later version from the input) are marked replayed."""
        for failures in self.open_failures().values():
            if self.written_since(failures[-1]):
                self.mark_replayed(failures)


class ParentsFirstTarget(ApiTarget):
    """Batches of a stream whose records reference records of other streams (its parents) are written after the
    parents' pending records; batches arriving before a parent stream started (taps order streams by name, not by
    reference) are held until the end of the input, and every STATE received after them waits with them. Records
    refused for a missing parent are redone at the end of the run, after the input that may have brought the parent.

    The writer has ``plan(stream, records)``, ``write(stream, planned)``, ``routes`` and ``stopped``.
    """

    #: INFO when a batch is held (%d records, %s stream, %s the parent streams not started or held themselves).
    holding_log_text = ("Holding %d '%s' record(s) until the end of the input: the streams they reference (%s) have not "
                        "started yet or are held themselves")
    #: INFO when a parent's pending records are written first (%d records, %s parent stream, %s this stream).
    parent_first_log_text = "Writing %d pending '%s' record(s) first: '%s' references them"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._writing: set[str] = set()
        # Held batches by stream, and whether the input has ended, after which nothing more can arrive to wait for.
        self._held: dict[str, list[dict]] = {}
        self._input_ended = False
        super().__init__(*args, **kwargs)

    def parent_streams(self, stream: str, planned: list) -> list[str]:
        """The streams whose records this stream's planned records reference."""
        raise NotImplementedError

    def knows_stream(self, stream: str) -> bool:
        return stream in self.writer.routes

    def write_records(self, stream: str, records: list[dict]) -> list[AuditEntry]:
        return self.writer.write(stream, self.writer.plan(stream, records))

    def raise_if_stopped(self) -> None:
        if self.writer.stopped is not None:
            raise self.writer.stopped

    def write(self, stream: str, records: list[dict]) -> None:
        """Write the parents' pending records first, then this batch; audit every record; stop the run when the
        writer stopped."""
        planned = self.writer.plan(stream, records)
        parents = self.parent_streams(stream, planned)
        if not self._input_ended:
            # A parent whose own batches are held has records not written yet either: holding is transitive (order
            # lines wait for orders that wait for their suppliers).
            parents_not_ready = [p for p in parents if p not in self._sinks_active or p in self._held]
            if parents_not_ready:
                self.logger.info(self.holding_log_text, len(records), stream, ", ".join(parents_not_ready))
                self._held.setdefault(stream, []).extend(records)
                return
        self._writing.add(stream)
        try:
            for parent in parents:
                sink = self._sinks_active.get(parent)
                if sink is not None and parent not in self._writing and sink.current_size:
                    self.logger.info(self.parent_first_log_text, sink.current_size, parent, stream)
                    self.drain_one(sink)
            entries = self.writer.write(stream, planned)
        finally:
            self._writing.discard(stream)
        self.audit_run.record(entries)
        self.count(entries)
        self.raise_if_stopped()

    def drain_all(self, *, is_endofpipe: bool = False) -> None:
        if is_endofpipe:
            self._input_ended = True
            held, self._held = self._held, {}
            for stream in self.write_order(held):
                self.write(stream, held[stream])
        super().drain_all(is_endofpipe=is_endofpipe)

    def holds_records(self, stream: str) -> bool:
        # The STATEs after a held batch wait with it (see ml_connector_core.checkpoints).
        return stream in self._held

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self.redo_failed_work(waiting_for_parent=True)
