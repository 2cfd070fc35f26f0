"""``warehouse_load_method: volume``: each batch staged as a Parquet file in a Unity Catalog volume and MERGEd from
it, Databricks' own way to load in bulk (the Files API's `PUT /api/2.0/fs/files/Volumes/...`, and the `read_files`
table-valued function over Parquet): the values travel as a compact file, not as statement text.

Per batch of a table:

1. its keys as a Parquet file, and one SELECT joining the table with `read_files` of that file: what the table holds
   for those keys (fingerprint, version), however many they are;
2. the rows to write (new and changed) as a Parquet file, and one `MERGE INTO <table> USING (SELECT ... FROM
   read_files(<file>)) ON <keys>` that updates a row only when its content changed and its version is not older, and
   inserts new keys;
3. both files deleted once their statement has succeeded.

Every step may be repeated: an upload sent again after a 5xx or a lost answer writes the same bytes to the same path;
the SELECT changes nothing; a MERGE sent again finds its rows with the same fingerprint. Files are named by the run and
a sequence number and every statement names exactly one file, so a file a killed run left behind is never read by a
later run; the first batch of a table in a run deletes what earlier runs of the same flow left in the table's staging
folder (runs of one flow never overlap: Meltano's state id and mlc-run's lock). Where files go:
``/Volumes/<catalog>/<schema>/<volume>/<flow>/<catalog>.<schema>.<table>/<run id>-<tag>-<n>-{keys,rows}.parquet``.

Why a MERGE even for keys the table does not hold yet, never COPY INTO or INSERT: a statement sent by a killed run may
still be running in the warehouse when the rerun looks up the same keys; if both were blind appends, both would
commit (appends do not conflict in Delta) and the keys would be there twice. Two MERGEs on the same keys do conflict:
one is rolled back (ABORTED [DELTA_CONCURRENT_APPEND]), runs again and finds the rows.

Values are written exactly as the table holds them: DECIMAL(p,s) as Parquet DECIMAL, timestamps as UTC microseconds
(isAdjustedToUTC: TIMESTAMP to Databricks), dates as DATE; each column is cast to the table's type in the statement.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from singer_sdk.exceptions import ConfigValidationError

from target_databricks import sql
from target_databricks.warehouse import StatementFailed, StatementRunner, WarehouseWriter, stored_by_key
from target_databricks.workspace_api import DatabricksApiError, DatabricksAuthError, WorkspaceApi

logger = logging.getLogger(__name__)

LOAD_METHOD_SETTING = "warehouse_load_method"
STAGING_VOLUME_SETTING = "staging_volume"
_VOLUME_NAME = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_-]*)\.([A-Za-z0-9_][A-Za-z0-9_-]*)\.([A-Za-z0-9_][A-Za-z0-9_-]*)$")
_UNSAFE_IN_PATH = re.compile(r"[^A-Za-z0-9_.-]")
# How a statement that cannot use the staged file fails: the volume gone, or reading it not permitted
_VOLUME_STATEMENT_ERRORS = ("UC_VOLUME_NOT_FOUND", "INSUFFICIENT_PERMISSIONS")


class StagingVolumeError(RuntimeError):
    """The staging volume cannot be used: it does not exist, or this principal may not write or read files there."""


class StagingVolume:
    """The folder of a Unity Catalog volume where this run stages its batches, through the Files API."""

    def __init__(self, api: WorkspaceApi, volume: str, *, flow: str, run_id: str) -> None:
        match = _VOLUME_NAME.match(volume)
        if not match:
            raise _config_error(
                f"{STAGING_VOLUME_SETTING} names a Unity Catalog volume as catalog.schema.volume, not '{volume}'")
        self.api = api
        self.volume = volume
        self.root = "/Volumes/" + "/".join(match.groups())
        self.flow_folder = f"{self.root}/{_UNSAFE_IN_PATH.sub('_', flow)}"
        # Unique to this run even should a run id be given twice (MELTANO_RUN_ID set by hand)
        self.run_tag = f"{_UNSAFE_IN_PATH.sub('_', run_id)}-{uuid.uuid4().hex[:6]}"
        self._numbers = itertools.count(1)
        self._swept: set[str] = set()

    @classmethod
    def from_config(cls, config: Mapping, api: WorkspaceApi, *, run_id: str) -> StagingVolume:
        volume = config.get(STAGING_VOLUME_SETTING)
        if not volume:
            raise _config_error(f"{LOAD_METHOD_SETTING} volume needs {STAGING_VOLUME_SETTING} (the Unity Catalog "
                                "volume, catalog.schema.volume, where batches are staged)")
        return cls(api, str(volume), flow=config["flow"], run_id=run_id)

    def folder(self, location: str) -> str:
        """The staging folder of a table (named `catalog`.`schema`.`table`)."""
        return f"{self.flow_folder}/{_UNSAFE_IN_PATH.sub('_', location.replace('`', ''))}"

    def put(self, location: str, rows: pa.Table, kind: str) -> str:
        """Stage ``rows`` as a Parquet file in the table's folder; its path."""
        folder = self.folder(location)
        path = f"{folder}/{self.run_tag}-{next(self._numbers):06d}-{kind}.parquet"
        try:
            self.api.put_file(path, parquet_bytes(rows))
        except DatabricksAuthError:
            raise
        except DatabricksApiError as exc:
            raise self.unusable(exc, "write") from exc
        if folder not in self._swept:  # the upload went through: the volume is there and writable
            self._swept.add(folder)
            self._remove_leftovers(folder)
        return path

    def remove(self, path: str) -> None:
        """Delete a staged file whose statement has run; a failure only leaves it for the next run to remove."""
        try:
            self.api.delete_file(path)
        except DatabricksApiError as exc:
            logger.warning("Could not delete the staged file %s (%s); the next run of this flow removes it", path, exc)

    def _remove_leftovers(self, folder: str) -> None:
        try:
            entries = self.api.list_directory(folder) or []
            leftovers = [e["path"] for e in entries
                         if not e.get("is_directory") and not str(e.get("name", "")).startswith(self.run_tag)]
            for path in leftovers:
                self.api.delete_file(path)
        except DatabricksApiError as exc:
            logger.warning("Could not remove files earlier runs left in %s (%s); they are never read", folder, exc)
            return
        if leftovers:
            logger.info("Removed %d staged file(s) that earlier runs of this flow left in %s", len(leftovers), folder)

    def unusable(self, cause: Exception, action: str) -> Exception:
        """The error naming the setting when the volume is missing or not permitted; ``cause`` itself otherwise."""
        status = getattr(cause, "status", None)  # of a Files API call
        error_class = getattr(cause, "error_class", None)  # of a statement
        fix = f"set {STAGING_VOLUME_SETTING} to a volume this principal may read and write"
        if status == 404 or error_class == "UC_VOLUME_NOT_FOUND":
            return StagingVolumeError(
                f"{STAGING_VOLUME_SETTING} '{self.volume}': the volume does not exist ({cause}). Create it "
                f"(CREATE VOLUME {self.volume}) or {fix}")
        if status == 403 or error_class == "INSUFFICIENT_PERMISSIONS":
            return StagingVolumeError(
                f"{STAGING_VOLUME_SETTING} '{self.volume}': this principal may not {action} files in the volume "
                f"({cause}). Grant it READ VOLUME and WRITE VOLUME on {self.volume}, or {fix}")
        return cause


def _config_error(message: str) -> ConfigValidationError:
    return ConfigValidationError(message, errors=[message])  # singer-sdk prints the errors, one a line


def parquet_bytes(rows: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(rows, sink)
    return sink.getvalue().to_pybytes()


class VolumeWriter(WarehouseWriter):
    """The warehouse path with batches staged in a volume (see the module's text)."""

    def __init__(self, runner: StatementRunner, catalog: str, staging: StagingVolume) -> None:
        super().__init__(runner, catalog, max_statement_bytes=0)
        self.staging = staging

    def stored(self, location: str, batch_keys: pa.Table, version: pa.Field | None) -> dict[tuple, tuple[str, Any]]:
        keys = batch_keys.column_names
        path = self.staging.put(location, batch_keys, "keys")
        try:
            rows = self._from_staged(sql.select_stored_from_file(
                location, keys, version.name if version is not None else None, path, batch_keys.schema))
        finally:
            self.staging.remove(path)
        return stored_by_key(rows, [batch_keys.schema.field(k).type for k in keys], version)

    def merge(self, location: str, rows: pa.Table, keys: Sequence[str], version_column: str | None) -> dict:
        path = self.staging.put(location, rows, "rows")
        try:
            self._from_staged(sql.merge_from_file(location, path, rows.schema, keys, version_column))
        finally:
            self.staging.remove(path)
        return {"rows": rows.num_rows, "statements": 1}

    def _from_staged(self, statement: str) -> list[list[str | None]]:
        try:
            return self.execute(statement)
        except StatementFailed as exc:
            if exc.error_class in _VOLUME_STATEMENT_ERRORS and "Volume" in exc.message:
                raise self.staging.unusable(exc, "read") from exc
            raise
