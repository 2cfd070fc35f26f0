"""The part of a Delta table's log that delta-rs does not hand out or take in: each live data file's add action with
its deletion vector, and commits whose actions carry deletion vectors.

delta-rs's ``get_add_actions`` gives no deletion vectors and its ``create_write_transaction`` takes none, so for a
table with deletion vectors the live files are replayed here from the last checkpoint and the commits after it, and
commits are written here: put-if-absent of ``_delta_log/<version>.json`` (a hard link, atomic on a local or mounted
file system, as delta-rs commits there), checked against what concurrent commits changed before trying the next
version. Object storage offers no put-if-absent through delta-rs's Python API: tables there are written with
delta-rs's own commits and no deletion vectors.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from target_databricks.deletion_vectors import DeletionVector

ENGINE = "target-databricks"
#: Writer features a commit written here honours. Any other (row tracking, column mapping, check constraints,
#: generated or identity columns, v2 checkpoints, ...) asks for work this writer does not do: such tables are refused.
SUPPORTED_WRITER_FEATURES = frozenset({"deletionVectors", "appendOnly", "invariants"})
SUPPORTED_READER_FEATURES = frozenset({"deletionVectors"})
_TIGHT_BOUNDS = re.compile(r'"tightBounds"\s*:\s*(true|false)')


class CommitFailed(RuntimeError):
    """A commit that could not be written: the batch is not written (and its state not emitted)."""


class CommitConflict(CommitFailed):
    """A concurrent commit changed what this one changes."""


@dataclass
class LiveFiles:
    """The table's live data files at ``version``: path -> its add action (as the log holds it)."""

    version: int = -1
    adds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, actions: Iterable[dict[str, Any]]) -> None:
        """One commit's actions. Its removes go first: a file whose deletion vector changed is removed with the old
        vector and added with the new one in the same commit."""
        actions = list(actions)
        for action in actions:
            removed = action.get("remove")
            if removed:
                path = unquote(removed["path"])
                current = self.adds.get(path)
                if current is not None and _vector_id(current) == _vector_id(removed):
                    del self.adds[path]
        for action in actions:
            added = action.get("add")
            if added:
                self.adds[unquote(added["path"])] = added

    def vector(self, path: str) -> DeletionVector | None:
        added = self.adds.get(path)
        return DeletionVector.from_action(added.get("deletionVector")) if added else None


def _vector_id(action: dict[str, Any]) -> str | None:
    vector = DeletionVector.from_action(action.get("deletionVector"))
    return vector.unique_id if vector else None


class TableLog:
    """Reads and writes one table's ``_delta_log`` through a file system rooted at the table's folder."""

    def __init__(self, fs: pafs.FileSystem, local_root: str | None) -> None:
        self.fs = fs
        self.local_root = local_root  # the folder on disk, where commits can be put-if-absent; None: object storage
        self._live = LiveFiles()

    def live_files(self, version: int) -> LiveFiles:
        """The live files at ``version``, replayed from where the last call left off (or from the checkpoint)."""
        if version < self._live.version:
            self._live = LiveFiles()
        if self._live.version < 0:
            self._live = self._from_checkpoint(version)
        for number in range(self._live.version + 1, version + 1):
            self._live.apply(self._commit_actions(number))
            self._live.version = number
        return self._live

    def _from_checkpoint(self, version: int) -> LiveFiles:
        live = LiveFiles()
        try:
            with self.fs.open_input_stream("_delta_log/_last_checkpoint") as source:
                last = json.loads(source.read())
        except (FileNotFoundError, OSError):
            return live
        if last["version"] > version:
            return live
        parts = last.get("parts")
        names = ([f"{last['version']:020d}.checkpoint.parquet"] if not parts else
                 [f"{last['version']:020d}.checkpoint.{p:010d}.{parts:010d}.parquet" for p in range(1, parts + 1)])
        for name in names:
            with self.fs.open_input_file(f"_delta_log/{name}") as source:
                adds = pq.read_table(source, columns=["add"]).column("add").to_pylist()
            for added in adds:
                if added:
                    live.adds[unquote(added["path"])] = {k: v for k, v in added.items() if v is not None}
        live.version = last["version"]
        return live

    def _commit_actions(self, version: int) -> list[dict[str, Any]]:
        with self.fs.open_input_stream(f"_delta_log/{version:020d}.json") as source:
            return [json.loads(line) for line in source.read().decode().splitlines() if line.strip()]

    def commit(self, read_version: int, actions: Sequence[dict[str, Any]], info: dict[str, Any]) -> int:
        """Writes the actions as the version after ``read_version``, or after the concurrent commits since, unless
        one of those changed a file this commit removes or the table's schema or protocol. Returns the version."""
        if self.local_root is None:
            raise RuntimeError("commits with deletion vectors need a table on a local or mounted file system")
        removed = {unquote(a["remove"]["path"]) for a in actions if "remove" in a}
        body = "".join(json.dumps(a, separators=(",", ":")) + "\n" for a in actions)
        log = Path(self.local_root) / "_delta_log"
        staged = log / f".{uuid.uuid4()}.json.tmp"
        version = read_version + 1
        try:
            while True:
                now = int(time.time() * 1000)
                commit_info = {"commitInfo": {"timestamp": now, "operation": "WRITE", "engineInfo": ENGINE,
                                              "readVersion": read_version, "isBlindAppend": not removed, **info}}
                staged.write_text(body + json.dumps(commit_info, separators=(",", ":")) + "\n")
                try:
                    os.link(staged, log / f"{version:020d}.json")  # fails if the version exists: put-if-absent
                    return version
                except FileExistsError:
                    self._check_no_conflict(version, removed)
                    version += 1
                except OSError as exc:  # a file system without hard links (some FUSE mounts): no put-if-absent
                    raise CommitFailed(
                        f"cannot commit version {version} of the Delta table at {self.local_root}: its file system "
                        f"refuses the hard link that makes a commit atomic ({exc.strerror or exc}); the batch was "
                        "not committed. Keep Delta tables on a local disk or object storage") from exc
        finally:
            staged.unlink(missing_ok=True)

    def _check_no_conflict(self, version: int, removed: set[str]) -> None:
        for action in self._commit_actions(version):
            if "metaData" in action or "protocol" in action:
                raise CommitConflict(f"version {version} of the table changed its schema or protocol while this batch "
                                     "was written; the batch was not committed")
            gone = action.get("remove")
            if gone and unquote(gone["path"]) in removed:
                raise CommitConflict(f"version {version} of the table removed {gone['path']}, which this batch "
                                     "changes too; the batch was not committed")


def add_action(path: str, size: int, stats: str | None, *, modification_time: int, data_change: bool,
               vector: DeletionVector | None = None) -> dict[str, Any]:
    added: dict[str, Any] = {"path": path, "partitionValues": {}, "size": size, "modificationTime": modification_time,
                             "dataChange": data_change}
    if stats is not None:
        added["stats"] = stats
    if vector is not None:
        added["deletionVector"] = vector.action()
    return {"add": added}


def remove_action(added: dict[str, Any], *, data_change: bool) -> dict[str, Any]:
    """The remove of a live file, named with the add action the log holds for it (its deletion vector included)."""
    removed: dict[str, Any] = {"path": added["path"], "deletionTimestamp": int(time.time() * 1000),
                               "dataChange": data_change, "extendedFileMetadata": True,
                               "partitionValues": {}, "size": added.get("size")}  # tables here are unpartitioned
    if added.get("deletionVector"):
        removed["deletionVector"] = added["deletionVector"]
    return {"remove": removed}


def loose_bounds(stats: str | None) -> str | None:
    """A file's statistics once rows of it are deleted: its bounds still hold every live value, but may no longer be
    reached by one (the protocol's ``tightBounds``)."""
    if not stats:
        return stats
    # Edited as text: parsing and dumping again would turn decimal bounds into floating point.
    if _TIGHT_BOUNDS.search(stats):
        return _TIGHT_BOUNDS.sub('"tightBounds":false', stats)
    body = stats.rstrip()[:-1].rstrip()
    return body + (',' if body != "{" else "") + '"tightBounds":false}'
