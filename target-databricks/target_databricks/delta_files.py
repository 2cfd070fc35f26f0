"""The Parquet data files of a Delta table as this target writes and reads them: streamed in row groups, with the
statistics Delta readers skip files by, under the table's folder on a local disk or in object storage.

delta-rs writes a file whole in memory and its MERGE holds what it rewrites (a run that changed 100 rows spread over
a million-row table peaked above 900 MB); writing and rewriting files here, one row group at a time, keeps a run's
memory flat whatever the table's size. The files are committed to the table with delta-rs
(``DeltaTable.create_write_transaction``), which checks the commit against concurrent ones.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import msgspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.transaction import AddAction
from pyroaring import BitMap64

from target_databricks.deletion_vectors import keep_mask

#: Names of the files this target keeps in key order, one key range each; every other file (written in arrival order
#: by a full load, or by an earlier version of this target, or by another writer) is merged into them by clustering.
CLUSTERED_PREFIX = "mlc-clustered-"
APPENDED_PREFIX = "mlc-appended-"
#: Delta's default number of leading columns with statistics (delta.dataSkippingNumIndexedCols).
STATS_COLUMNS = 32
#: Strings in statistics are cut to this many characters, as Delta writers do; a cut maximum is raised so that it
#: stays at least the value it stands for.
STATS_STRING_CHARS = 32
_HIGHEST_CHARACTER = "\U0010ffff"
_stats_json = msgspec.json.Encoder(decimal_format="number")


def local_folder(location: str) -> str | None:
    """The table's folder when it is on a local or mounted file system; None for object storage."""
    scheme = urlparse(location).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a path, file:///path, or a Windows drive letter
        return location[len("file://"):] if scheme == "file" else location
    return None


def table_filesystem(location: str, storage_options: Mapping[str, str] | None) -> pafs.FileSystem:
    """A file system rooted at the table's folder: the local one, or object storage through delta-rs's own client
    (the same ``storage_options`` as every other delta-rs call)."""
    path = local_folder(location)
    if path is not None:
        pafs.LocalFileSystem().create_dir(path, recursive=True)
        return pafs.SubTreeFileSystem(path, pafs.LocalFileSystem())
    from deltalake.fs import DeltaStorageHandler

    return pafs.PyFileSystem(DeltaStorageHandler(location, dict(storage_options or {}) or None))


def plain_type(kind: pa.DataType) -> pa.DataType:
    """Delta hands strings back as string views or large strings; files and comparisons use one representation."""
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    return kind


def plain_schema(schema) -> pa.Schema:
    """``schema`` (pyarrow's, or any Arrow schema such as delta-rs's) with plain strings."""
    return pa.schema([pa.field(f.name, plain_type(f.type)) for f in pa.schema(schema)])


def aligned(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.Table:
    """The rows with exactly the table's columns, in its order and types: a column the rows lack (added to the
    table after they were written) is null."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def read_batches(fs: pafs.FileSystem, path: str, schema: pa.Schema, *, columns: Sequence[str] | None = None,
                 row_groups: Sequence[int] | None = None, batch_rows: int = 8192,
                 deleted: BitMap64 | None = None) -> Iterator[pa.Table]:
    """A data file's live rows (those not in its deletion vector ``deleted``) in batches of at most ``batch_rows``
    rows, aligned to ``schema`` (or to its ``columns``)."""
    for start, batch in positioned_batches(fs, path, schema, columns=columns, row_groups=row_groups,
                                           batch_rows=batch_rows):
        keep = keep_mask(deleted, start, batch.num_rows)
        yield batch if keep is None else batch.filter(keep)


def positioned_batches(fs: pafs.FileSystem, path: str, schema: pa.Schema, *, columns: Sequence[str] | None = None,
                       row_groups: Sequence[int] | None = None,
                       batch_rows: int = 8192) -> Iterator[tuple[int, pa.Table]]:
    """A data file's rows, deleted or not, in batches, each with the position in the file of its first row."""
    wanted = pa.schema([schema.field(c) for c in columns]) if columns is not None else schema
    with fs.open_input_file(path) as source:
        parquet = pq.ParquetFile(source)
        present = [c for c in wanted.names if c in parquet.schema_arrow.names]
        groups = range(parquet.num_row_groups) if row_groups is None else row_groups
        firsts = [0]
        for g in range(parquet.num_row_groups):
            firsts.append(firsts[-1] + parquet.metadata.row_group(g).num_rows)
        for group in groups:
            position = firsts[group]
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=present,
                                              use_threads=False):
                yield position, aligned(batch, wanted)
                position += batch.num_rows


class DataFiles:
    """Writes rows, in the order given, into new data files of at most ``rows_per_file`` rows (row groups of
    ``row_group_rows``) and gives the Delta add actions of what it wrote. ``clustered``: the rows come in key order
    and the files take the name of files in key order."""

    def __init__(self, fs: pafs.FileSystem, schema: pa.Schema, *, clustered: bool, rows_per_file: int,
                 row_group_rows: int, stats_columns: Sequence[str], data_change: bool = True) -> None:
        self.fs, self.schema = fs, schema
        self.prefix = CLUSTERED_PREFIX if clustered else APPENDED_PREFIX
        self.rows_per_file, self.row_group_rows = rows_per_file, row_group_rows
        self.stats_columns = [c for c in stats_columns if c in schema.names]
        self.data_change = data_change
        self.actions: list[AddAction] = []
        self.paths: list[str] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._file: _OpenFile | None = None

    def write(self, rows: pa.Table) -> None:
        while rows.num_rows:
            room = self.rows_per_file - (self._file.rows if self._file else 0) - self._pending_rows
            if room <= 0:
                self._close_file()
                continue
            part, rows = rows.slice(0, room), rows.slice(room)
            self._pending.append(part)
            self._pending_rows += part.num_rows
            if self._pending_rows >= self.row_group_rows:
                self._flush()

    def close(self) -> list[AddAction]:
        self._close_file()
        return self.actions

    def discard(self) -> None:
        """Removes every file written (a commit that failed leaves nothing behind for a reader)."""
        if self._file is not None:
            self._file.abandon()
            self._file = None
        for path in self.paths:
            try:
                self.fs.delete_file(path)
            except OSError:
                pass  # never committed: VACUUM removes it in time

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        rows = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        if self._file is None:
            path = f"{self.prefix}{uuid.uuid4()}.snappy.parquet"
            self.paths.append(path)
            self._file = _OpenFile(self.fs, path, self.schema, self.stats_columns)
        self._file.write(rows, self.row_group_rows)

    def _close_file(self) -> None:
        self._flush()
        if self._file is not None:
            self.actions.append(self._file.close(self.data_change))
            self._file = None


class _OpenFile:
    def __init__(self, fs: pafs.FileSystem, path: str, schema: pa.Schema, stats_columns: Sequence[str]) -> None:
        self.path = path
        self.sink = fs.open_output_stream(path)
        # Parquet as delta-rs writes it (snappy, format 2.6, dictionaries), readable by Spark, DuckDB and delta-rs.
        self.writer = pq.ParquetWriter(self.sink, schema, compression="snappy", version="2.6",
                                       write_statistics=True, store_schema=False)
        self.stats = _Stats(schema, stats_columns)
        self.rows = 0

    def write(self, rows: pa.Table, row_group_rows: int) -> None:
        self.writer.write_table(rows, row_group_size=row_group_rows)
        self.stats.add(rows)
        self.rows += rows.num_rows

    def close(self, data_change: bool) -> AddAction:
        self.writer.close()
        size = self.sink.tell()
        self.sink.close()
        return AddAction(self.path, size, {}, int(time.time() * 1000), data_change, self.stats.json(self.rows))

    def abandon(self) -> None:
        try:
            self.writer.close()
            self.sink.close()
        except (OSError, pa.ArrowException):
            pass


class _Stats:
    """Delta's per-file statistics: numRecords, and per statistics column its null count and (for the types that
    have an order Delta readers compare by) its minimum and maximum."""

    def __init__(self, schema: pa.Schema, columns: Sequence[str]) -> None:
        self.types = {c: schema.field(c).type for c in columns}
        self.nulls = dict.fromkeys(columns, 0)
        self.low: dict[str, Any] = {}
        self.high: dict[str, Any] = {}

    def add(self, rows: pa.Table) -> None:
        import pyarrow.compute as pc

        for name, kind in self.types.items():
            column = rows.column(name)
            self.nulls[name] += column.null_count
            if not _ordered(kind) or column.null_count == len(column):
                continue
            bounds = pc.min_max(column)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if name not in self.low or low < self.low[name]:
                self.low[name] = low
            if name not in self.high or high > self.high[name]:
                self.high[name] = high

    def json(self, rows: int) -> str:
        low = {n: v for n, v in ((n, _stat(v, low=True)) for n, v in self.low.items()) if v is not None}
        high = {n: v for n, v in ((n, _stat(v, low=False)) for n, v in self.high.items()) if v is not None}
        return _stats_json.encode({"numRecords": rows, "minValues": low, "maxValues": high,
                                   "nullCount": self.nulls}).decode()


def _ordered(kind: pa.DataType) -> bool:
    # Booleans and floating point (NaN) are left without bounds: a reader then reads the file rather than skip it.
    return (pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)
            or pa.types.is_date32(kind) or (pa.types.is_timestamp(kind) and kind.tz is not None))


def _stat(value: Any, *, low: bool) -> Any:
    """A bound as Delta statistics hold it; None when it cannot be given without claiming too narrow a range."""
    if isinstance(value, str):
        if len(value) <= STATS_STRING_CHARS:
            return value
        cut = value[:STATS_STRING_CHARS]
        if low:
            return cut  # a prefix sorts before the value
        if value[STATS_STRING_CHARS] == _HIGHEST_CHARACTER:
            return None
        return cut + _HIGHEST_CHARACTER  # sorts after every value that starts with the prefix
    if isinstance(value, dt.datetime):
        # Delta keeps milliseconds: the lower bound rounds down, the upper one up.
        value = value.astimezone(dt.timezone.utc)
        extra = value.microsecond % 1000
        if extra and not low:
            value += dt.timedelta(microseconds=1000 - extra)
        value -= dt.timedelta(microseconds=value.microsecond % 1000)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, Decimal)):
        return value
    return None
