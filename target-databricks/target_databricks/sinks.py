"""The load path of one stream: dedupe the batch, compare with the table, MERGE what is new or changed, audit all."""

from __future__ import annotations

import datetime as dt
import typing as t

import pyarrow as pa
from singer_sdk.sinks import BatchSink

from ml_connector_core.audit import AuditEntry
from ml_connector_core.audited_target import BOOKMARK_HINT
from ml_connector_core.bad_records import STOP, BadRecordsSink, SetAside
from target_databricks import plan as planning
from target_databricks.arrow import RecordValueError, arrow_schema, row_fingerprint, to_table, unfit_values
from target_databricks.delta import FINGERPRINT

if t.TYPE_CHECKING:
    from target_databricks.target import TargetDatabricks

LOADED_AT = "_mlc_loaded_at"


class BatchNotWritten(RuntimeError):
    """Writing a batch failed (after whatever retries the write path makes); the run stops, naming the stream."""


class DatabricksSink(BadRecordsSink, BatchSink):
    """One Delta table per stream, MERGEd on the stream's key properties. A record whose value does not fit its column
    is a bad record (``bad_records``): the run stops naming it, or it is set aside and the others are written."""

    #: Rows per batch (a commit and a checkpoint each) unless batch_size_rows says otherwise. On the Delta path the
    #: batch is what the process holds beyond its libraries: 5,000 rows keep a full load of any size under 250 MB at
    #: no cost in throughput (benchmarks/delta_incremental.py); a warehouse pays a statement's latency per batch, so it
    #: takes larger ones.
    DELTA_BATCH_ROWS = 5000
    WAREHOUSE_BATCH_ROWS = 20000

    def __init__(self, target: TargetDatabricks, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        # singer-sdk's max_size falls back on MAX_SIZE_DEFAULT; it depends on the load method here.
        self.MAX_SIZE_DEFAULT = (self.DELTA_BATCH_ROWS if target.config["load_method"] == "delta"
                                 else self.WAREHOUSE_BATCH_ROWS)
        self.databricks = target
        # A stream without keys is MERGEd on the content itself: a re-sent identical record never becomes a second row.
        self.merge_keys = list(self.key_properties) or [FINGERPRINT]
        if not self.key_properties:
            self.logger.warning("stream '%s' has no key properties: rows are deduplicated on their whole content",
                                stream_name)
        self.version_column = target.version_column(stream_name, schema)
        self.table_name = target.table_name(stream_name)
        self.location = target.writer.location(target.config["target_schema"], self.table_name)
        # A replay re-sends this schema without the SCHEMA message's bookmark properties: keep them inside it.
        remembered = {**schema, BOOKMARK_HINT: [self.version_column] if self.version_column else []}
        target.audit_run.remember_schema(stream_name, remembered, list(self.key_properties))

    def _parse_timestamps_in_record(self, record: dict, schema: dict, treatment) -> None:
        """Timestamps stay ISO text: the Arrow conversion casts them in bulk (and fails loudly on a bad one)."""

    @property
    def _arrow_schema(self) -> pa.Schema:
        columns = arrow_schema(self.schema["properties"], decimal_scale=int(self.config["decimal_scale"]))
        return columns.append(pa.field(FINGERPRINT, pa.string())).append(pa.field(LOADED_AT, pa.timestamp("us", tz="UTC")))

    def process_batch(self, context: dict) -> None:
        records = context["records"]
        if not records:
            return
        keys = self.merge_keys
        schema = self._arrow_schema
        loaded_at = dt.datetime.now(dt.timezone.utc)

        def typed_rows(records: list[dict]) -> pa.Table:
            added = {FINGERPRINT: [row_fingerprint(r) for r in records], LOADED_AT: [loaded_at] * len(records)}
            return to_table(records, schema, stream=self.stream_name, extra=added)

        try:
            typed = typed_rows(records)
        except RecordValueError as exc:
            records = self._without_unfit_records(records, context.get("record_numbers"), schema, exc)
            if not records:
                return
            typed = typed_rows(records)
        key_values = list(zip(*(typed.column(k).to_pylist() for k in keys)))
        versions = typed.column(self.version_column).to_pylist() if self.version_column else [None] * len(records)
        fingerprints = typed.column(FINGERPRINT).to_pylist()
        candidates = [
            planning.PlannedRecord(record, key, version, fp, row)
            for row, (record, key, version, fp) in enumerate(zip(records, key_values, versions, fingerprints))
        ]
        plan = planning.latest_per_key(candidates)
        error = None
        try:
            self.databricks.writer.prepare(self.location, typed.schema)
            stored = self.databricks.writer.stored(
                self.location,
                typed.select(keys).take([p.row for p in plan.latest]),
                typed.schema.field(self.version_column) if self.version_column else None,
            )
            planning.classify(plan, stored)
            to_write = plan.to_write
            if to_write:
                rows = typed.take([p.row for p in to_write])
                if stored:
                    self.databricks.writer.merge(self.location, rows, keys, self.version_column)
                else:
                    # No key of this batch is in the table yet: an append writes the same rows as a MERGE would,
                    # without MERGE's join over the whole table (a large initial load's time and memory).
                    self.databricks.writer.append(self.location, rows, keys, self.version_column)
        except Exception as exc:  # the batch is audited as failed, then the run stops: state does not advance
            error = f"{type(exc).__name__}: {exc}"
            raise BatchNotWritten(f"stream '{self.stream_name}': the batch of {len(records)} records for "
                                  f"{self.location} was not written: {error}") from exc
        finally:
            self._audit(plan, error)
        counts = plan.counts()
        self.databricks.note_loaded(self.stream_name, self.location, counts)
        self.logger.info("%s: %s", self.location, ", ".join(f"{n} {op}" for op, n in sorted(counts.items())))

    def _without_unfit_records(self, records: list[dict], numbers: list[int] | None, schema: pa.Schema,
                               error: RecordValueError) -> list[dict]:
        """The batch without its records whose values do not fit their columns, which are bad records: set aside,
        or (``bad_records: stop``) the run stops, the rest of the batch audited as not written so that a replay
        after the fix delivers the whole batch."""
        unfit = unfit_values(records, pa.schema([f for f in schema if f.name not in (FINGERPRINT, LOADED_AT)]))
        if not unfit:  # no single value is to blame: the batch fails as a whole
            self._audit_unwritten(records, str(error))
            raise error
        numbers = numbers if numbers and len(numbers) == len(records) else [None] * len(records)
        bad = [(records[i], numbers[i], self.bad(reason, field, records[i])) for i, (field, reason) in sorted(unfit.items())]
        if self.bad_records_target.bad_records_mode == STOP:
            first = SetAside(self.stream_name, *bad[0]).message()
            self._audit_unwritten([r for i, r in enumerate(records) if i not in unfit],
                                  f"not written: the batch stopped at a bad record, {first}")
        self.set_aside(bad, destination=self.location)
        kept = [i for i in range(len(records)) if i not in unfit]
        return [records[i] for i in kept]

    def _audit_unwritten(self, records: list[dict], error: str) -> None:
        self._record([
            AuditEntry(
                stream=self.stream_name,
                key={k: record.get(k) for k in self.merge_keys},
                version=None if not self.version_column else str(record.get(self.version_column)),
                operation=planning.INSERT,
                destination=self.location,
                outcome="failed",
                error=error,
                payload=record,
            )
            for record in records
        ])

    def _audit(self, plan: planning.BatchPlan, error: str | None) -> None:
        entries = []
        for planned in [*plan.latest, *plan.superseded]:
            written = planned.operation in (planning.INSERT, planning.UPDATE)
            entries.append(
                AuditEntry(
                    stream=self.stream_name,
                    key=dict(zip(self.merge_keys, planned.key)),
                    version=None if planned.version is None else str(planned.version),
                    operation=planned.operation,
                    destination=self.location,
                    outcome="failed" if (error and written) else "succeeded",
                    attempts=1,
                    error=error if written else planned.note,
                    payload=planned.record,
                    # A record re-read unchanged wrote nothing: the entry that wrote it holds the same record.
                    keep_payload=planned.operation != planning.UNCHANGED,
                )
            )
        self._record(entries)

    def _record(self, entries: list[AuditEntry]) -> None:
        """Into the audit trail, and into the run's closing line ("Writes: 2401 insert, ...")."""
        self.databricks.audit_run.record(entries)
        self.databricks.count(entries)
