"""What every ml-connector Singer target does around its sinks: one audit run per invocation, the streams' bookmark
properties (the order of record versions), earlier failed work redone before anything new, the outcomes counted,
one closing line saying what was written, an exit status that tells a scheduler when records were not delivered, and
(``CheckpointingTarget``) a STATE after each durably written batch.

A mixin placed before singer-sdk's ``Target`` in the bases; of singer-sdk it knows only how a configuration is
checked (:class:`~ml_connector_core.config_validation.SettingsNamedInErrors`). Records a target cannot write
(``bad_records``) are handled by ``ml_connector_core.bad_records``, under it.

Exit statuses of every ml-connector target:

- 0: every record of the input was delivered (or already there).
- 1: stopped (a crash, a service that cannot be reached, a stopping error): the STATE of the unfinished batch was not
  emitted, so the next run reads it again; failed records are in the audit trail. Also a configuration error, one line
  per wrong setting naming it and its variable (:class:`~ml_connector_core.config_validation.SettingsNamedInErrors`).
- 2: usage error (click's own: an unknown option).
- 3 (``EXIT_UNDELIVERED``): the whole input was read and the STATE of everything written was emitted, but some records
  could not be delivered: they are failed in the audit trail (``mlc-audit failures --run <run>``), redone at the start
  of the next run or by ``mlc-audit replay``. Nothing is lost and nothing is re-sent, but the run did not succeed.

An input that ended before the tap finished, or no input at all, is status 1 too (``run_outcome``). The run's status
in the audit trail says the same: succeeded, partial (records not delivered, or the input ended early), failed.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

import msgspec
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.singerlib.encoding.simple import SimpleSingerReader

from ml_connector_core.audit import AuditEntry, AuditRun, AuditTrail, StoredEntry
from ml_connector_core.bad_records import BadRecordsTarget, is_bad_record
from ml_connector_core.checkpoints import CheckpointingTarget
from ml_connector_core.config_validation import SettingsNamedInErrors
from ml_connector_core.meltano_runs import MELTANO_RUN_ID_ENV, pipeline_of_this_process
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE, InputWatch, RunOutcome, run_outcome

#: Where a remembered schema keeps the SCHEMA message's bookmark properties, which a replay cannot send otherwise.
BOOKMARK_HINT = "x-bookmark-properties"
#: The exit status of a run that read all of its input but could not deliver some records (see the module's text).
EXIT_UNDELIVERED = 3
PAYLOAD_RETENTION = "audit_payload_retention_days"
PAYLOAD_RETENTION_SETTING = th.Property(
    PAYLOAD_RETENTION, th.IntegerType(minimum=0),
    description="How many days the audit trail keeps what was sent (payload) and the record as received for the "
                "entries of this flow that did not fail; older ones are removed at the end of each run, 0 removes "
                "them at once. The entries stay (key, version, operation, outcome, destination, when), and failed "
                "entries keep theirs until a replay delivers them. Empty (default): kept for good. target-teams "
                "compares a new version of a record with the last card sent for it: once that card is removed, the "
                "new version gets a card even when nothing it shows changed.",
)


class SingerInputReader(MsgSpecReader):
    """singer-sdk's msgspec reader (numbers with a fraction or exponent as exact Decimals, as the SDK's own reader
    gives them): decoding took 8% of a million-row load with the standard library's json. A line msgspec refuses
    (NaN and Infinity, which Python's json takes) is read by the SDK's own reader, so that it meets the same checks as
    before: the record validator names the field, an unparsable line is refused as before."""

    _decoder = msgspec.json.Decoder(float_hook=Decimal)

    def deserialize_json(self, line: str) -> dict:
        try:
            return self._decoder.decode(line)
        except msgspec.DecodeError:
            return SimpleSingerReader.deserialize_json(self, line)


class AuditedTarget(SettingsNamedInErrors, InputWatch, BadRecordsTarget, CheckpointingTarget):
    message_reader_class = SingerInputReader
    #: Start of the closing log line counting the outcomes, e.g. "Jira issues".
    outcomes_title = "Writes"
    #: The ERROR logged when records could not be delivered (%d: how many).
    undelivered_log_text = "%d record(s) could not be delivered; they are redone at the start of the next run"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.bookmark_properties: dict[str, list[str]] = {}
        # This run's entries by operation, and "failed" for each failed attempt (some may be delivered later).
        self.outcomes: Counter[str] = Counter()
        # Failed redos of earlier failures that left no entry of this run (the earlier entry stays failed).
        self.unrecorded_failures = 0
        super().__init__(*args, **kwargs)

    @cached_property
    def audit_trail(self) -> AuditTrail:
        return AuditTrail(self.config.get("audit_url"))

    @cached_property
    def audit_run(self) -> AuditRun:
        # `MELTANO_RUN_ID=<uuid> meltano run ...` makes Meltano use that id and pass it on to every plugin (Meltano
        # 4.4 passes nothing when it makes up the id itself, nor for `--run-id`): the audit run then has the same id,
        # suffixed -2, -3 ... for further targets of that Meltano run.
        meltano_run_id = (os.environ.get(MELTANO_RUN_ID_ENV) or "").strip() or None
        # The pipeline run this one is part of, so that a tap's failure reaches the audit run (see meltano_runs).
        pipeline, pipeline_lookup = pipeline_of_this_process(os.environ)
        return self.audit_trail.start_run(flow=self.config["flow"], plugin=self.name, preferred_run_id=meltano_run_id,
                                          pipeline=pipeline, pipeline_lookup=pipeline_lookup)

    def _process_schema_message(self, message_dict: dict) -> None:
        # Sinks are not told the stream's bookmark property; it is the natural order of record versions.
        self.bookmark_properties[message_dict["stream"]] = (
            message_dict.get("bookmark_properties") or message_dict["schema"].get(BOOKMARK_HINT) or []
        )
        super()._process_schema_message(message_dict)

    def listen(self, file_input=None) -> None:
        self.max_parallelism = 1  # one audit writer, and batches land in the order they were read
        self.audit_run  # opened before any input: from now on its heartbeat says this process is alive
        try:
            self.redo_failed_work()
            super().listen(file_input)
        except BaseException as exc:
            self.audit_run.finish("failed", self.audit_summary(), reason=f"stopped: {type(exc).__name__}: {exc}")
            raise
        outcome = self.run_outcome()
        self.audit_run.finish(outcome.status, self.audit_summary(), reason=outcome.reason)
        self.apply_payload_retention()
        self.report_outcomes(outcome)

    def apply_payload_retention(self) -> None:
        """Remove the payloads of this flow's entries older than ``audit_payload_retention_days`` (not failed ones)."""
        days = self.config.get(PAYLOAD_RETENTION)
        if days is None or days == "":
            return
        emptied = self.audit_trail.prune_documents(self.config["flow"], timedelta(days=int(days)))
        if emptied:
            self.logger.info("Audit trail: payloads older than %s day(s) removed from %d block(s) or row(s) of flow "
                             "%s (%s)", days, emptied, self.config["flow"], PAYLOAD_RETENTION)

    def count(self, entries: Iterable[AuditEntry]) -> None:
        for entry in entries:
            self.outcomes["failed" if entry.outcome == "failed" else str(entry.operation)] += 1

    def undelivered(self) -> int:
        """Records this run could not deliver, new or redone: its entries still failed at the end (a record refused
        at first and delivered later in the run, e.g. once its parent arrived, is marked replayed by then)."""
        if "audit_run" not in self.__dict__:
            return self.unrecorded_failures
        return self.audit_trail.failed_count(self.audit_run.run_id) + self.unrecorded_failures

    def report_outcomes(self, outcome: RunOutcome) -> None:
        """One line with what this run wrote; when records were not delivered, one ERROR saying where to look, then
        exit status ``EXIT_UNDELIVERED`` (the STATE of what was delivered has been emitted by then); when the input
        ended early (or there was none), one ERROR saying so, then exit status 1."""
        run_id = self.audit_run.run_id
        undelivered = self.undelivered()
        counts = [f"{n} {k}" for k, n in sorted(self.outcomes.items()) if n and k != "failed"]
        if undelivered:
            counts.append(f"{undelivered} not delivered")
        if self.outcomes["failed"] > undelivered:
            counts.append(f"{self.outcomes['failed'] - undelivered} refused at first and delivered later in the run")
        self.logger.info("%s: %s (audit run %s)", self.outcomes_title, ", ".join(counts) or "nothing", run_id)
        if outcome.exit_status not in (0, EXIT_UNDELIVERED):
            self.logger.error("Run %s is %s: %s. Exit status %d; the next run reads on from the last STATE emitted",
                              run_id, outcome.status, outcome.reason, outcome.exit_status)
            sys.exit(outcome.exit_status)
        if undelivered:
            self.logger.error(self.undelivered_log_text + " (or now: mlc-audit replay --run %s); what failed and why: "
                              "mlc-audit failures --run %s. Exit status %d: the input was read to the end and the "
                              "STATE of what was delivered emitted", undelivered, run_id, run_id, EXIT_UNDELIVERED)
            sys.exit(EXIT_UNDELIVERED)

    def redo_failed_work(self) -> None:
        """What earlier runs left failed and must be done before this run reports anything new."""

    def open_failures(self, *, with_source_only: bool = True) -> dict[tuple[str, str], list[StoredEntry]]:
        """This flow's failures no replay has delivered yet, by stream and record key, oldest first (the latest last).
        ``with_source_only`` leaves out entries without the record as received, which cannot be redone from it. Bad
        records set aside are left out: the same record would fail again (see ``bad_records``)."""
        failures_by_record: dict[tuple[str, str], list[StoredEntry]] = {}
        for failed in self.audit_trail.failures():
            if failed.flow != self.config["flow"] or (with_source_only and failed.source is None):
                continue
            if is_bad_record(failed.error):
                continue
            failures_by_record.setdefault((failed.stream, failed.record_key), []).append(failed)
        return failures_by_record

    def written_since(self, failed: StoredEntry, *, by_same_flow_only: bool = False) -> bool:
        """A later entry wrote the failed record's key (in any flow with the stream's name, or only in its own)."""
        return any(entry.id > failed.id and (not by_same_flow_only or entry.flow == failed.flow)
                   for entry in self.audit_trail.entries(stream=failed.stream, key=failed.key, outcome="succeeded"))

    def mark_replayed(self, failures: Iterable[StoredEntry]) -> None:
        """The failures are done by this run."""
        self.audit_trail.mark_replayed([f.id for f in failures], self.audit_run.run_id)

    def run_outcome(self) -> RunOutcome:
        """Status, reason and exit status of a run that read its input to the end (see ``run_outcome``)."""
        delivered = sum(n for outcome, n in self.outcomes.items() if outcome != "failed")
        return run_outcome(self.input_seen, delivered, self.undelivered(), self.audit_run.run_id,
                           expect_closing_state=self.config.get(EXPECT_CLOSING_STATE, True),
                           undelivered_exit_status=EXIT_UNDELIVERED)

    def audit_summary(self) -> dict:
        return dict(self.outcomes)
