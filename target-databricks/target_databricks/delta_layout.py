"""Where keys are in a Delta table: each data file's key range from its statistics, the files that may hold a batch's
keys, and the order files are clustered in (key order, lexicographic over the key columns)."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from target_databricks.delta_files import CLUSTERED_PREFIX
from target_databricks.delta_log import LiveFiles
from target_databricks.deletion_vectors import DeletionVector


@dataclass(frozen=True)
class DataFile:
    """One data file of the table: its path (relative to the table), rows, bytes, and per key column the least and
    greatest value its statistics give (None where it has none: the file may then hold any value)."""

    path: str
    rows: int
    size: int
    low: tuple
    high: tuple
    vector: DeletionVector | None = None  # the rows of the file deleted (counted in ``rows``)

    @property
    def live_rows(self) -> int:
        return self.rows - (self.vector.cardinality if self.vector else 0)

    @property
    def clustered(self) -> bool:
        return self.path.rsplit("/", 1)[-1].startswith(CLUSTERED_PREFIX)


def data_files(table: DeltaTable, keys: Sequence[str], live: LiveFiles | None = None) -> list[DataFile]:
    """The table's data files; with ``live`` (the log replayed, for a table with deletion vectors), each with its
    deletion vector."""
    actions = pa.table(table.get_add_actions(flatten=True))
    names = set(actions.column_names)

    def column(name: str) -> list:
        return actions.column(name).to_pylist() if name in names else [None] * actions.num_rows

    lows = [column(f"min.{k}") for k in keys]
    highs = [column(f"max.{k}") for k in keys]
    rows, sizes = column("num_records"), column("size_bytes")
    return [
        DataFile(path, rows[i] or 0, sizes[i] or 0, tuple(_widened(c[i], -1) for c in lows),
                 tuple(_widened(c[i], +1) for c in highs), live.vector(path) if live is not None else None)
        for i, path in enumerate(actions.column("path").to_pylist())
    ]


def _widened(bound: Any, direction: int) -> Any:
    if isinstance(bound, float):  # delta-rs gives decimals' bounds as floating point: not exact, so not a bound
        return None
    # Delta statistics keep timestamps to the millisecond: a bound is only good to within one.
    if isinstance(bound, dt.datetime):
        return bound + direction * dt.timedelta(milliseconds=1)
    return bound


class KeyProbe:
    """A batch's keys, sorted on the first key column, asked which files may hold any of them."""

    def __init__(self, keys: pa.Table) -> None:
        self.names = keys.column_names
        self.keys = keys.take(pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in self.names]))
        self.lead = self.keys.column(0).to_pylist()

    def lead_range(self, low: Any, high: Any) -> tuple[int, int]:
        """Positions [start, end) of the keys whose first column lies within [low, high] (None: unbounded)."""
        try:
            start = 0 if low is None else bisect.bisect_left(self.lead, low)
            end = len(self.lead) if high is None else bisect.bisect_right(self.lead, high)
        except TypeError:  # a bound of another type than the keys: nothing can be ruled out
            return 0, len(self.lead)
        return start, max(start, end)

    def may_hold(self, file: DataFile) -> bool:
        start, end = self.lead_range(file.low[0], file.high[0])
        if start == end:
            return False
        if len(self.names) == 1:
            return True
        inside = None
        candidates = self.keys.slice(start, end - start)
        for name, low, high in zip(self.names[1:], file.low[1:], file.high[1:]):
            column = candidates.column(name)
            for bound, compare in ((low, pc.greater_equal), (high, pc.less_equal)):
                if bound is None:
                    continue
                try:
                    test = compare(column, pa.scalar(bound).cast(column.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    continue
                inside = test if inside is None else pc.and_(inside, test)
        return inside is None or pc.any(inside).as_py() is True

    def files_holding(self, files: Sequence[DataFile]) -> list[DataFile]:
        return [f for f in files if self.may_hold(f)]

    def row_group_may_hold(self, low: Any, high: Any) -> bool:
        start, end = self.lead_range(low, high)
        return start < end


def sort_keys(keys: Sequence[str]) -> list[tuple[str, str]]:
    return [(k, "ascending") for k in keys]


def bucket_numbers(keys: pa.Table, boundaries: pa.Table) -> pa.Array:
    """For each row of ``keys``, how many of the (sorted) ``boundaries`` are at or below it, comparing the key columns
    in order: the number of its bucket when the boundaries are the first keys of buckets 1, 2, ..."""
    if boundaries.num_rows == 0:
        return pa.array([0] * keys.num_rows, pa.int64())
    marker = "__mlc_row"
    both = pa.concat_tables([
        boundaries.select(keys.column_names).append_column(marker, pa.array([0] * boundaries.num_rows, pa.int8())),
        keys.append_column(marker, pa.array([1] * keys.num_rows, pa.int8())),
    ])
    # A row equal to a boundary belongs to that boundary's bucket: boundaries sort first among equals.
    order = pc.sort_indices(both, sort_keys=[*sort_keys(keys.column_names), (marker, "ascending")])
    is_boundary = pc.less(order, boundaries.num_rows)
    below = pc.cumulative_sum(pc.cast(is_boundary, pa.int64()))
    is_row = pc.invert(is_boundary)
    positions = pc.subtract(pc.filter(order, is_row), pa.scalar(boundaries.num_rows, pa.uint64()))
    return pc.take(pc.filter(below, is_row), pc.sort_indices(positions))


def runs(values: pa.Array) -> list[tuple[Any, int, int]]:
    """(value, start, length) of each run of equal values."""
    out: list[tuple[Any, int, int]] = []
    for position, value in enumerate(values.to_pylist()):
        if out and out[-1][0] == value:
            out[-1] = (value, out[-1][1], out[-1][2] + 1)
        else:
            out.append((value, position, 1))
    return out
