"""Deciding, per record of a batch, what the load does with it: pure, so that it is testable without a table.

Singer delivers at least once and a rerun re-sends, so a batch may repeat what the table already holds, hold several
versions of one key, or carry an older version than the table's. Only new and changed records are written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

INSERT, UPDATE, UNCHANGED, SKIPPED_DUPLICATE = "insert", "update", "unchanged", "skipped_duplicate"


@dataclass
class PlannedRecord:
    record: dict
    key: tuple
    version: Any
    fingerprint: str
    row: int = 0  # position in the batch's Arrow table
    operation: str = INSERT
    note: str | None = None


@dataclass
class BatchPlan:
    latest: list[PlannedRecord] = field(default_factory=list)
    superseded: list[PlannedRecord] = field(default_factory=list)

    @property
    def to_write(self) -> list[PlannedRecord]:
        return [p for p in self.latest if p.operation in (INSERT, UPDATE)]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for planned in [*self.latest, *self.superseded]:
            counts[planned.operation] = counts.get(planned.operation, 0) + 1
        return counts


def latest_per_key(planned: Sequence[PlannedRecord]) -> BatchPlan:
    """One record per key: the highest version, and among equal versions the last to arrive."""
    winners: dict[tuple, PlannedRecord] = {}
    plan = BatchPlan()
    for candidate in planned:
        current = winners.get(candidate.key)
        if current is None:
            winners[candidate.key] = candidate
            continue
        if _older(candidate.version, current.version):
            candidate.operation, candidate.note = SKIPPED_DUPLICATE, "a newer version of this key is in the same batch"
            plan.superseded.append(candidate)
        else:
            current.operation, current.note = SKIPPED_DUPLICATE, "superseded by a later version in the same batch"
            plan.superseded.append(current)
            winners[candidate.key] = candidate
    plan.latest = list(winners.values())
    return plan


def classify(plan: BatchPlan, stored: Mapping[tuple, tuple[str, Any]]) -> BatchPlan:
    """Compare each latest record with what the table holds for its key: (fingerprint, version)."""
    for planned in plan.latest:
        found = stored.get(planned.key)
        if found is None:
            planned.operation = INSERT
            continue
        stored_fingerprint, stored_version = found
        if stored_fingerprint == planned.fingerprint:
            planned.operation = UNCHANGED
        elif _older(planned.version, stored_version):
            planned.operation, planned.note = SKIPPED_DUPLICATE, f"older than the stored version {stored_version}"
        else:
            planned.operation = UPDATE
    return plan


def _older(version: Any, than: Any) -> bool:
    if version is None or than is None:
        return False
    return version < than
