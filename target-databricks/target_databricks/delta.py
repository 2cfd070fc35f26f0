"""The Delta Lake load path: one Delta table per stream, rows written by key, columns added as schemas grow.

Why it works the way it does (measured: benchmarks/delta_incremental.py, figures in the README):

- Delta rewrites a whole data file to change one row of it (copy-on-write), unless the table has **deletion
  vectors**: the rows replaced are then marked deleted beside their file and written again in a new one, so that
  changes spread over a million-row table cost what they cost in a small one. delta-rs writes no deletion vectors
  (delta-io/delta-rs#4512) and commits none, so this target writes them (``deletion_vectors``, ``delta_log``) on tables
  on a local or mounted path, where it can commit itself; it creates tables there with the feature. A file of which
  half the rows or more change is rewritten instead (that costs little more, and leaves no dead rows).
- The table is also kept **clustered by key**: files of at most ``rows_per_file`` rows (by default 10,000, or 250,000
  where rows are marked: a marked file costs the same whatever its size), each holding one key range, in key order. Changes to neighbouring keys (the open orders, this month's invoices) then touch one file of a
  million-row table, as they touch one file of a twenty-thousand-row table; on object storage, where files are
  always rewritten, this is what bounds a change's cost.
- A batch's keys are **looked up only in the files whose statistics may hold them** (the key columns' min/max of each
  add action; within files of this writer, per row group), instead of reading the key columns of the whole table.
- Changed rows are written by **rewriting only the files that hold their keys**, streamed one row group at a time into
  new files committed in one transaction (delta-rs ``create_write_transaction``, which refuses the commit when a
  concurrent one removed a file this one rewrote). delta-rs's MERGE could skip files too (a key predicate prunes by
  statistics), but it holds what it rewrites in memory and mixes the rewritten files' rows into new files that no
  longer follow key order.
- Rows that are new and belong to no rewritten file are appended in files of their own, sorted; a full load is all
  such files. At the end of a run, when such files hold a tenth of the table (or are many), they are **clustered**:
  merged with the clustered files whose key range they overlap, by an external sort (bounded memory), and committed
  as a rearrangement (``dataChange: false``), dropping the rows deletion vectors mark. A table written by an earlier
  version of this target is clustered once, at the end of the first run that writes to it; never again as a whole
  unless as much new data arrives out of key order.
"""

from __future__ import annotations

import ctypes
import gc
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, TableFeatures
from deltalake._internal import RemoveAction
from deltalake.exceptions import TableNotFoundError
from deltalake.schema import Field as DeltaField
from deltalake.transaction import CommitProperties

from pyroaring import BitMap64

from target_databricks import delta_files
from target_databricks.deletion_vectors import keep_mask, write_vectors
from target_databricks.delta_files import (DataFiles, aligned, local_folder, plain_schema, positioned_batches,
                                           read_batches, table_filesystem)
from target_databricks.delta_layout import DataFile, KeyProbe, bucket_numbers, data_files, runs, sort_keys
from target_databricks.delta_log import (SUPPORTED_READER_FEATURES, SUPPORTED_WRITER_FEATURES, TableLog, add_action,
                                         loose_bounds, remove_action)

FINGERPRINT = "_mlc_fingerprint"
#: Rows per data file of a table whose changed rows' files are rewritten: small enough that rewriting one file for a
#: change costs what a 20,000-row table costs, and that a rewrite streams in a few megabytes; large enough that a
#: million rows are a hundred files.
ROWS_PER_FILE = 10_000
#: Rows per data file of a table whose replaced rows are marked in deletion vectors: a change then costs its row and
#: the log's remove and add of the file it falls in (about 3 kB), whatever the file's size, so fewer, larger files
#: (tens of megabytes, still small by Databricks' standards) make spread changes cheaper and whole-table reads faster.
ROWS_PER_FILE_MARKING = 250_000
ROW_GROUP_ROWS = 5_000
#: Cluster at the end of a run when files outside key order hold this share of the rows, or are this many.
CLUSTER_SHARE = 0.1
CLUSTER_FILES = 32
#: Keys sampled to cut the key space into files when clustering, and key ranges a clustering pass splits rows into.
BOUNDARY_SAMPLE = 20_000
SPILL_FANOUT = 16
CHECKPOINT_INTERVAL = 10
#: A file of which this share of the live rows or more is replaced is rewritten rather than given a deletion vector.
REWRITE_SHARE = 0.5
ENABLE_VECTORS = "delta.enableDeletionVectors"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Appended:
    """The files this run appended to a table (new keys only) and a hash of each key in them: a batch whose keys
    hash to none of those skips the files without reading them (a full load's lookups stay one batch's work, not the
    whole table's). Files any other writer made, or this run rewrote, are always looked up by their statistics."""

    paths: set[str] = field(default_factory=set)
    hashes: list[pa.Array] = field(default_factory=list)

    def may_hold(self, key_hashes: pa.Array) -> bool:
        if not self.hashes:
            return False
        # The batch's hashes are the set looked up in: a hash table of one batch, not of every key appended.
        return pc.any(pc.is_in(pa.chunked_array(self.hashes), value_set=key_hashes)).as_py() is True


def _key_hashes(keys: Sequence[tuple]) -> pa.Array:
    return pa.array([hash(k) for k in keys], pa.int64())  # within one process: enough to rule keys out


@dataclass
class _Lookup:
    """What ``stored`` found for a batch, kept for the write that follows it: the table as read (its version is the
    one the commit is checked against) and the files holding each key found."""

    table: DeltaTable | None
    homes: dict[tuple, list[DataFile]] = field(default_factory=dict)


class DeltaWriter:
    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None, *,
                 rows_per_file: int | None = None, row_group_rows: int = ROW_GROUP_ROWS,
                 deletion_vectors: bool = True) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {}) or None
        self.rows_per_file = rows_per_file  # None: by table, ROWS_PER_FILE_MARKING or ROWS_PER_FILE
        self.row_group_rows = min(row_group_rows, rows_per_file or row_group_rows)
        self.deletion_vectors = deletion_vectors
        self._logs: dict[str, TableLog] = {}
        self._deleted_rows: dict[str, BitMap64] = {}  # deletion vector id -> the rows it deletes
        self._lookups: dict[str, _Lookup] = {}
        self._appended: dict[str, _Appended] = {}
        self.keys_written: dict[str, list[str]] = {}  # location -> its keys, for clustering at the end of the run

    def location(self, schema: str, table: str) -> str:
        return f"{self.root}/{schema}/{table}"

    def _open(self, location: str) -> DeltaTable | None:
        try:
            table = DeltaTable(location, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        protocol = table.protocol()
        if _uses_vectors(table):
            if local_folder(location) is None:
                raise ValueError(f"the Delta table {location} has deletion vectors, which target-databricks writes "
                                 "only on a local or mounted path (delta-rs commits none to object storage); load it "
                                 "through load_method warehouse")
            unsupported = ((set(protocol.reader_features or ()) - SUPPORTED_READER_FEATURES)
                           | (set(protocol.writer_features or ()) - SUPPORTED_WRITER_FEATURES))
            if (table.metadata().configuration or {}).get("delta.appendOnly") == "true":
                unsupported.add("delta.appendOnly")
            if any((f.metadata or {}).get("delta.invariants") for f in table.schema().fields):
                unsupported.add("invariants")
        else:
            unsupported = set(protocol.reader_features or ()) & {"columnMapping"}
        if unsupported:
            raise ValueError(f"the Delta table {location} uses {', '.join(sorted(unsupported))}, which "
                             "target-databricks does not write; load it through load_method warehouse")
        if table.metadata().partition_columns:
            raise ValueError(f"the Delta table {location} is partitioned by "
                             f"{', '.join(table.metadata().partition_columns)}; target-databricks writes "
                             "unpartitioned tables (clustered by key)")
        return table

    def _fs(self, location: str):
        return table_filesystem(location, self.storage_options)

    def _log(self, location: str) -> TableLog:
        if location not in self._logs:
            self._logs[location] = TableLog(self._fs(location), local_folder(location))
        return self._logs[location]

    def _files(self, location: str, table: DeltaTable, keys: Sequence[str]) -> list[DataFile]:
        live = self._log(location).live_files(table.version()) if _uses_vectors(table) else None
        return data_files(table, keys, live)

    def _deleted(self, fs, file: DataFile) -> BitMap64 | None:
        """The rows of the file its deletion vector deletes (read once a run)."""
        if file.vector is None:
            return None
        found = self._deleted_rows.get(file.vector.unique_id)
        if found is None:
            found = self._deleted_rows[file.vector.unique_id] = file.vector.read(fs, file.path)
        return found

    def _create(self, location: str, schema: pa.Schema) -> DeltaTable:
        """A new table; on a local or mounted path with deletion vectors enabled (reader version 3, writer version
        7 with just that feature, as Databricks creates tables)."""
        table = DeltaTable.create(location, schema=schema, storage_options=self.storage_options)
        if self.deletion_vectors and local_folder(location) is not None:
            # The feature alone (delta-rs's set_table_properties would add features of its own, such as variantType,
            # that older readers refuse); delta.enableDeletionVectors set to false turns marking off (_marks_rows).
            table.alter.add_feature(TableFeatures.DeletionVectors, allow_protocol_versions_increase=True)
        return table

    def _marks_rows(self, table: DeltaTable) -> bool:
        """Whether replaced rows are marked in deletion vectors (the table allows writing them) or files rewritten."""
        return (self.deletion_vectors and _uses_vectors(table)
                and (table.metadata().configuration or {}).get(ENABLE_VECTORS, "true").lower() != "false")

    def _file_rows(self, table: DeltaTable) -> int:
        """Rows per data file of this table."""
        if self.rows_per_file is not None:
            return self.rows_per_file
        return ROWS_PER_FILE_MARKING if self._marks_rows(table) else ROWS_PER_FILE

    def _commit(self, location: str, table: DeltaTable, added: Sequence, removed: Sequence[DataFile],
                data_change: bool, marked: Sequence[dict] = (), info: Mapping[str, str] | None = None) -> None:
        """One commit: ``added`` files (delta-rs add actions), ``removed`` files, and ``marked`` actions (files given a
        new deletion vector). A table with deletion vectors is committed here, any other through delta-rs."""
        info = dict(info or {})
        if not _uses_vectors(table):
            now = int(time.time() * 1000)
            table.create_write_transaction([*added, *(RemoveAction(f.path, data_change, now, f.size) for f in removed)],
                                           "append", table.schema(),
                                           commit_properties=CommitProperties(custom_metadata=info))
            return
        log = self._log(location)
        live = log.live_files(table.version())
        actions = [add_action(a.path, a.size, a.stats, modification_time=a.modification_time,
                              data_change=a.data_change) for a in added]
        actions += [remove_action(live.adds[f.path], data_change=data_change) for f in removed]
        log.commit(table.version(), [*marked, *actions], info)

    def prepare(self, location: str, schema: pa.Schema) -> None:
        """Nothing to do ahead: the first write creates the table, a write adds new columns."""

    def stored(self, location: str, batch_keys: pa.Table, version: pa.Field | None) -> dict[tuple, tuple[str, Any]]:
        """The fingerprint and version the table holds for each key of the batch, read from the files whose
        statistics may hold the keys (and of this writer's files, only the row groups that may)."""
        table = self._open(location)
        self._lookups[location] = _Lookup(table)
        if table is None:
            return {}
        keys = batch_keys.column_names
        schema = plain_schema(table.schema().to_arrow())
        missing = [k for k in keys if k not in schema.names]
        if missing:
            raise ValueError(f"the Delta table {location} has no key column {', '.join(missing)}")
        version_column = version.name if version is not None and version.name in schema.names else None
        columns = list(dict.fromkeys([*keys, *([FINGERPRINT] if FINGERPRINT in schema.names else []),
                                      *([version_column] if version_column else [])]))
        probe = KeyProbe(aligned(batch_keys, pa.schema([schema.field(k) for k in keys])))
        wanted = {k: pc.unique(probe.keys.column(k).combine_chunks()) for k in keys}
        probe_keys = list(zip(*(probe.keys.column(k).to_pylist() for k in keys)))
        exact = set(probe_keys) if len(keys) > 1 else None
        fs = self._fs(location)
        found: dict[tuple, tuple[str, Any]] = {}
        homes = self._lookups[location].homes
        files = self._files(location, table, keys)
        appended = self._appended.get(location)
        if appended and not appended.may_hold(_key_hashes(probe_keys)):
            files = [f for f in files if f.path not in appended.paths]
        for file in probe.files_holding(files):
            groups = _row_groups_may_hold(fs, file, keys[0], probe) if file.clustered or _ours(file) else None
            for part in read_batches(fs, file.path, schema, columns=columns, row_groups=groups,
                                     deleted=self._deleted(fs, file)):
                hit = None
                for k in keys:  # every key column's values are among the batch's: few rows left to compare
                    test = pc.is_in(part.column(k), value_set=wanted[k])
                    hit = test if hit is None else pc.and_(hit, test)
                part = part.filter(hit)
                for row in part.to_pylist():
                    key = tuple(row[k] for k in keys)
                    if exact is not None and key not in exact:
                        continue
                    found[key] = (row.get(FINGERPRINT), row.get(version_column) if version_column else None)
                    homes.setdefault(key, []).append(file)
        return found

    def append(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> dict:
        return self._write(location, rows, keys)

    def merge(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> dict:
        return self._write(location, rows, keys)

    def _write(self, location: str, rows: pa.Table, keys: Sequence[str]) -> dict:
        """The rows (the latest version of each key, new or changed) into the table in one commit: the files holding
        their keys rewritten with them, the rest appended in key order."""
        if location not in self._lookups:  # never written without knowing which files hold the keys
            self.stored(location, rows.select(list(keys)), None)
        lookup = self._lookups.pop(location)
        table = lookup.table
        self.keys_written.setdefault(location, list(keys))
        given = set(rows.column_names)
        if table is None:
            table = self._create(location, rows.schema)
        else:
            self._add_columns(table, rows.schema)
        schema = plain_schema(table.schema().to_arrow())
        # Columns the stream no longer sends keep their values in updated rows, as MERGE's update_all keeps them.
        kept_columns = [c for c in schema.names if c not in given]
        rows = aligned(rows, schema).take(pc.sort_indices(rows, sort_keys=sort_keys(keys)))
        row_keys = list(zip(*(rows.column(k).to_pylist() for k in keys)))
        touched: dict[str, DataFile] = {}
        placed: dict[str, list[int]] = {}
        loose: list[int] = []
        for i, key in enumerate(row_keys):
            homes = lookup.homes.get(key)
            if homes:
                for home in homes:
                    touched[home.path] = home
                placed.setdefault(homes[0].path, []).append(i)
            else:
                loose.append(i)
        marking: list[DataFile] = []
        if self._marks_rows(table):
            for path, file in list(touched.items()):
                if len(placed.get(path, ())) < REWRITE_SHARE * file.live_rows:
                    marking.append(touched.pop(path))
                    loose.extend(placed.pop(path, ()))
            loose.sort()  # rows are in key order: appended files stay sorted
        file_rows = self._file_rows(table)
        loose = self._place_in_rewritten_files(loose, row_keys, touched, placed, file_rows)

        fs = self._fs(location)
        stats_columns = _stats_columns(table, schema, keys)
        written: list[DataFiles] = []
        replacing = _KeySet(row_keys, schema.field(keys[0]).type)
        vectors_file = None
        try:
            marked, replaced_elsewhere, vectors_file = self._mark(location, table, fs, marking, schema, keys,
                                                                  replacing, kept_columns, rows)
            for file in sorted(touched.values(), key=lambda f: _sortable(f.low)):
                out = DataFiles(fs, schema, clustered=file.clustered, rows_per_file=2**62,
                                row_group_rows=self.row_group_rows, stats_columns=stats_columns)
                written.append(out)
                own = rows.take(pa.array(placed.get(file.path, []), pa.int64()))
                replaced = self._rewrite(fs, file, schema, keys, replacing, out, kept_columns)
                out.write(_with_kept_values(own, replaced, keys, kept_columns))
            appended_files = None
            if loose:
                appended_files = DataFiles(fs, schema, clustered=False, rows_per_file=file_rows,
                                           row_group_rows=self.row_group_rows, stats_columns=stats_columns)
                written.append(appended_files)
                appended_files.write(_with_kept_values(rows.take(pa.array(loose, pa.int64())), replaced_elsewhere,
                                                       keys, kept_columns))
            added = [action for out in written for action in out.close()]
            self._commit(location, table, added, list(touched.values()), True, marked,
                         {"mlc.operation": "write by key", "mlc.keys": ",".join(keys)})
        except BaseException:
            for out in written:
                out.discard()
            if vectors_file is not None:
                fs.delete_file(vectors_file)
            raise
        _checkpoint_now_and_then(table)
        appended = self._appended.setdefault(location, _Appended())
        appended.paths -= set(touched)
        if appended_files is not None:
            appended.paths.update(appended_files.paths)
            appended.hashes.append(_key_hashes([row_keys[i] for i in loose]))
        return {"num_target_files_removed": len(touched), "num_target_files_added": len(added),
                "num_target_files_marked": sum(1 for a in marked if "remove" in a), "num_rows_written": rows.num_rows}

    def _place_in_rewritten_files(self, loose: list[int], row_keys: list[tuple], touched: dict[str, DataFile],
                                  placed: dict[str, list[int]], file_rows: int) -> list[int]:
        """New keys that fall within the first-column range of a file rewritten anyway go into it (it stays one key
        range, and no file is added); the others are left to be appended."""
        if not loose or not touched:
            return loose
        targets = sorted((f for f in touched.values() if f.low[0] is not None and f.high[0] is not None),
                         key=lambda f: _sortable(f.low))
        left = []
        for i in loose:
            lead = row_keys[i][0]
            home = next((f for f in targets if _within(lead, f.low[0], f.high[0])
                         and f.rows + len(placed.get(f.path, [])) < file_rows * 3 // 2), None)
            if home is None:
                left.append(i)
            else:
                placed.setdefault(home.path, []).append(i)
        return left

    def _mark(self, location: str, table: DeltaTable, fs, files: Sequence[DataFile], schema: pa.Schema,
              keys: Sequence[str], replacing: _KeySet, kept_columns: list[str],
              rows: pa.Table) -> tuple[list[dict], pa.Table | None, str | None]:
        """Marks the rows of ``files`` whose keys are being written as deleted: the actions that give each file its
        new deletion vector (all written to one new vector file, whose path is returned), and the rows replaced
        (the key and ``kept_columns``) when values have to be kept."""
        if not files:
            return [], None, None
        live = self._log(location).live_files(table.version())
        probe = KeyProbe(rows.select(list(keys)))
        changes: list[tuple[DataFile, BitMap64]] = []
        replaced = []
        for file in files:
            before = self._deleted(fs, file)
            now_deleted = BitMap64(before) if before else BitMap64()
            groups = _row_groups_may_hold(fs, file, keys[0], probe)  # only row groups that may hold a key
            for start, part in positioned_batches(fs, file.path, schema, columns=[*keys, *kept_columns],
                                                  row_groups=groups, batch_rows=self.row_group_rows):
                hit = replacing.holds(part, keys)
                undeleted = keep_mask(before, start, part.num_rows)
                if undeleted is not None:  # rows deleted already are not replaced again
                    hit = pc.and_(hit, undeleted)
                positions = pc.indices_nonzero(hit)
                if len(positions):
                    now_deleted.update(p + start for p in positions.to_pylist())
                    if kept_columns:
                        replaced.append(part.take(positions))
            if len(now_deleted) != (len(before) if before else 0):
                changes.append((file, now_deleted))
        actions: list[dict] = []
        vectors_file = None
        emptied = [(f, d) for f, d in changes if len(d) >= f.rows]
        kept = [(f, d) for f, d in changes if len(d) < f.rows]
        if kept:
            vectors_file, vectors = write_vectors(fs, [d for _, d in kept])
            for (file, _), vector in zip(kept, vectors):
                added = live.adds[file.path]
                actions.append(remove_action(added, data_change=True))
                actions.append(add_action(added["path"], added["size"], loose_bounds(added.get("stats")),
                                          modification_time=added["modificationTime"], data_change=True,
                                          vector=vector))
        actions += [remove_action(live.adds[f.path], data_change=True) for f, _ in emptied]
        return actions, (pa.concat_tables(replaced) if replaced else None), vectors_file

    def _rewrite(self, fs, file: DataFile, schema: pa.Schema, keys: Sequence[str], replacing: _KeySet,
                 out: DataFiles, kept_columns: list[str]) -> pa.Table | None:
        """Copies the file's rows whose keys are not being written into ``out``; returns the rows replaced (with the
        key and ``kept_columns``), when values have to be kept."""
        replaced = []
        for part in read_batches(fs, file.path, schema, batch_rows=self.row_group_rows, deleted=self._deleted(fs, file)):
            candidate = replacing.holds(part, keys)
            out.write(part.filter(pc.invert(candidate)))
            if kept_columns:
                replaced.append(part.filter(candidate).select([*keys, *kept_columns]))
        return pa.concat_tables(replaced) if replaced else None

    def _add_columns(self, table: DeltaTable, schema: pa.Schema) -> None:
        existing = set(pa.schema(table.schema().to_arrow()).names)
        new = [DeltaField.from_arrow(f) for f in schema if f.name not in existing]
        if new:
            table.alter.add_columns(new)

    # Clustering -------------------------------------------------------------------------------------------------

    def cluster(self, location: str, keys: Sequence[str], *, force: bool = False) -> str | None:
        table = self._open(location)
        if table is None:
            return None
        files = self._files(location, table, keys)
        region = _clustering_region(files, force=force)
        if not region:
            return None
        _release_memory()
        schema = plain_schema(table.schema().to_arrow())
        fs = self._fs(location)
        region_rows = sum(f.live_rows for f in region)
        # Buckets of about a row group's rows, the unit the sort holds in memory (files are cut from the sorted stream).
        boundaries = self._boundaries(fs, region, schema, keys, math.ceil(region_rows / self.row_group_rows))
        out = DataFiles(fs, schema, clustered=True, rows_per_file=self._file_rows(table), row_group_rows=self.row_group_rows,
                        stats_columns=_stats_columns(table, schema, keys), data_change=False)
        try:
            with tempfile.TemporaryDirectory(prefix="mlc-cluster-") as spill:
                self._sort_through(fs, region, schema, keys, boundaries, Path(spill), out)
            self._commit(location, table, out.close(), region, False,
                         info={"mlc.operation": "cluster by key", "mlc.keys": ",".join(keys)})
        except BaseException:
            out.discard()
            raise
        return f"{len(region)} files ({region_rows} rows) clustered by {', '.join(keys)} into {len(out.actions)}"

    def _sort_through(self, fs, region: Sequence[DataFile], schema: pa.Schema, keys: Sequence[str],
                      boundaries: pa.Table, spill: Path, out: DataFiles) -> None:
        """The region's rows into ``out`` in key order: an external distribution sort that holds about a row group's
        rows at a time (see ``_distribute``)."""

        def region_rows() -> Iterator[pa.Table]:
            for file in region:
                yield from read_batches(fs, file.path, schema, batch_rows=self.row_group_rows,
                                        deleted=self._deleted(fs, file))

        self._distribute(region_rows, schema, keys, boundaries, spill, out)

    def _distribute(self, batches: Callable[[], Iterator[pa.Table]], schema: pa.Schema, keys: Sequence[str],
                    boundaries: pa.Table, spill: Path, out: DataFiles) -> None:
        """Rows of one key range (``batches``), cut by ``boundaries`` into buckets of about a row group's rows, written
        in key order. A bucket is sorted in memory; more are split into up to SPILL_FANOUT groups of buckets, each
        spilled to a file of its own in one pass, and each group distributed in turn: every row is read and written
        a few times (log base SPILL_FANOUT of the buckets), a row group's rows at a time."""
        if boundaries.num_rows == 0:
            rows = _concat(list(batches()), schema)
            order = pc.sort_indices(rows.select(list(keys)), sort_keys=sort_keys(keys))
            for start in range(0, len(order), self.row_group_rows):  # copies of a row group at a time
                out.write(rows.take(order.slice(start, self.row_group_rows)))
            return
        groups = min(SPILL_FANOUT, boundaries.num_rows + 1)
        # Group g holds buckets cuts[g-1] .. cuts[g]-1; its first boundary is that of bucket cuts[g-1].
        cuts = [0, *((boundaries.num_rows + 1) * g // groups for g in range(1, groups)), boundaries.num_rows + 1]
        group_bounds = boundaries.take(pa.array([c - 1 for c in cuts[1:-1]], pa.int64()))
        paths = [spill / f"{uuid.uuid4().hex}.arrow" for _ in range(groups)]
        sinks = [pa.OSFile(str(path), "wb") for path in paths]
        writers = [pa.ipc.new_stream(sink, schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) for sink in sinks]
        try:
            for part in _rechunked(batches(), self.row_group_rows, schema):
                numbers = bucket_numbers(part.select(list(keys)), group_bounds)
                order = pc.sort_indices(numbers)
                for group, start, length in runs(numbers.take(order)):
                    for batch in part.take(order.slice(start, length)).combine_chunks().to_batches():
                        writers[group].write_batch(batch)
        finally:
            for writer, sink in zip(writers, sinks):
                writer.close()
                sink.close()
        pa.default_memory_pool().release_unused()
        for group, path in enumerate(paths):
            inner = boundaries.slice(cuts[group], cuts[group + 1] - cuts[group] - 1)

            def spilled(path: Path = path) -> Iterator[pa.Table]:
                with pa.OSFile(str(path), "rb") as source:
                    for batch in pa.ipc.open_stream(source):
                        yield pa.Table.from_batches([batch], schema=schema)

            self._distribute(spilled, schema, keys, inner, spill, out)
            path.unlink()

    def _boundaries(self, fs, region: Sequence[DataFile], schema: pa.Schema, keys: Sequence[str],
                    buckets: int) -> pa.Table:
        """The first keys of buckets 1 .. buckets-1, from a systematic sample of the region's keys."""
        key_schema = pa.schema([schema.field(k) for k in keys])
        if buckets <= 1:
            return key_schema.empty_table()
        every = max(1, sum(f.live_rows for f in region) // max(BOUNDARY_SAMPLE, 50 * buckets))
        sample = []
        for file in region:
            for part in read_batches(fs, file.path, schema, columns=list(keys), batch_rows=ROWS_PER_FILE,
                                     deleted=self._deleted(fs, file)):
                sample.append(part.take(pa.array(range(0, part.num_rows, every), pa.int64())))
        pa.default_memory_pool().release_unused()
        keys_sampled = pa.concat_tables(sample) if sample else key_schema.empty_table()
        keys_sampled = keys_sampled.take(pc.sort_indices(keys_sampled, sort_keys=sort_keys(keys)))
        if keys_sampled.num_rows == 0:
            return key_schema.empty_table()
        cuts = sorted({min(keys_sampled.num_rows - 1, keys_sampled.num_rows * i // buckets) for i in range(1, buckets)})
        return keys_sampled.take(pa.array(cuts, pa.int64()))


class _KeySet:
    """The keys a write replaces, asked row by row of a file: the first key column in bulk, the others (when the
    first matches) one row at a time."""

    def __init__(self, keys: list[tuple], first_type: pa.DataType) -> None:
        self.keys = set(keys)
        self.firsts = pa.array(sorted({k[0] for k in keys}), first_type)

    def holds(self, part: pa.Table, names: Sequence[str]) -> pa.Array:
        candidate = pc.is_in(part.column(names[0]), value_set=self.firsts)
        if len(names) > 1 and pc.any(candidate).as_py():
            flags = candidate.to_pylist()
            columns = [part.column(k).to_pylist() for k in names]
            candidate = pa.array([bool(flag) and tuple(c[i] for c in columns) in self.keys
                                  for i, flag in enumerate(flags)], pa.bool_())
        return candidate


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _rechunked(tables: Iterator[pa.Table], rows: int, schema: pa.Schema) -> Iterator[pa.Table]:
    """The tables' rows in pieces of ``rows`` (the last one shorter): spilled slices are small."""
    pending, count = [], 0
    for table in tables:
        while table.num_rows:
            take = min(rows - count, table.num_rows)
            pending.append(table.slice(0, take))
            count += take
            table = table.slice(take)
            if count == rows:
                yield _concat(pending, schema).combine_chunks()
                pending, count = [], 0
    if pending:
        yield _concat(pending, schema).combine_chunks()


def _release_memory() -> None:
    """Memory the run's batches freed, handed back before clustering allocates its own: the C heap keeps what Python
    freed (glibc returns it on malloc_trim), Arrow's pool what Arrow freed."""
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):  # not glibc
        pass


def _checkpoint_now_and_then(table: DeltaTable) -> None:
    """A checkpoint every CHECKPOINT_INTERVAL versions, as Spark writes them (delta-rs: every 100): opening the table
    for the next batch then reads a few commits after the checkpoint, not up to a hundred (and holds them)."""
    table.update_incremental()
    if table.version() % CHECKPOINT_INTERVAL == 0:
        table.create_checkpoint()


def _clustering_region(files: Sequence[DataFile], *, force: bool = False) -> list[DataFile]:
    """The files to cluster: those out of key order (or mostly deleted), with the clustered files whose first-column
    range overlaps theirs; nothing while they hold less than CLUSTER_SHARE of the rows and are fewer than CLUSTER_FILES."""
    loose = [f for f in files if not f.clustered or _mostly_deleted(f)]
    if not loose:
        return []
    total = sum(f.live_rows for f in files)
    if not force and sum(f.live_rows for f in loose) < CLUSTER_SHARE * total and len(loose) < CLUSTER_FILES:
        return []
    lows, highs = [f.low[0] for f in loose], [f.high[0] for f in loose]
    if any(v is None for v in lows + highs):
        return list(files)
    try:
        low, high = min(lows), max(highs)
        return [f for f in files if not f.clustered or f.low[0] is None or f.high[0] is None
                or not (f.high[0] < low or f.low[0] > high)]
    except TypeError:
        return list(files)


def _mostly_deleted(file: DataFile) -> bool:
    """A file whose deletion vector deletes half its rows or more: clustering compacts it like an appended file."""
    return file.vector is not None and file.vector.cardinality >= REWRITE_SHARE * file.rows


def _row_groups_may_hold(fs, file: DataFile, lead: str, probe: KeyProbe) -> list[int] | None:
    """The row groups of one of this writer's files whose statistics for the first key column may hold a key of the
    probe; None (all of them) when its statistics do not say."""
    import pyarrow.parquet as pq

    with fs.open_input_file(file.path) as source:
        metadata = pq.ParquetFile(source).metadata
    try:
        column = metadata.schema.names.index(lead)
    except ValueError:
        return None
    groups = []
    for g in range(metadata.num_row_groups):
        stats = metadata.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max or probe.row_group_may_hold(stats.min, stats.max):
            groups.append(g)
    return groups


def _ours(file: DataFile) -> bool:
    name = file.path.rsplit("/", 1)[-1]
    return name.startswith((delta_files.CLUSTERED_PREFIX, delta_files.APPENDED_PREFIX))


def _within(value: Any, low: Any, high: Any) -> bool:
    try:
        return low <= value <= high
    except TypeError:
        return False


def _sortable(bounds: tuple) -> tuple:
    """File bounds as a sort key that tolerates unknown (None) bounds."""
    return tuple((v is not None, v if v is not None else 0) for v in bounds[:1])


def _stats_columns(table: DeltaTable, schema: pa.Schema, keys: Sequence[str]) -> list[str]:
    """The columns a data file carries statistics for: those the table asks for (delta.dataSkippingStatsColumns, or
    the first delta.dataSkippingNumIndexedCols, 32 by default), and the key columns, which lookups prune by."""
    configuration = table.metadata().configuration or {}
    named = configuration.get("delta.dataSkippingStatsColumns")
    if named:
        chosen = [c.strip().strip("`") for c in named.split(",") if c.strip()]
    else:
        count = int(configuration.get("delta.dataSkippingNumIndexedCols", delta_files.STATS_COLUMNS))
        chosen = schema.names if count < 0 else schema.names[:count]
    return list(dict.fromkeys([*chosen, *keys]))


def _with_kept_values(rows: pa.Table, replaced: pa.Table | None, keys: Sequence[str],
                      kept_columns: list[str]) -> pa.Table:
    """The rows, with the values of ``kept_columns`` taken from the rows they replace."""
    if not kept_columns or replaced is None or rows.num_rows == 0 or replaced.num_rows == 0:
        return rows
    old = {tuple(r[k] for k in keys): r for r in replaced.to_pylist()}
    row_keys = list(zip(*(rows.column(k).to_pylist() for k in keys)))
    for name in kept_columns:
        values = [old[key][name] if key in old else None for key in row_keys]
        rows = rows.set_column(rows.schema.get_field_index(name), rows.schema.field(name),
                               pa.array(values, rows.schema.field(name).type))
    return rows


def _uses_vectors(table: DeltaTable) -> bool:
    return "deletionVectors" in (table.protocol().reader_features or ())
