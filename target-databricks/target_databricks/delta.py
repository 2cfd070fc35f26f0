"""The Delta Lake load path: one Delta table per stream, MERGE on the stream's keys, columns added as schemas grow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

FINGERPRINT = "_mlc_fingerprint"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DeltaWriter:
    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {}) or None

    def location(self, schema: str, table: str) -> str:
        return f"{self.root}/{schema}/{table}"

    def _open(self, location: str) -> DeltaTable | None:
        try:
            return DeltaTable(location, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def prepare(self, location: str, schema: pa.Schema) -> None:
        """Nothing to do ahead: the first write creates the table, MERGE adds new columns."""

    def stored(self, location: str, batch_keys: pa.Table, version: pa.Field | None) -> dict[tuple, tuple[str, Any]]:
        """The fingerprint and version the table holds for each key of the batch."""
        version_column = version.name if version is not None else None
        table = self._open(location)
        if table is None:
            return {}
        keys = batch_keys.column_names
        existing_columns = {f.name for f in table.schema().fields}
        versioned = [version_column] if version_column and version_column in existing_columns else []
        wanted = list(dict.fromkeys([*keys, FINGERPRINT, *versioned]))
        held = table.to_pyarrow_table(columns=wanted)
        held = held.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in held.schema]))
        probe = batch_keys.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in batch_keys.schema]))
        matched = held.join(probe, keys, join_type="inner")
        key_columns = [matched.column(k).to_pylist() for k in keys]
        fingerprints = matched.column(FINGERPRINT).to_pylist()
        versions = matched.column(version_column).to_pylist() if version_column in matched.column_names else [None] * len(fingerprints)
        return {tuple(values): (fp, version) for *values, fp, version in zip(*key_columns, fingerprints, versions)}

    def append(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> None:
        write_deltalake(location, rows, mode="append", schema_mode="merge", storage_options=self.storage_options)

    def merge(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> dict:
        table = self._open(location)
        if table is None:
            write_deltalake(location, rows, mode="append", storage_options=self.storage_options)
            return {"num_target_rows_inserted": rows.num_rows}
        on = " AND ".join(f"t.{_quoted(k)} = s.{_quoted(k)}" for k in keys)
        changed = f"(t.{_quoted(FINGERPRINT)} IS DISTINCT FROM s.{_quoted(FINGERPRINT)})"
        if version_column:
            v = _quoted(version_column)
            changed += f" AND (t.{v} IS NULL OR s.{v} IS NULL OR s.{v} >= t.{v})"
        return (
            table.merge(rows, on, source_alias="s", target_alias="t", merge_schema=True)
            .when_matched_update_all(predicate=changed)
            .when_not_matched_insert_all()
            .execute()
        )


def _plain(kind: pa.DataType) -> pa.DataType:
    """Delta hands strings back as string views; joins need one representation on both sides."""
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    return kind
