"""What every ml-connector Singer target does around its sinks: one audit run per invocation, the streams' bookmark
properties (the order of record versions), and earlier failed work redone before anything new.

A mixin placed before singer-sdk's ``Target`` in the bases; it imports nothing of singer-sdk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from ml_connector_core.audit import AuditRun, AuditTrail, StoredEntry

#: Where a remembered schema keeps the SCHEMA message's bookmark properties, which a replay cannot send otherwise.
BOOKMARK_HINT = "x-bookmark-properties"
#: The run id Meltano passes to its plugins, when it was given one (`MELTANO_RUN_ID=... meltano run`).
MELTANO_RUN_ID_ENV = "MELTANO_RUN_ID"


class AuditedTarget:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.bookmark_properties: dict[str, list[str]] = {}
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
        return self.audit_trail.start_run(flow=self.config["flow"], plugin=self.name, preferred_run_id=meltano_run_id)

    def _process_schema_message(self, message_dict: dict) -> None:
        # Sinks are not told the stream's bookmark property; it is the natural order of record versions.
        self.bookmark_properties[message_dict["stream"]] = (
            message_dict.get("bookmark_properties") or message_dict["schema"].get(BOOKMARK_HINT) or []
        )
        super()._process_schema_message(message_dict)

    def listen(self, file_input=None) -> None:
        self.max_parallelism = 1  # one audit writer, and batches land in the order they were read
        try:
            self.redo_failed_work()
            super().listen(file_input)
        except BaseException:
            self.audit_run.finish("failed", self.audit_summary())
            raise
        self.audit_run.finish(self.audit_status(), self.audit_summary())

    def redo_failed_work(self) -> None:
        """What earlier runs left failed and must be done before this run reports anything new."""

    def open_failures(self, *, with_source_only: bool = True) -> dict[tuple[str, str], list[StoredEntry]]:
        """This flow's failures no replay has delivered yet, by stream and record key, oldest first (the latest last).
        ``with_source_only`` leaves out entries without the record as received, which cannot be redone from it."""
        failures_by_record: dict[tuple[str, str], list[StoredEntry]] = {}
        for failed in self.audit_trail.failures():
            if failed.flow != self.config["flow"] or (with_source_only and failed.source is None):
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

    def audit_status(self) -> str:
        return "succeeded"

    def audit_summary(self) -> dict:
        return {}
