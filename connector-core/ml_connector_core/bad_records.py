"""Records a target cannot write: its key missing, a value not of the type its schema declares, a value that does not
fit where it goes (a number too large for its DECIMAL column). The ``bad_records`` setting of every ml-connector
target says what happens then:

- ``stop`` (the default): the run stops at the first one, naming it. The record is audited as failed first, so that
  ``mlc-audit replay`` delivers it once what made it bad is fixed; the STATE of the unfinished batch is not emitted,
  so the next run reads the records around it again.
- ``quarantine``: the record is audited as failed and set aside; every other record is written and the STATEs after it
  are emitted as they would be without it. The run ends with exit status 3 (records not delivered) and the bad ones
  wait in ``mlc-audit failures`` until a replay delivers them or a later run writes their key.

Either way the error names the stream and the record -- its key, or its number in the stream's input when the key is
missing -- then what is wrong and where, e.g.::

    record 2 of stream 'purchase_orders' (no key): missing key property OrderNo
    record 3 of stream 'purchase_orders' (key OrderNo='PO-3'): 'abc' is not of type 'number' at TotalNetAmount

A set-aside record is never redone by a target on its own (the same input would fail again the same way); it leaves
``mlc-audit failures`` when

- ``mlc-audit replay`` delivers it (after a fix on the target's side: its configuration, e.g. a stream map that
  supplies the key; a replay resends the record as received), or
- a later run writes its key: the source was fixed and sent the record again (a record without its key has no key to
  match; only a replay delivers it).

The same record met again while its earlier entry is still failed (a rerun, a tap's look-back window, a replay that
fails again) is not audited a second time: it still counts as not delivered.

Two mixins: ``BadRecordsTarget`` (under ``AuditedTarget``: numbering, auditing, stop or set aside, settling) and
``BadRecordsSink`` (before singer-sdk's sink class: the checks). A sink that finds bad values itself while writing a
batch (target-databricks' column types) hands them to ``set_aside``.
"""

from __future__ import annotations

import re
import typing as t
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from singer_sdk import typing as th
from singer_sdk.exceptions import FatalSyncError, InvalidJSONSchema, InvalidRecord, MissingKeyPropertiesError
from singer_sdk.helpers._typing import get_datelike_property_type

from ml_connector_core.audit import AuditEntry
from ml_connector_core.record_validation import CompiledSchemaValidator, InvalidField, field_path

SETTING = "bad_records"
STOP, QUARANTINE = "stop", "quarantine"
#: The error of every set-aside record's audit entry begins with this: targets do not redo these on their own.
ERROR_PREFIX = "bad record: "
#: In the audit key of a record whose key is missing: its number in the stream's input, and the run that received it.
NUMBER_KEY, RUN_KEY = "_record", "_run"
#: How many entry ids the closing warning lists.
SHOWN_ENTRIES = 20

BAD_RECORDS_SETTING = th.Property(
    SETTING, th.StringType, default=STOP, allowed_values=[STOP, QUARANTINE],
    description="What to do with a record that cannot be written (its key missing, a value not of its schema's type, "
                "a value that does not fit its destination): stop (default) stops the run naming the stream, the "
                "record (its key, or its number in the stream when the key is missing), the field and the reason; "
                "quarantine sets it aside and writes the others. Either way the record is audited as failed, "
                "listed by mlc-audit failures and delivered by mlc-audit replay after the fix; with quarantine the "
                "run ends with exit status 3 after emitting the STATE of what was written.",
)


def is_bad_record(error: str | None) -> bool:
    """The audit entry's error says the record was set aside as bad (not refused by a service)."""
    return bool(error) and error.startswith(ERROR_PREFIX)


def render_key(key: Mapping[str, t.Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in key.items())


class BadRecord(Exception):
    """One record a sink cannot write: the reason, the field (None for the record as a whole), the record's key (None
    when it has none: missing, or a stream without key properties), the sink's stream and its key properties."""

    def __init__(self, reason: str, field: str | None = None, key: Mapping[str, t.Any] | None = None, *,
                 stream: str | None = None, key_properties: Sequence[str] = ()) -> None:
        super().__init__(f"{reason} at {field}" if field else reason)
        self.reason = reason
        self.field = field
        self.key = key
        self.stream = stream
        self.key_properties = list(key_properties)
        self.missing_key = False


def field_and_reason(exc: InvalidRecord) -> tuple[str | None, str]:
    if isinstance(exc, InvalidField):
        return exc.field, exc.reason
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "absolute_path") and hasattr(cause, "message"):  # jsonschema's error
        return field_path(list(cause.absolute_path)), cause.message
    return None, exc.error_message


_SDK_TIMESTAMP_ERROR = re.compile(r"Could not parse value '(?P<value>.*)' for field '(?P<field>[^']*)'")


@dataclass(frozen=True)
class SetAside:
    """A bad record with everything its audit entry and message need."""

    stream: str
    record: Mapping[str, t.Any]
    number: int | None
    bad: BadRecord
    destination: str | None = None

    def message(self) -> str:
        where = f"record {self.number:,} of stream '{self.stream}'" if self.number else f"stream '{self.stream}'"
        where += f" (key {render_key(self.bad.key)})" if self.bad.key else " (no key)"
        return f"{where}: {self.bad}"


class BadRecordStop(FatalSyncError):
    """``bad_records: stop`` and a bad record: the run stops (exit status 1), naming it."""

    def __init__(self, message: str, entry_ids: Sequence[int]) -> None:
        super().__init__(message)
        self.entry_ids = list(entry_ids)


class MissingKeyStop(MissingKeyPropertiesError, BadRecordStop):
    """The bad record that stopped the run has no key: singer-sdk's error for it, naming the stream and the record."""


class BadRecordsTarget:
    """Numbers each stream's records as they arrive, audits bad records, stops or sets them aside, and at the end of
    the input settles set-aside records whose key a later run wrote. A mixin under ``AuditedTarget``; it uses its
    ``audit_run``, ``audit_trail``, ``count`` and ``unrecorded_failures``."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self._records_received: dict[str, int] = {}
        #: The number, in its stream, of the record being processed (sinks keep it with the record in their batch).
        self.record_number: int | None = None
        # Per stream, this flow's set-aside records still failed: entry id by the record's text as stored (the same
        # record met again is not audited twice).
        self._open_bad_records: dict[str, dict[str, int]] = {}
        #: Bad records met by this run, and the ids of their audit entries (in the order met).
        self.records_set_aside = 0
        self.bad_record_entries: dict[int, None] = {}
        super().__init__(*args, **kwargs)

    @property
    def bad_records_mode(self) -> str:
        return self.config.get(SETTING) or STOP  # the setting's allowed values are checked with the config

    def _process_record_message(self, message_dict: dict) -> None:
        stream = message_dict.get("stream")
        self.record_number = self._records_received[stream] = self._records_received.get(stream, 0) + 1
        try:
            super()._process_record_message(message_dict)
        except BadRecord as bad:
            # Raised by a sink's checks, before the record joined its batch: the record as received is what a replay
            # sends again (through the target's stream maps, if it has any).
            self.set_aside([SetAside(bad.stream or stream, message_dict["record"], self.record_number, bad)])

    def set_aside(self, bad_records: Sequence[SetAside]) -> None:
        """Audit the bad records as failed (once each); then, with ``bad_records: stop``, stop the run naming them."""
        new = []
        for one in bad_records:
            if self._open_bad_records_of(one.stream).get(self._stored_text(one.record)) is None:
                new.append(one)
                self._open_bad_records_of(one.stream)[self._stored_text(one.record)] = 0  # this batch: not twice
        entries = [AuditEntry(stream=one.stream, key=self._audit_key(one), operation="insert", outcome="failed",
                              source=dict(one.record), destination=one.destination, error=ERROR_PREFIX + one.message())
                   for one in new]
        self.audit_run.record(entries)
        self.count(entries)
        for one in new:
            self._open_bad_records_of(one.stream)[self._stored_text(one.record)] = self._entry_id(one)
        self.records_set_aside += len(bad_records)
        self.bad_record_entries.update(dict.fromkeys(self._open_bad_records_of(one.stream)[self._stored_text(one.record)]
                                                     for one in bad_records))
        entry_ids, audited_now = [], {id(one) for one in new}
        for one in bad_records:
            entry_id = self._open_bad_records_of(one.stream)[self._stored_text(one.record)]
            entry_ids.append(entry_id)
            if id(one) not in audited_now:
                # Met before and still failed: not delivered by this run either, but audited once.
                self.unrecorded_failures += 1
                self.logger.warning("Bad record, already audit entry %d: %s", entry_id, one.message())
            elif self.bad_records_mode == QUARANTINE:
                self.logger.warning("Set aside (%s: %s) as audit entry %d: %s", SETTING, QUARANTINE, entry_id,
                                    one.message())
        if self.bad_records_mode == STOP:
            more = f" (and {len(bad_records) - 1} more bad record(s) in its batch)" if len(bad_records) > 1 else ""
            stop = MissingKeyStop if bad_records[0].bad.missing_key else BadRecordStop
            raise stop(bad_records[0].message() + more, entry_ids)

    def listen(self, file_input=None) -> None:
        try:
            super().listen(file_input)
        except BadRecordStop as stop:
            entries = " ".join(str(entry_id) for entry_id in stop.entry_ids)
            self.logger.error(
                "Stopped (%s: %s) at a bad record, named below: it is failed in the audit trail (mlc-audit show %d); "
                "the STATE of the unfinished batch was not emitted, so the next run reads it again. Fix the record "
                "at the source, or fix the target's configuration and replay it (mlc-audit replay --entry %s); %s: "
                "%s writes the other records and sets bad ones aside", SETTING, STOP, stop.entry_ids[0], entries,
                SETTING, QUARANTINE)
            raise stop.with_traceback(None) from None  # where in the code it stopped says nothing about the record
        self.settle_bad_records()
        if self.bad_record_entries:
            ids = list(self.bad_record_entries)
            shown = " ".join(map(str, ids[:SHOWN_ENTRIES])) + (" ..." if len(ids) > SHOWN_ENTRIES else "")
            self.logger.warning(
                "%d bad record(s) set aside (%s: %s), audit entries %s: not redone by later runs. mlc-audit show ID "
                "says why; after a fix in the target's configuration mlc-audit replay --entry ID ... delivers them; "
                "a record fixed at the source is settled when a later run writes its key",
                self.records_set_aside, SETTING, QUARANTINE, shown)
            # The closing line counts them among the records not delivered: say there that they wait for a fix,
            # unlike records a service refused, which the next run redoes.
            if self.undelivered() == self.records_set_aside:
                self.undelivered_log_text = f"%d bad record(s) set aside ({SETTING}: {QUARANTINE}) wait for a fix"
            else:
                self.undelivered_log_text = (
                    f"{type(self).undelivered_log_text.replace('%d', '%d undelivered')}, except the "
                    f"{self.records_set_aside} bad record(s) set aside ({SETTING}: {QUARANTINE}): they wait for a fix")

    def settle_bad_records(self) -> None:
        """Set-aside records of this flow whose key a later run wrote (the source sent it again, fixed) are done. A
        write in the same run does not count: the input may have held the bad version after the good one."""
        settled = []
        for failed in self.audit_trail.failures():
            if failed.flow != self.config["flow"] or not is_bad_record(failed.error) or RUN_KEY in failed.key:
                continue
            if any(entry.id > failed.id and entry.run_id != failed.run_id for entry in
                   self.audit_trail.entries(stream=failed.stream, key=failed.key, outcome="succeeded")):
                settled.append(failed.id)
        if settled:
            self.logger.info("%d bad record(s) set aside by earlier runs were written since (fixed at the source): "
                             "marked replayed", len(settled))
            self.audit_trail.mark_replayed(settled, self.audit_run.run_id)

    # The audit trail

    def _audit_key(self, one: SetAside) -> dict[str, t.Any]:
        if one.bad.key:
            return dict(one.bad.key)
        # No key to find it by: its number in the stream's input, and the run (numbers restart with every run).
        return {**{name: one.record.get(name) for name in one.bad.key_properties},
                NUMBER_KEY: one.number, RUN_KEY: self.audit_run.run_id}

    def _stored_text(self, record: Mapping[str, t.Any]) -> str:
        redactor = self.audit_trail.redactor
        redactor.refresh_secrets()
        return redactor.payload_json(dict(record))

    def _open_bad_records_of(self, stream: str) -> dict[str, int]:
        """This flow's set-aside records of the stream still failed: entry id by the record's text as stored."""
        known = self._open_bad_records.get(stream)
        if known is None:
            known = self._open_bad_records[stream] = {
                failed.source_json: failed.id for failed in self.audit_trail.failures(stream=stream)
                if failed.flow == self.config["flow"] and is_bad_record(failed.error) and failed.source_json
            }
        return known

    def _entry_id(self, one: SetAside) -> int:
        """The id of the entry this run just recorded for the bad record."""
        entries = self.audit_trail.entries(run_id=self.audit_run.run_id, stream=one.stream, key=self._audit_key(one),
                                           outcome="failed")
        return max(entry.id for entry in entries)


class BadRecordsSink:
    """The checks of a record before it joins its batch: the key present (not null), the record valid against the
    stream's schema, dates and timestamps readable. A bad record raises ``BadRecord``; the target stops or sets it
    aside. Placed before singer-sdk's sink class in the bases.

    A sink whose ``fail_on_record_validation_exception`` is False writes a record that breaks its schema anyway (its
    writer checks each value where it goes); it is logged, naming it.
    """

    def __init__(self, target, stream_name: str, schema: dict, key_properties) -> None:
        self.bad_records_target = target
        super().__init__(target, stream_name, schema, key_properties)
        properties = self.schema.get("properties") or {}
        self._property_names = frozenset(properties)
        self._datelike_properties = tuple(name for name, spec in properties.items()
                                          if isinstance(spec, dict) and get_datelike_property_type(spec))

    def get_validator(self) -> CompiledSchemaValidator | None:
        """The stream's schema compiled (``ml_connector_core.record_validation``), unless ``validate_records`` is off;
        formats checked only where the sink asks, as singer-sdk does."""
        if not self.validate_schema:
            return None
        try:
            return CompiledSchemaValidator(self.schema, validate_formats=self.validate_field_string_format)
        except InvalidJSONSchema as exc:
            raise InvalidJSONSchema(f"the schema of stream '{self.stream_name}' is {exc}") from None

    def key_of(self, record: Mapping[str, t.Any]) -> dict[str, t.Any] | None:
        """The record's key, or None when it has none (missing, or a stream without key properties)."""
        if not self.key_properties or any(record.get(name) is None for name in self.key_properties):
            return None
        return {name: record[name] for name in self.key_properties}

    def bad(self, reason: str, field: str | None, record: Mapping[str, t.Any]) -> BadRecord:
        return BadRecord(reason, field, self.key_of(record), stream=self.stream_name,
                         key_properties=self.key_properties)

    def check_key(self, record: Mapping[str, t.Any]) -> None:
        missing = [name for name in self.key_properties if record.get(name) is None]
        if missing:
            bad = self.bad(f"missing key propert{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}", None,
                           record)
            bad.missing_key = True
            raise bad

    def _validate_and_parse(self, record: dict) -> dict:
        self.check_key(record)
        if self._validator is not None:
            try:
                self._validator.validate(record)
            except InvalidRecord as exc:
                field, reason = field_and_reason(exc)
                if self.fail_on_record_validation_exception:
                    raise self.bad(reason, field, record) from None
                number = self.bad_records_target.record_number
                self.logger.warning("%s: breaks the stream's schema, written anyway (the writer checks each value)",
                                    SetAside(self.stream_name, record, number, self.bad(reason, field, record)).message())
        try:
            self._parse_timestamps_in_record(record=record, schema=self.schema, treatment=self.datetime_error_treatment)
        except ValueError as exc:
            match = _SDK_TIMESTAMP_ERROR.search(str(exc))
            if match is None:
                raise self.bad(str(exc), None, record) from None
            raise self.bad(f"{match['value']!r} is not a date or timestamp", match["field"], record) from None
        return record

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment) -> None:
        """singer-sdk's parsing of dates and timestamps, handed only the fields whose schema says date, time or
        date-time (it looks up the schema of every field of every record): the same values, errors and warnings. A
        record with a field its schema lacks goes to singer-sdk whole, which warns about that field."""
        if schema is not self.schema or not record.keys() <= self._property_names:
            super()._parse_timestamps_in_record(record=record, schema=schema, treatment=treatment)
            return
        datelike = {name: record[name] for name in self._datelike_properties if name in record}
        if datelike:
            super()._parse_timestamps_in_record(record=datelike, schema=schema, treatment=treatment)
            record.update(datelike)

    def _singer_validate_message(self, record: dict) -> None:
        self.check_key(record)  # again: preprocess_record may have changed it

    def process_record(self, record: dict, context: dict) -> None:
        super().process_record(record, context)
        # A batch sink keeps each record's number beside it, for bad values found when the batch is written.
        if "records" in context:
            context.setdefault("record_numbers", []).append(self.bad_records_target.record_number)

    def set_aside(self, bad: Sequence[tuple[Mapping[str, t.Any], int | None, BadRecord]],
                  destination: str | None = None) -> None:
        """Bad records the sink found while writing its batch: (record, number, problem) each."""
        self.bad_records_target.set_aside(
            [SetAside(self.stream_name, record, number, problem, destination) for record, number, problem in bad])
