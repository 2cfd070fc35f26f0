"""The audit trail: every record a target writes, with the exact payload it sent (secrets redacted) and the outcome,
so that what failed can be found, shown and replayed (``mlc-audit``).

One store for every target. By default a SQLite file ``.ml-connector/audit.sqlite`` under the working directory;
``MLC_AUDIT_URL`` (or the caller's URL) points it elsewhere, e.g. ``postgresql+psycopg://user@host/db`` for a team::

    trail = AuditTrail()
    with trail.start_run(flow="ifs-to-databricks", plugin="target-databricks") as run:
        run.remember_schema("purchase_orders", schema, ["order_no"])
        run.record([AuditEntry(stream="purchase_orders", key={"order_no": "PO-1"}, operation="insert",
                               outcome="succeeded", destination="main.ifs.purchase_orders", payload=row), ...])

``run.record`` writes a whole batch in one transaction: call it once per batch, after the batch's outcome is known.

How entries are stored (see ``ml_connector_core.audit_blocks``): a batch's entries that did not fail become one row of
``audit_blocks`` per stream (up to 5,000 entries each), their columns compressed, the run, stream and destination
written once, payloads apart so that a retention setting (``prune_documents``) can drop them; an entry whose target
says an earlier entry holds its payload (``keep_payload=False``) keeps none. Failed entries stay rows of
``audit_records``, one each with its payload and source, indexed for ``failures`` and replay, until a replay marks them
``replayed``; replays' answers and every entry written by a version before blocks are rows there too (``compact``
moves the succeeded ones into blocks). Entry ids come from one counter, in the order entries are written, whichever
table holds them.

A run records the process that writes it (host, pid, when it started) and a heartbeat, renewed every
``MLC_AUDIT_HEARTBEAT_SECONDS`` (30) while the process lives. A run still ``running`` whose process is gone is
``interrupted``: on the same host (same kernel boot, same process namespace) as soon as the pid is gone, elsewhere once
its heartbeat is older than the lease (``MLC_AUDIT_LEASE_SECONDS``, 300). Readers show it so at once; the next
``start_run`` on the trail records it. A live run is never marked: its heartbeat puts it back to ``running``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import secrets
import socket
import threading
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from array import array
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Context, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine, make_url

from ml_connector_core import audit_blocks as blocks
from ml_connector_core.redaction import REDACTED, redact_text, registered_secrets

AUDIT_URL_ENV = "MLC_AUDIT_URL"
LEASE_ENV = "MLC_AUDIT_LEASE_SECONDS"
HEARTBEAT_ENV = "MLC_AUDIT_HEARTBEAT_SECONDS"
#: A run whose heartbeat is older than this (and whose process cannot be checked from here) is interrupted.
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_HEARTBEAT_SECONDS = 30.0
#: Runs recorded by a version without heartbeats: interrupted a day after they started (as Meltano judges its own).
HEARTBEATLESS_LEASE = timedelta(hours=24)
DEFAULT_AUDIT_PATH = Path(".ml-connector") / "audit.sqlite"
# Field names whose values are never stored, whatever they hold. A field matches when its name, lower-cased and
# without "-", "_", "." or spaces, ends with one of these (so "client_secret", "X-Api-Key" and "accessToken" match).
DEFAULT_SENSITIVE_FIELDS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "authorization",
    "private_key",
    "access_key",
    "credential",
    "credentials",
    "cookie",
)
SQLITE_BUSY_TIMEOUT_SECONDS = 60.0
# Bounded IN lists: SQLite allows 32,766 variables, PostgreSQL 65,535; small chunks keep statements cheap to plan.
_ID_CHUNK = 500


class Operation(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIPPED_DUPLICATE = "skipped_duplicate"
    DELETE = "delete"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Set by mark_replayed on a failed entry once a replay has delivered it; targets never record it themselves.
    REPLAYED = "replayed"


class RunStatus(StrEnum):
    RUNNING = "running"
    #: Everything the pipeline read was delivered.
    SUCCEEDED = "succeeded"
    #: Some records were not delivered (they are failed entries), or the input ended before the tap finished.
    PARTIAL = "partial"
    #: The run stopped on an error, or got no input at all.
    FAILED = "failed"
    #: The process stopped without finishing the run (killed, crashed hard, machine lost).
    INTERRUPTED = "interrupted"


_OPERATIONS = frozenset(Operation)
_RECORDABLE_OUTCOMES = frozenset({Outcome.SUCCEEDED, Outcome.FAILED})
_FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED})
_log = logging.getLogger(__name__)


class AuditError(RuntimeError):
    """The audit trail cannot be opened, or what was asked of it does not exist."""


class UnknownRunError(AuditError, LookupError):
    pass


class UnknownEntryError(AuditError, LookupError):
    pass


# --- Exact JSON: Decimals are written as numbers digit for digit and read back as Decimals, never as floats. ---

_encoder = msgspec.json.Encoder(decimal_format="number")
_sorted_encoder = msgspec.json.Encoder(decimal_format="number", order="sorted")
_decoder = msgspec.json.Decoder(float_hook=Decimal)


def dump_json(value: Any) -> str:
    """Compact JSON; Decimals exact, dict order kept."""
    return _encoder.encode(value).decode("utf-8")


def load_json(text: str | bytes) -> Any:
    """Parse JSON with every non-integer number as a Decimal."""
    return _decoder.decode(text)


def canonical_key(key: Mapping[str, Any]) -> str:
    """The key values as compact JSON sorted by name, each number in one spelling: 2, 2.0 and Decimal("2.00") are
    the same key, so that a lookup by key is an exact match on this text."""
    if not isinstance(key, Mapping):
        raise TypeError(f"a record key is a mapping of key property to value, not {type(key).__name__}")
    if all(type(name) is str and type(value) in _CANONICAL_AS_IS for name, value in key.items()):
        return _sorted_encoder.encode(key).decode("utf-8")
    return _sorted_encoder.encode({str(name): _canonical_value(value) for name, value in key.items()}).decode("utf-8")


_CANONICAL_AS_IS = frozenset({str, int})  # exact types: bool is an int but must stay true/false


def _canonical_value(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"a key value must be a finite number, not {value}")
        if value == value.to_integral_value():
            return int(value)
        # normalize() rounds to the context's precision (28 digits by default); give it every digit there is.
        return value.normalize(Context(prec=max(28, len(value.as_tuple().digits))))
    if isinstance(value, Mapping):
        return {str(name): _canonical_value(item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical_value(item) for item in value]
    return value  # dates, times, UUIDs: msgspec writes each in its single ISO form


# --- Redaction ---


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None), Decimal, datetime, date, time, UUID})
_FIELD_NAME_SEPARATORS = b"-_. "
_DROP_SEPARATORS = str.maketrans("", "", _FIELD_NAME_SEPARATORS.decode("ascii"))


def _normalize_field_name(name: str) -> str:
    return name.lower().translate(_DROP_SEPARATORS)


class PayloadRedactor:
    """Masks what must never be stored: fields with sensitive names (inside payloads only) and registered secret
    values (in every string). Numbers, dates and other fields are stored exactly as sent."""

    def __init__(self, sensitive_fields: Iterable[str] = DEFAULT_SENSITIVE_FIELDS) -> None:
        self.sensitive_names = tuple(sorted({_normalize_field_name(name) for name in sensitive_fields if name.strip()}))
        # A cheap test on the encoded payload, lower-cased and without separators: if no sensitive name occurs
        # anywhere in it, no key can be sensitive and the payload is stored as encoded; otherwise it is walked.
        self._sensitive_names_pattern = (
            re.compile(b"|".join(re.escape(name.encode("utf-8")) for name in self.sensitive_names))
            if self.sensitive_names
            else None
        )
        self._sensitive_field_cache: dict[str, bool] = {}
        self._plain_shapes: dict[tuple, bool] = {}
        # bytes.lower() folds ASCII only; a non-ASCII name could hide from the test, so such lists always walk.
        self._walk_always = not all(name.isascii() for name in self.sensitive_names)
        self._secrets_seen: frozenset[str] = frozenset()
        self._secret_needles: tuple[bytes, ...] = ()

    def is_sensitive_field(self, name: str) -> bool:
        known = self._sensitive_field_cache.get(name)
        if known is None:
            normalized = _normalize_field_name(name)
            known = any(normalized.endswith(sensitive) for sensitive in self.sensitive_names)
            if len(self._sensitive_field_cache) < 10_000:
                self._sensitive_field_cache[name] = known
        return known

    def refresh_secrets(self) -> None:
        """Take in secrets registered since the last call (plugins register tokens as they obtain them)."""
        current = registered_secrets()
        if current != self._secrets_seen:
            # JSON escapes quotes, backslashes and control characters, so look for each secret as it is encoded.
            self._secret_needles = tuple(_encoder.encode(secret)[1:-1] for secret in current)
            self._secrets_seen = current

    def payload_json(self, payload: Any) -> str:
        encoded = _encoder.encode(payload)
        holds_secret = any(needle in encoded for needle in self._secret_needles)
        if holds_secret or self._may_hold_sensitive_field(encoded):
            # Walk the payload as it was encoded (dataclasses, Structs and dates already plain JSON values; every
            # number a Decimal or int with its digits), so nothing escapes the walk and nothing else changes.
            encoded = _encoder.encode(self._scrub(_decoder.decode(encoded), mask_fields=True))
        return encoded.decode("utf-8")

    def payload_document(self, payload: Any) -> Any:
        """What is stored of a payload: the payload itself, or a copy with sensitive fields and secrets masked
        (encoded, it is ``payload_json(payload)`` to the byte)."""
        if not self._secret_needles and type(payload) is dict:
            # A flat record (every value a number, text, date...) whose field names are not sensitive has nothing to
            # mask: no need to encode it to find out (it is encoded once, with its block).
            shape = tuple(payload)
            plain = self._plain_shapes.get(shape)
            if plain is None:
                plain = (not self._walk_always and all(type(name) is str for name in shape)
                         and not any(self.is_sensitive_field(name) for name in shape))
                if len(self._plain_shapes) < 1_000:
                    self._plain_shapes[shape] = plain
            if plain and _SCALAR_TYPES.issuperset(map(type, payload.values())):
                return payload
        encoded = _encoder.encode(payload)
        holds_secret = any(needle in encoded for needle in self._secret_needles)
        if holds_secret or self._may_hold_sensitive_field(encoded):
            return self._scrub(_decoder.decode(encoded), mask_fields=True)
        return payload

    def _may_hold_sensitive_field(self, encoded: bytes) -> bool:
        if self._walk_always:
            return True
        if self._sensitive_names_pattern is None:
            return False
        return self._sensitive_names_pattern.search(encoded.lower().translate(None, _FIELD_NAME_SEPARATORS)) is not None

    def document_json(self, document: Any) -> str:
        """Schemas and summaries: secret values masked, field names left alone (a schema's properties must stay)."""
        encoded = _encoder.encode(document)
        if any(needle in encoded for needle in self._secret_needles):
            encoded = _encoder.encode(self._scrub(_decoder.decode(encoded), mask_fields=False))
        return encoded.decode("utf-8")

    def text(self, value: str | None) -> str | None:
        return None if value is None else redact_text(str(value))

    def _scrub(self, value: Any, *, mask_fields: bool) -> Any:
        if isinstance(value, str):
            return redact_text(value)
        if isinstance(value, dict):
            return {
                redact_text(str(name)): (
                    REDACTED if mask_fields and self.is_sensitive_field(str(name)) else self._scrub(item, mask_fields=mask_fields)
                )
                for name, item in value.items()
            }
        if isinstance(value, list):
            return [self._scrub(item, mask_fields=mask_fields) for item in value]
        return value


# --- Tables ---


class _UtcDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes on both backends (SQLite keeps no zone, so one is put back on reading)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


metadata = sa.MetaData()
_PRUNABLE_ROWS = "outcome != 'failed' AND (payload IS NOT NULL OR source IS NOT NULL)"
# On SQLite an INTEGER PRIMARY KEY is the rowid itself (fast appends); elsewhere 64 bits.
_ENTRY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

runs_table = sa.Table(
    "audit_runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("flow", sa.String, nullable=False),
    sa.Column("plugin", sa.String, nullable=False),
    sa.Column("started_at", _UtcDateTime, nullable=False),
    sa.Column("finished_at", _UtcDateTime),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("summary", sa.Text),
    # Why the run ended as it did (or was found interrupted), in one line; none for a plain success.
    sa.Column("reason", sa.Text),
    # The process writing the run: host name, pid, and what tells that pid's process from a later one (Linux: the
    # kernel boot, the pid namespace and the process's start time); its heartbeat, renewed while it lives.
    sa.Column("host", sa.String),
    sa.Column("pid", sa.Integer),
    sa.Column("process_start", sa.String),
    sa.Column("heartbeat_at", _UtcDateTime),
    # The pipeline run this target was part of (Meltano's run id), where Meltano keeps it (no password), and Meltano's
    # final state of it once read (SUCCESS, FAIL, DEAD): a tap that failed fails the whole pipeline.
    sa.Column("pipeline_run_id", sa.String),
    sa.Column("pipeline_database", sa.Text),
    sa.Column("pipeline_state", sa.String),
    sa.Index("ix_audit_runs_started_at", "started_at"),
    sa.Index(
        "ix_audit_runs_running",
        "status",
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    ),
)

schemas_table = sa.Table(
    "audit_schemas",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("stream", sa.String, primary_key=True),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("key_properties", sa.Text, nullable=False),
)

records_table = sa.Table(
    "audit_records",
    metadata,
    sa.Column("id", _ENTRY_ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String, nullable=False),
    sa.Column("flow", sa.String, nullable=False),
    sa.Column("stream", sa.String, nullable=False),
    sa.Column("record_key", sa.Text, nullable=False),
    sa.Column("record_version", sa.String),
    sa.Column("operation", sa.String, nullable=False),
    sa.Column("destination", sa.Text),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("payload", sa.Text),
    # The record as the target received it, where what was sent differs from it (API targets send a request body
    # derived from the record): replays feed this to the target again.
    sa.Column("source", sa.Text),
    sa.Column("written_at", _UtcDateTime, nullable=False),
    sa.Column("replay_of", sa.BigInteger),
    sa.Index("ix_audit_records_run_id", "run_id"),
    sa.Index("ix_audit_records_stream_key", "stream", "record_key"),
    # Partial indexes: nearly every entry succeeded and is no replay, so these stay small and writes stay fast.
    # Queries must repeat the exact condition (outcome = 'failed') for SQLite to use the first.
    sa.Index(
        "ix_audit_records_failed",
        "outcome",
        sqlite_where=sa.text("outcome = 'failed'"),
        postgresql_where=sa.text("outcome = 'failed'"),
    ),
    sa.Index(
        "ix_audit_records_replay_of",
        "replay_of",
        sqlite_where=sa.text("replay_of IS NOT NULL"),
        postgresql_where=sa.text("replay_of IS NOT NULL"),
    ),
    # What retention may still empty (see prune_documents, which repeats the condition): entries no longer failed
    # that keep a payload or source. Rows that are emptied leave it.
    sa.Index(
        "ix_audit_records_prunable",
        "written_at",
        sqlite_where=sa.text(_PRUNABLE_ROWS),
        postgresql_where=sa.text(_PRUNABLE_ROWS),
    ),
)

# The entries of one batch (or of several, merged) and one stream, column by column (see audit_blocks). The large
# columns come last: a query reading the others does not read them.
blocks_table = sa.Table(
    "audit_blocks",
    metadata,
    # Never reused (SQLite AUTOINCREMENT), so that a reader's cache of a block can never meet another block by its id.
    sa.Column("block_id", _ENTRY_ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String, nullable=False),
    sa.Column("stream", sa.String, nullable=False),
    sa.Column("first_id", sa.BigInteger, nullable=False),
    sa.Column("last_id", sa.BigInteger, nullable=False),
    sa.Column("entry_count", sa.Integer, nullable=False),
    sa.Column("written_at", _UtcDateTime, nullable=False),
    sa.Column("last_written_at", _UtcDateTime, nullable=False),
    # The destination of every entry, when they share one (else each entry has its own in entry_columns).
    sa.Column("destination", sa.Text),
    # Entries per operation (all succeeded: failed entries are rows of audit_records), as JSON.
    sa.Column("counts", sa.Text, nullable=False),
    # When retention removed the payloads and sources (documents is then NULL).
    sa.Column("pruned_at", _UtcDateTime),
    sa.Column("key_hashes", sa.LargeBinary, nullable=False),
    sa.Column("entry_columns", sa.LargeBinary, nullable=False),
    sa.Column("documents", sa.LargeBinary),
    sa.Index("ix_audit_blocks_first_id", "first_id"),
    sa.Index("ix_audit_blocks_run_id", "run_id"),
    sa.Index("ix_audit_blocks_stream", "stream", "block_id"),
    sqlite_autoincrement=True,
)

# Named counters: "entry_id", the next entry id to hand out; "stream:<name>", bumped whenever the blocks of a stream
# change, so that readers know when their cache of its key hashes is out of date.
counters_table = sa.Table(
    "audit_counters",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
_ENTRY_ID_COUNTER = "entry_id"
_STREAM_COUNTER = "stream:"


# --- What callers pass in and get back ---


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One record as a target wrote it (or tried to).

    ``key`` holds the key properties and their values; ``version`` the record's ETag or change timestamp;
    ``destination`` where it went (table, issue key, channel...); ``payload`` what was sent, as JSON-able values
    (Decimals stay exact), not as already-encoded text, so that sensitive fields can be masked. ``source`` is the record
    as received, for targets whose payload is a request derived from it; replays send ``source`` when there is one.
    ``keep_payload`` False: the entry wrote nothing and an earlier entry holds what it was given (target-databricks'
    records re-read unchanged): it is kept without its payload and source, and says so.
    """

    stream: str
    key: Mapping[str, Any]
    operation: Operation | str
    outcome: Outcome | str
    payload: Any = None
    source: Any = None
    version: str | None = None
    destination: str | None = None
    attempts: int = 1
    error: str | None = None
    keep_payload: bool = True


class StoredEntry:
    """An entry as stored. ``payload_json`` and ``source_json`` are the exact texts stored (an entry of a block reads
    them from the block's documents when asked); ``payload_note`` says why an entry of a block has no payload: one
    whose target said an earlier entry holds its payload keeps none, and retention removes them after the days
    set."""

    __slots__ = ("id", "run_id", "flow", "stream", "record_key", "version", "operation", "destination", "outcome",
                 "attempts", "error", "written_at", "replay_of", "_payload_json", "_source_json", "_documents",
                 "_position", "_payload_state", "_source_state")

    def __init__(self, id: int, run_id: str, flow: str, stream: str, record_key: str, version: str | None,
                 operation: str, destination: str | None, outcome: str, attempts: int, error: str | None,
                 payload_json: str | None, written_at: datetime, replay_of: int | None, source_json: str | None = None,
                 *, documents: _DocumentsOfBlock | None = None, position: int = 0,
                 payload_state: int = blocks.DOCUMENT_NONE, source_state: int = blocks.DOCUMENT_NONE) -> None:
        self.id = id
        self.run_id = run_id
        self.flow = flow
        self.stream = stream
        self.record_key = record_key
        self.version = version
        self.operation = operation
        self.destination = destination
        self.outcome = outcome
        self.attempts = attempts
        self.error = error
        self.written_at = written_at
        self.replay_of = replay_of
        self._payload_json = payload_json
        self._source_json = source_json
        self._documents = documents
        self._position = position
        self._payload_state = payload_state
        self._source_state = source_state

    def __repr__(self) -> str:
        return (f"StoredEntry(id={self.id}, run_id={self.run_id!r}, stream={self.stream!r}, key={self.record_key}, "
                f"operation={self.operation!r}, outcome={self.outcome!r})")

    def _fields(self) -> tuple:
        return (self.id, self.run_id, self.flow, self.stream, self.record_key, self.version, self.operation,
                self.destination, self.outcome, self.attempts, self.error, self.payload_json, self.written_at,
                self.replay_of, self.source_json)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoredEntry) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # equal entries read twice are equal; they are no dict keys

    @property
    def payload_json(self) -> str | None:
        if self._documents is not None and self._payload_state == blocks.DOCUMENT_KEPT:
            return self._documents.payload(self._position, self.id)
        return self._payload_json

    @property
    def source_json(self) -> str | None:
        if self._documents is not None and self._source_state == blocks.DOCUMENT_KEPT:
            return self._documents.source(self._position, self.id)
        return self._source_json

    @property
    def payload_held_elsewhere(self) -> bool:
        """The entry wrote nothing and its target said an earlier entry of its key holds its payload."""
        return self._payload_state == blocks.DOCUMENT_NOT_KEPT

    @property
    def payload_note(self) -> str | None:
        """Why an entry has no payload where one was recorded; None otherwise."""
        if self.payload_held_elsewhere:
            return "not kept: this entry wrote nothing, an earlier entry of its key holds what it was given"
        if self._documents is not None and self._payload_state == blocks.DOCUMENT_KEPT:
            pruned_at = self._documents.pruned_at()
            if pruned_at is not None:
                return f"removed by the payload retention setting on {pruned_at:%Y-%m-%d}"
        return None

    @property
    def key(self) -> dict[str, Any]:
        return load_json(self.record_key)

    @property
    def payload(self) -> Any:
        text = self.payload_json
        return None if text is None else load_json(text)

    @property
    def source(self) -> Any:
        text = self.source_json
        return None if text is None else load_json(text)

    @property
    def replay_json(self) -> str | None:
        """What a replay feeds the target: the record as received where it was kept, else what was sent."""
        source = self.source_json
        return source if source is not None else self.payload_json


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as it stands: ``status`` and ``reason`` as judged when read (a ``running`` run whose process is gone is
    ``interrupted``, a run whose pipeline failed is not ``succeeded``); ``recorded_status`` as stored."""

    run_id: str
    flow: str
    plugin: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    summary: Any
    outcomes: dict[str, int] = field(default_factory=dict)
    operations: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    recorded_status: str | None = None
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    pipeline_run_id: str | None = None
    pipeline_database: str | None = None
    pipeline_state: str | None = None

    @property
    def entries(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True, slots=True)
class PipelineOutcome:
    """How the pipeline run a target was part of ended, as its orchestrator recorded it (Meltano: SUCCESS, FAIL,
    DEAD; RUNNING while it runs)."""

    state: str
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ("SUCCESS", "FAIL", "DEAD")

    @property
    def failed(self) -> bool:
        return self.state in ("FAIL", "DEAD")


@dataclass(frozen=True, slots=True)
class PipelineLink:
    """The pipeline run a target's run is part of: its id, and where the orchestrator keeps its runs (as it may be
    shown: never with a password)."""

    run_id: str
    database: str


#: Audit runs to the outcome of their pipeline runs (for those it can read): see ``ml_connector_core.meltano_runs``.
PipelineLookup = Callable[[Sequence[RunInfo]], Mapping[str, PipelineOutcome]]


@dataclass(frozen=True, slots=True)
class RememberedSchema:
    run_id: str
    stream: str
    schema: dict[str, Any]
    key_properties: list[str]


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed, not yet replayed entries of one stream in one run."""

    run_id: str
    flow: str
    stream: str
    entries: int
    without_payload: int
    has_schema: bool


# --- The process writing a run, and whether it still lives ---


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """A process as another one can check it: host name, pid, and ``start`` telling it from a later process with the
    same pid (Linux: "<boot id>/<pid namespace>/<start time in clock ticks>"; None where that cannot be read)."""

    host: str
    pid: int
    start: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _process_start(pid))


def _pid_scope() -> str | None:
    """The kernel boot and pid namespace in which this process sees pids (Linux), else None."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """The state letter and start time (clock ticks after boot) of a pid's process, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself: count after the last.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], fields[19]  # fields 3 (state) and 22 (starttime)


def _process_start(pid: int) -> str | None:
    scope, stat = _pid_scope(), _proc_stat(pid)
    return None if scope is None or stat is None else f"{scope}/{stat[1]}"


def process_alive(host: str | None, pid: int | None, start: str | None) -> bool | None:
    """Whether the process that wrote a run still runs: True, False, or None when it cannot be told from here (another
    host, another pid namespace or kernel boot, a system without /proc where the pid still exists)."""
    if host is None or pid is None or host != socket.gethostname():
        return None
    scope = _pid_scope()
    if scope is None:  # no /proc: a pid that does not exist is gone; one that does may be another process by now
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return None
        return None
    if start is None:
        return None
    recorded_scope, _, ticks = start.rpartition("/")
    if recorded_scope != scope:
        return None
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):  # no such process, or a dead one not yet reaped by its parent
        return False
    return stat[1] == ticks  # the same start time: that very process; another one: the run's process is gone


def _seconds_from_env(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise AuditError(f"{name} must be a number of seconds, not {text!r}") from None
    if value <= 0:
        raise AuditError(f"{name} must be more than 0 seconds, not {text!r}")
    return value


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _why_interrupted(row: sa.Row, now: datetime, lease: timedelta) -> str | None:
    """Why a run recorded ``running`` is interrupted, or None while its process may be alive."""
    alive = process_alive(row.host, row.pid, row.process_start)
    if alive:
        return None
    last = row.heartbeat_at
    process = f"process {row.pid} on {row.host}" if row.host else "its process"
    if alive is False:
        return f"{process} is gone (last heartbeat {_moment(last or row.started_at)})"
    if last is None:  # recorded by a version without heartbeats
        if now - row.started_at > HEARTBEATLESS_LEASE:
            hours = HEARTBEATLESS_LEASE.total_seconds() / 3600
            return f"no heartbeat recorded (a run of an earlier version) and started over {hours:g} h ago"
        return None
    if now - last > lease:
        return f"no heartbeat from {process} since {_moment(last)} (lease {lease.total_seconds():g} s)"
    return None


def pipeline_failed_reason(pipeline_run_id: str | None, outcome: PipelineOutcome) -> str:
    ended = "was found dead" if outcome.state == "DEAD" else "failed"
    detail = f": {outcome.error}" if outcome.error else ""
    return (f"the pipeline {ended} (Meltano run {pipeline_run_id} {outcome.state}{detail}): this target wrote what it "
            "received, the rest was not read")


def _judged(row: sa.Row, now: datetime, lease: timedelta,
            pipelines: Mapping[str, PipelineOutcome]) -> tuple[str, str | None]:
    """The run's status and reason as they stand: recorded, unless its process is gone or its pipeline failed."""
    status, reason = row.status, row.reason
    if status == RunStatus.RUNNING.value:
        gone = _why_interrupted(row, now, lease)
        return (RunStatus.INTERRUPTED.value, gone) if gone else (status, reason)
    outcome = pipelines.get(row.run_id) if row.pipeline_state is None else None
    if outcome is not None and outcome.failed and status == RunStatus.SUCCEEDED.value:
        return RunStatus.PARTIAL.value, pipeline_failed_reason(row.pipeline_run_id, outcome)
    return status, reason


# --- The store ---


def resolve_audit_url(url: str | None = None) -> str:
    """The caller's URL, else ``$MLC_AUDIT_URL``, else the SQLite file under the current working directory."""
    if url:
        return url
    if os.environ.get(AUDIT_URL_ENV):
        return os.environ[AUDIT_URL_ENV]
    return f"sqlite:///{(Path.cwd() / DEFAULT_AUDIT_PATH).as_posix()}"


def describe_url(url: str) -> str:
    """The URL as it may be shown: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _new_run_id(started_at: datetime) -> str:
    # Sorts by start time and is short enough to type.
    return f"{started_at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


class AuditTrail:
    """The audit store, on SQLite or PostgreSQL through one SQLAlchemy Core code path.

    ``must_exist`` (for readers such as ``mlc-audit``) refuses to create a new SQLite file where none was written.
    Tables are created on first use; several processes may write to one store at the same time.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        sensitive_fields: Iterable[str] = DEFAULT_SENSITIVE_FIELDS,
        must_exist: bool = False,
        lease_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.url = resolve_audit_url(url)
        self.redactor = PayloadRedactor(sensitive_fields)
        self.lease = timedelta(seconds=lease_seconds or _seconds_from_env(LEASE_ENV, DEFAULT_LEASE_SECONDS))
        self.heartbeat_seconds = heartbeat_seconds or _seconds_from_env(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_SECONDS)
        self._heartbeats: set[_Heartbeat] = set()
        # What readers keep of blocks: their decoded entry columns and documents (by block id: a block's entries
        # never change, and ids are never reused), the key hashes of the streams looked up, the flow of each run.
        self._block_cache: OrderedDict[int, _CachedBlock] = OrderedDict()
        self._documents_cache: OrderedDict[int, tuple[blocks.BlockDocuments | None, datetime | None]] = OrderedDict()
        self._key_index = _KeyIndex()
        self._flows: dict[str, str] = {}
        self._engine = _open_engine(self.url, must_exist=must_exist)
        try:
            with self._writing() as conn:
                if conn.dialect.name == "postgresql":
                    # Concurrent CREATE TABLEs of the same name collide in PostgreSQL's catalog; take turns.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7236916023409881)"))
                metadata.create_all(conn)
                _migrate(conn)
        except sa_exc.DBAPIError as exc:
            self._engine.dispose()
            raise AuditError(f"cannot open the audit trail at {describe_url(self.url)}: {_reason(exc)}") from None

    def __repr__(self) -> str:
        return f"AuditTrail({describe_url(self.url)!r})"

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        for heartbeat in list(self._heartbeats):
            heartbeat.stop()
        self._engine.dispose()

    # Writing

    def start_run(self, flow: str, plugin: str, *, run_id: str | None = None,
                  preferred_run_id: str | None = None, pipeline: PipelineLink | None = None,
                  pipeline_lookup: PipelineLookup | None = None) -> AuditRun:
        """A new run: ``run_id`` exactly, else ``preferred_run_id`` (e.g. Meltano's run id, so that both name the
        same run) while no run has it yet, then with a suffix (``<id>-2``, ``-3``, ...) for the second target of one
        Meltano run, or a replay started from its shell; else an id of its own.

        First, earlier runs are settled (``settle_runs``). The run records this process and ``pipeline``, the
        pipeline run it is part of; its heartbeat is renewed until it finishes."""
        self.settle_runs(pipeline_lookup)
        started_at = _utc_now()
        process = ProcessIdentity.current()
        if run_id or not preferred_run_id:
            candidates: Iterable[str] = [run_id or _new_run_id(started_at)]
        else:
            candidates = (preferred_run_id if n == 1 else f"{preferred_run_id}-{n}" for n in range(1, 1000))
        for candidate in candidates:
            try:
                with self._writing() as conn:
                    conn.execute(
                        runs_table.insert().values(
                            run_id=candidate, flow=flow, plugin=plugin, started_at=started_at,
                            status=RunStatus.RUNNING.value, host=process.host, pid=process.pid,
                            process_start=process.start, heartbeat_at=started_at,
                            pipeline_run_id=None if pipeline is None else pipeline.run_id,
                            pipeline_database=None if pipeline is None else pipeline.database,
                        )
                    )
            except sa_exc.IntegrityError:
                if run_id or not preferred_run_id or not self._has_run(candidate):
                    raise
                continue  # taken by an earlier target of the same run (or one starting right now): the next suffix
            run = AuditRun(self, candidate, flow, plugin)
            run._heartbeat = _Heartbeat(self, candidate, self.heartbeat_seconds)
            return run
        raise AuditError(f"run id {preferred_run_id!r} and its first 998 suffixes are taken in {self!r}")

    def settle_runs(self, pipeline_lookup: PipelineLookup | None = None) -> list[RunInfo]:
        """Record what readers judge when they read: runs still ``running`` whose process is gone become
        ``interrupted`` (with why), and, with ``pipeline_lookup``, runs of the last week whose pipeline run has ended
        get its final state, ``succeeded`` ones becoming ``partial`` when it failed. Live runs are left alone.
        Returns the runs changed, as they are now."""
        now = _utc_now()
        runs = runs_table.c
        with self._reading() as conn:
            running = conn.execute(sa.select(runs_table).where(runs.status == RunStatus.RUNNING.value)).all()
            unsettled = []
            if pipeline_lookup is not None:
                unsettled = conn.execute(
                    sa.select(runs_table).where(
                        runs.pipeline_run_id.is_not(None), runs.pipeline_state.is_(None),
                        runs.status != RunStatus.RUNNING.value, runs.started_at > now - timedelta(days=7),
                    )
                ).all()
        changed: list[str] = []
        for row in running:
            why = _why_interrupted(row, now, self.lease)
            if why is None:
                continue
            # Only if no heartbeat came in since it was read: a live run is never marked.
            unchanged = sa.and_(
                runs.run_id == row.run_id, runs.status == RunStatus.RUNNING.value,
                runs.heartbeat_at.is_(None) if row.heartbeat_at is None else runs.heartbeat_at == row.heartbeat_at,
            )
            with self._writing() as conn:
                update = runs_table.update().where(unchanged).values(status=RunStatus.INTERRUPTED.value, reason=why)
                if conn.execute(update).rowcount:
                    changed.append(row.run_id)
        if unsettled:
            outcomes = pipeline_lookup(self._with_counts_of(unsettled))
            for row in unsettled:
                outcome = outcomes.get(row.run_id)
                if outcome is None or not outcome.ended:
                    continue
                values: dict[str, Any] = {"pipeline_state": outcome.state}
                if outcome.failed and row.status == RunStatus.SUCCEEDED.value:
                    values.update(status=RunStatus.PARTIAL.value,
                                  reason=pipeline_failed_reason(row.pipeline_run_id, outcome))
                with self._writing() as conn:
                    update = runs_table.update().where(
                        runs.run_id == row.run_id, runs.pipeline_state.is_(None), runs.status == row.status
                    )
                    if conn.execute(update.values(**values)).rowcount and "status" in values:
                        changed.append(row.run_id)
        if not changed:
            return []
        with self._reading() as conn:
            rows = conn.execute(sa.select(runs_table).where(runs.run_id.in_(changed))).all()
            return self._with_counts(conn, rows)

    def _renew_heartbeat(self, run_id: str) -> None:
        """The run's process is alive: a run marked interrupted meanwhile (its heartbeat was late) is running again."""
        runs = runs_table.c
        alive = (RunStatus.RUNNING.value, RunStatus.INTERRUPTED.value)
        update = runs_table.update().where(runs.run_id == run_id, runs.status.in_(alive))
        with self._writing() as conn:
            conn.execute(update.values(heartbeat_at=_utc_now(), status=RunStatus.RUNNING.value, reason=None))

    def mark_replayed(self, entry_ids: Iterable[int], replay_run_id: str) -> int:
        """Record that a replay run delivered these failed entries: each becomes ``replayed``, and the replay run gets
        a ``succeeded`` entry with the same payload whose ``replay_of`` names it. Entries that are not (or no longer)
        failed are left alone; returns how many were marked."""
        replay_run = self.run(replay_run_id)
        ids = sorted({int(entry_id) for entry_id in entry_ids})
        written_at = _utc_now()
        marked = 0
        records = records_table.c
        with self._writing() as conn:
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                still_failed = sa.and_(records.id.in_(chunk), records.outcome == Outcome.FAILED.value)
                failed = conn.execute(sa.select(records_table).where(still_failed).order_by(records.id)).all()
                if not failed:
                    continue
                first_id = _allocate_entry_ids(conn, len(failed))
                conn.execute(records_table.insert(), [
                    {"id": first_id + n, "run_id": replay_run.run_id, "flow": row.flow, "stream": row.stream,
                     "record_key": row.record_key, "record_version": row.record_version, "operation": row.operation,
                     "destination": row.destination, "outcome": Outcome.SUCCEEDED.value, "attempts": 1,
                     "payload": row.payload, "source": row.source, "written_at": written_at, "replay_of": row.id}
                    for n, row in enumerate(failed)
                ])
                marked += conn.execute(
                    records_table.update().where(still_failed).values(outcome=Outcome.REPLAYED.value)
                ).rowcount
        return marked

    # Reading

    def run(self, run_id: str, *, pipeline_lookup: PipelineLookup | None = None) -> RunInfo:
        """The run with its counts, its status as it stands (see ``runs``)."""
        with self._reading() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.run_id == run_id)).one_or_none()
            if row is None:
                raise UnknownRunError(f"no run {run_id!r} in the audit trail at {describe_url(self.url)}")
            return self._with_counts(conn, [row], pipeline_lookup)[0]

    def _has_run(self, run_id: str) -> bool:
        with self._reading() as conn:
            return conn.execute(sa.select(runs_table.c.run_id).where(runs_table.c.run_id == run_id)).first() is not None

    def runs(self, limit: int | None = 20, *, flow: str | None = None,
             pipeline_lookup: PipelineLookup | None = None) -> list[RunInfo]:
        """The latest runs first, with their entry counts per outcome and per operation, each with its status as it
        stands: a ``running`` run whose process is gone is ``interrupted``, and with ``pipeline_lookup`` a
        ``succeeded`` run whose pipeline failed is ``partial`` (``recorded_status`` keeps what is stored)."""
        query = sa.select(runs_table).order_by(runs_table.c.started_at.desc(), runs_table.c.run_id.desc())
        if flow is not None:
            query = query.where(runs_table.c.flow == flow)
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return self._with_counts(conn, conn.execute(query).all(), pipeline_lookup)

    def entry(self, entry_id: int) -> StoredEntry:
        with self._reading() as conn:
            row = conn.execute(sa.select(records_table).where(records_table.c.id == int(entry_id))).one_or_none()
            if row is not None:
                return _stored_entry(row)
            found = self._block_entries_by_id(conn, [int(entry_id)])
        if not found:
            raise UnknownEntryError(f"no entry {entry_id} in the audit trail at {describe_url(self.url)}")
        return found[0]

    def entries(
        self,
        *,
        run_id: str | None = None,
        stream: str | None = None,
        key: Mapping[str, Any] | None = None,
        outcome: Outcome | str | None = None,
        entry_ids: Iterable[int] | None = None,
        limit: int | None = None,
    ) -> Iterator[StoredEntry]:
        """Entries in the order they were written, streamed from the database (iterate; do not hold them all)."""
        if run_id is not None:
            self.run(run_id)
        in_blocks = outcome is None or str(outcome) == Outcome.SUCCEEDED.value  # blocks hold no failed entries
        if entry_ids is not None:
            found = self._entries_by_id(sorted({int(entry_id) for entry_id in entry_ids}), in_blocks)
            selected = (e for e in found if _matches(e, run_id, stream, key, outcome))
            return selected if limit is None else itertools.islice(selected, limit)
        query = sa.select(records_table).where(*self._filters(run_id, stream, key, outcome, None))
        query = query.order_by(records_table.c.id)
        if limit is not None:
            query = query.limit(limit)
        rows = self._stream(query)
        if not in_blocks:
            return rows
        merged = heapq.merge(rows, self._block_entries(run_id, stream, key), key=_entry_id)
        return merged if limit is None else itertools.islice(merged, limit)

    def failures(
        self,
        run_id: str | None = None,
        stream: str | None = None,
        key: Mapping[str, Any] | None = None,
        *,
        entry_ids: Iterable[int] | None = None,
    ) -> Iterator[StoredEntry]:
        """Failed entries that no replay has delivered yet, oldest first, streamed."""
        return self.entries(run_id=run_id, stream=stream, key=key, outcome=Outcome.FAILED, entry_ids=entry_ids)

    def failure_groups(
        self,
        run_id: str | None = None,
        stream: str | None = None,
        key: Mapping[str, Any] | None = None,
        *,
        entry_ids: Iterable[int] | None = None,
    ) -> list[FailureGroup]:
        """What ``failures`` would yield, counted per run and stream, and whether each can be replayed."""
        if run_id is not None:
            self.run(run_id)
        records = records_table.c
        without_payload = sa.func.sum(
            sa.case((sa.and_(records.payload.is_(None), records.source.is_(None)), 1), else_=0)
        )
        counts = (
            sa.select(records.run_id, records.flow, records.stream, sa.func.count(), without_payload)
            .where(*self._filters(run_id, stream, key, Outcome.FAILED, entry_ids))
            .group_by(records.run_id, records.flow, records.stream)
            .subquery()
        )
        query = (
            sa.select(counts, schemas_table.c.run_id.is_not(None))
            .select_from(
                counts.outerjoin(
                    schemas_table,
                    sa.and_(schemas_table.c.run_id == counts.c.run_id, schemas_table.c.stream == counts.c.stream),
                )
            )
            .order_by(counts.c.run_id, counts.c.stream)
        )
        with self._reading() as conn:
            return [
                FailureGroup(run, flow, stream_name, int(total), int(missing or 0), bool(has_schema))
                for run, flow, stream_name, total, missing, has_schema in conn.execute(query)
            ]

    def replays_of(self, entry_id: int) -> list[StoredEntry]:
        """The entries of replay runs that delivered this failed entry."""
        query = sa.select(records_table).where(records_table.c.replay_of == int(entry_id)).order_by(records_table.c.id)
        with self._reading() as conn:
            return [_stored_entry(row) for row in conn.execute(query)]

    def schema(self, run_id: str, stream: str) -> RememberedSchema | None:
        query = sa.select(schemas_table).where(schemas_table.c.run_id == run_id, schemas_table.c.stream == stream)
        with self._reading() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return RememberedSchema(row.run_id, row.stream, load_json(row.schema), load_json(row.key_properties))

    def failed_count(self, run_id: str) -> int:
        """Entries of the run still failed (not delivered by a later replay or redo)."""
        records = records_table.c
        query = sa.select(sa.func.count()).where(records.run_id == run_id, records.outcome == Outcome.FAILED.value)
        with self._reading() as conn:
            return int(conn.execute(query).scalar_one())

    def knows_stream(self, stream: str) -> bool:
        query = sa.select(records_table.c.id).where(records_table.c.stream == stream).limit(1)
        in_blocks = sa.select(counters_table.c.value).where(counters_table.c.name == _STREAM_COUNTER + stream)
        with self._reading() as conn:
            return conn.execute(query).first() is not None or conn.execute(in_blocks).first() is not None

    # Keeping the trail lean

    def prune_documents(self, flow: str, older_than: timedelta) -> int:
        """Retention: remove the payloads and sources of the flow's entries written more than ``older_than`` ago,
        except those of failed entries (kept until a replay delivers them). The entries stay, with their keys,
        versions, operations and outcomes. Returns how many blocks and rows were emptied."""
        cutoff = _utc_now() - older_than
        runs_of_flow = sa.select(runs_table.c.run_id).where(runs_table.c.flow == flow)
        block = blocks_table.c
        records = records_table.c
        with self._writing() as conn:
            emptied = conn.execute(
                blocks_table.update()
                .where(block.documents.is_not(None), block.last_written_at < cutoff, block.run_id.in_(runs_of_flow))
                .values(documents=None, pruned_at=_utc_now())
            ).rowcount
            emptied += conn.execute(
                records_table.update()
                .where(sa.text(_PRUNABLE_ROWS), records.written_at < cutoff, records.flow == flow)
                .values(payload=None, source=None)
            ).rowcount
        if emptied:
            self._release_free_pages()
        return emptied

    def merge_blocks(self, run_id: str | None = None) -> int:
        """Merge the small blocks of a run (each batch of an API target, the last batch of a stream), or of every run:
        blocks of fewer entries than a frame of payloads (``audit_blocks.FRAME_ENTRIES``) become blocks of up to
        ``BLOCK_ENTRIES``, which compress far better. Entry ids do not change. Returns how many blocks were merged
        away."""
        block = blocks_table.c
        query = (
            sa.select(block.block_id, block.run_id, block.stream, block.first_id, block.last_id, block.entry_count,
                      block.documents.is_(None).label("without_documents"))
            .where(block.entry_count < blocks.FRAME_ENTRIES)
            .order_by(block.run_id, block.stream, block.first_id)
        )
        if run_id is not None:
            query = query.where(block.run_id == run_id)
        with self._reading() as conn:
            small = conn.execute(query).all()
        groups: list[list[int]] = []
        group: list[int] = []
        previous = None
        entries = first_id = 0
        for row in small:
            same = (row.run_id, row.stream, row.without_documents)
            if (group and (same != previous or entries + row.entry_count > blocks.BLOCK_ENTRIES
                           or row.last_id - first_id > blocks.MAX_BLOCK_SPAN)):
                groups.append(group)
                group = []
            if not group:
                entries, first_id = 0, row.first_id
            group.append(row.block_id)
            entries += row.entry_count
            previous = same
        if group:
            groups.append(group)
        merged = 0
        for block_ids in groups:
            if len(block_ids) > 1:
                merged += self._merge(block_ids)
        return merged

    def compact(self) -> CompactResult:
        """Make an existing trail lean: succeeded entries written one per row by an earlier version move into blocks
        (ids, payloads and every other value unchanged), small blocks are merged, and a SQLite file gives the space
        back (VACUUM). Failed entries, replayed ones and replays' answers stay rows. Safe to run again, or to stop."""
        size_before = self.bytes_used()
        moved = self._move_rows_into_blocks()
        merged = self.merge_blocks()
        if self._engine.dialect.name == "sqlite":
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")  # kept by VACUUM: later retention frees space
                cursor.execute("VACUUM")
                cursor.close()
            except Exception as exc:  # noqa: BLE001 - sqlite3's own errors: the file is busy, or the disk full
                raise AuditError(f"moved {moved} entries into blocks and merged {merged} blocks, but could not give "
                                 f"the space back (VACUUM): {redact_text(str(exc))}; run it again when no target "
                                 "writes to the trail") from None
            finally:
                raw.close()
        return CompactResult(moved, merged, size_before, self.bytes_used())

    def bytes_used(self) -> int | None:
        """The store's size in bytes: a SQLite file's pages in use (what VACUUM would leave), PostgreSQL's tables
        with their indexes; None where it cannot be read."""
        with self._reading() as conn:
            if conn.dialect.name == "sqlite":
                pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
                free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
                size = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
                return (pages - free) * size
            if conn.dialect.name == "postgresql":
                total = 0
                for table in metadata.sorted_tables:
                    total += conn.execute(sa.text("SELECT pg_total_relation_size(:name)"),
                                          {"name": table.name}).scalar_one() or 0
                return total
        return None

    def _release_free_pages(self) -> None:
        """A SQLite file created with incremental auto-vacuum gives pruned pages back to the file system; others
        reuse them for later entries (``mlc-audit compact`` turns it on for an older file)."""
        if self._engine.dialect.name != "sqlite":
            return
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            if cursor.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                cursor.execute("PRAGMA incremental_vacuum").fetchall()
            cursor.close()
        finally:
            raw.close()

    def _merge(self, block_ids: list[int]) -> int:
        block = blocks_table.c
        with self._writing() as conn:
            rows = conn.execute(sa.select(blocks_table).where(block.block_id.in_(block_ids))
                                .order_by(block.first_id)).all()
            if len(rows) != len(block_ids):
                return 0  # merged meanwhile by another process
            conn.execute(blocks_table.insert().values(**_merged_block(rows)))
            conn.execute(blocks_table.delete().where(block.block_id.in_(block_ids)))
            _bump_counter(conn, _STREAM_COUNTER + rows[0].stream)
        return len(rows)

    def _move_rows_into_blocks(self) -> int:
        records = records_table.c
        moved = 0
        after = 0
        movable = sa.and_(records.outcome == Outcome.SUCCEEDED.value, records.replay_of.is_(None))
        while True:
            with self._writing() as conn:
                rows = conn.execute(
                    sa.select(records_table).where(movable, records.id > after).order_by(records.id)
                    .limit(4 * blocks.BLOCK_ENTRIES)
                ).all()
                if not rows:
                    return moved
                by_run_and_stream: dict[tuple[str, str], list[sa.Row]] = {}
                for row in rows:
                    by_run_and_stream.setdefault((row.run_id, row.stream), []).append(row)
                for (run_id, stream), of_stream in by_run_and_stream.items():
                    for chunk in _spans(of_stream):
                        conn.execute(blocks_table.insert().values(**_block_of_rows(run_id, stream, chunk)))
                    _bump_counter(conn, _STREAM_COUNTER + stream)
                ids = [row.id for row in rows]
                for start in range(0, len(ids), _ID_CHUNK):
                    conn.execute(records_table.delete().where(records.id.in_(ids[start : start + _ID_CHUNK])))
                moved += len(rows)
                after = ids[-1]

    # Reading blocks

    def _block_entries(self, run_id: str | None, stream: str | None,
                       key: Mapping[str, Any] | None) -> Iterator[StoredEntry]:
        """The entries of blocks that match, in id order."""
        block = blocks_table.c
        if key is not None:
            key_text = canonical_key(key)
            with self._reading() as conn:
                found = []
                for row in self._block_headers(conn, self._key_index.blocks_with(conn, stream, key_text)):
                    if run_id is None or row.run_id == run_id:
                        found.extend(self._entries_of_block(conn, row, key_text))
            yield from sorted(found, key=_entry_id)
            return
        query = sa.select(*_BLOCK_HEADER).order_by(block.first_id)
        if run_id is not None:
            query = query.where(block.run_id == run_id)
        if stream is not None:
            query = query.where(block.stream == stream)
        with self._reading() as conn:
            headers = conn.execution_options(yield_per=100).execute(query)
            yield from _in_id_order(headers, lambda row: self._entries_of_block(conn, row))

    def _entries_by_id(self, ids: list[int], in_blocks: bool) -> list[StoredEntry]:
        found: list[StoredEntry] = []
        with self._reading() as conn:
            for start in range(0, len(ids), _ID_CHUNK):
                chunk = ids[start : start + _ID_CHUNK]
                rows = conn.execute(sa.select(records_table).where(records_table.c.id.in_(chunk))).all()
                found.extend(_stored_entry(row) for row in rows)
            if in_blocks:
                in_rows = {entry.id for entry in found}
                found.extend(self._block_entries_by_id(conn, [i for i in ids if i not in in_rows]))
        found.sort(key=_entry_id)
        return found

    def _block_entries_by_id(self, conn: Connection, ids: list[int]) -> list[StoredEntry]:
        block = blocks_table.c
        wanted = set(ids)
        found: dict[int, StoredEntry] = {}
        opened: set[int] = set()
        for entry_id in ids:
            if entry_id in found:
                continue
            candidates = conn.execute(
                sa.select(*_BLOCK_HEADER).where(block.first_id <= entry_id,
                                                block.first_id >= entry_id - blocks.MAX_BLOCK_SPAN,
                                                block.last_id >= entry_id)
            ).all()
            for row in candidates:
                if row.block_id in opened:
                    continue
                opened.add(row.block_id)
                for entry in self._entries_of_block(conn, row):
                    if entry.id in wanted:
                        found[entry.id] = entry
        return [found[i] for i in sorted(found)]

    def _block_headers(self, conn: Connection, block_ids: list[int]) -> list[sa.Row]:
        headers = [self._block_cache[block_id].header for block_id in block_ids if block_id in self._block_cache]
        missing = [block_id for block_id in block_ids if block_id not in self._block_cache]
        for start in range(0, len(missing), _ID_CHUNK):
            chunk = missing[start : start + _ID_CHUNK]
            headers.extend(conn.execute(sa.select(*_BLOCK_HEADER).where(blocks_table.c.block_id.in_(chunk))).all())
        return sorted(headers, key=lambda row: row.first_id)

    def _entries_of_block(self, conn: Connection, header: sa.Row, key_text: str | None = None) -> list[StoredEntry]:
        """The block's entries (only those of the key ``key_text``, if given), in id order."""
        cached = self._block_cache.get(header.block_id)
        if cached is None:
            blob = conn.execute(sa.select(blocks_table.c.entry_columns)
                                .where(blocks_table.c.block_id == header.block_id)).scalar_one()
            cached = self._block_cache[header.block_id] = _CachedBlock(header, blocks.unpack_entries(blob))
            if len(self._block_cache) > _CACHED_BLOCKS:
                self._block_cache.popitem(last=False)
        else:
            self._block_cache.move_to_end(header.block_id)
        columns = cached.columns
        flow = self._flow_of(conn, header.run_id)
        documents = _DocumentsOfBlock(self, header.block_id)
        first_id, run_id, stream, written_at = header.first_id, header.run_id, header.stream, header.written_at
        destinations = columns.destinations
        succeeded = Outcome.SUCCEEDED.value
        offsets = columns.offsets
        positions = range(len(offsets)) if key_text is None else cached.positions_of(key_text)
        return [
            StoredEntry(
                first_id + offsets[i], run_id, flow, stream, columns.keys[i], columns.versions[i],
                columns.operations[i], header.destination if destinations is None else destinations[i], succeeded,
                columns.attempts[i], columns.errors[i], None,
                written_at if not columns.written[i] else written_at + timedelta(microseconds=columns.written[i]),
                None, None, documents=documents, position=i, payload_state=columns.payloads[i],
                source_state=columns.sources[i],
            )
            for i in positions
        ]

    def _documents_of(self, block_id: int) -> tuple[blocks.BlockDocuments | None, datetime | None] | None:
        """A block's payloads and sources, and when retention removed them; None if the block is gone (merged)."""
        cached = self._documents_cache.get(block_id)
        if cached is not None:
            self._documents_cache.move_to_end(block_id)
            return cached
        with self._reading() as conn:
            row = conn.execute(sa.select(blocks_table.c.documents, blocks_table.c.pruned_at)
                               .where(blocks_table.c.block_id == block_id)).one_or_none()
        if row is None:
            return None
        cached = (None if row.documents is None else blocks.unpack_documents(row.documents), row.pruned_at)
        self._documents_cache[block_id] = cached
        if len(self._documents_cache) > _CACHED_DOCUMENTS:
            self._documents_cache.popitem(last=False)
        return cached

    def _flow_of(self, conn: Connection, run_id: str) -> str:
        flow = self._flows.get(run_id)
        if flow is None:
            flow = conn.execute(sa.select(runs_table.c.flow).where(runs_table.c.run_id == run_id)).scalar()
            flow = self._flows[run_id] = flow or ""
        return flow

    # Plumbing

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(audit_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def _stream(self, query: sa.Select) -> Iterator[StoredEntry]:
        with self._reading() as conn:
            for row in conn.execution_options(yield_per=500).execute(query):
                yield _stored_entry(row)

    @staticmethod
    def _filters(run_id, stream, key, outcome, entry_ids) -> list[sa.ColumnElement[bool]]:
        records = records_table.c
        filters = []
        if run_id is not None:
            filters.append(records.run_id == run_id)
        if stream is not None:
            filters.append(records.stream == stream)
        if key is not None:
            filters.append(records.record_key == canonical_key(key))
        if outcome is not None:
            filters.append(records.outcome == str(outcome))
        if entry_ids is not None:
            filters.append(records.id.in_(sorted({int(entry_id) for entry_id in entry_ids})))
        return filters

    def _with_counts_of(self, run_rows: Sequence[sa.Row]) -> list[RunInfo]:
        with self._reading() as conn:
            return self._with_counts(conn, run_rows)

    def _with_counts(self, conn: Connection, run_rows: Sequence[sa.Row],
                     pipeline_lookup: PipelineLookup | None = None) -> list[RunInfo]:
        run_ids = [row.run_id for row in run_rows]
        outcomes: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
        operations: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
        records = records_table.c
        for start in range(0, len(run_ids), _ID_CHUNK):
            counts = conn.execute(
                sa.select(records.run_id, records.outcome, records.operation, sa.func.count())
                .where(records.run_id.in_(run_ids[start : start + _ID_CHUNK]))
                .group_by(records.run_id, records.outcome, records.operation)
            )
            for run_id, outcome, operation, count in counts:
                outcomes[run_id][outcome] = outcomes[run_id].get(outcome, 0) + count
                operations[run_id][operation] = operations[run_id].get(operation, 0) + count
            block_counts = conn.execute(
                sa.select(blocks_table.c.run_id, blocks_table.c.counts)
                .where(blocks_table.c.run_id.in_(run_ids[start : start + _ID_CHUNK]))
            )
            for run_id, counted in block_counts:
                for operation, count in load_json(counted).items():
                    outcomes[run_id][Outcome.SUCCEEDED.value] = outcomes[run_id].get(Outcome.SUCCEEDED.value, 0) + count
                    operations[run_id][operation] = operations[run_id].get(operation, 0) + count
        recorded = [
            RunInfo(
                row.run_id, row.flow, row.plugin, row.started_at, row.finished_at, row.status,
                None if row.summary is None else load_json(row.summary),
                outcomes[row.run_id], operations[row.run_id],
                reason=row.reason, recorded_status=row.status, host=row.host, pid=row.pid,
                heartbeat_at=row.heartbeat_at, pipeline_run_id=row.pipeline_run_id,
                pipeline_database=row.pipeline_database, pipeline_state=row.pipeline_state,
            )
            for row in run_rows
        ]
        unsettled = [run for run in recorded if run.pipeline_run_id and run.pipeline_state is None
                     and run.status != RunStatus.RUNNING.value]
        pipelines = pipeline_lookup(unsettled) if pipeline_lookup is not None and unsettled else {}
        now = _utc_now()
        judged = []
        for row, run in zip(run_rows, recorded):
            status, reason = _judged(row, now, self.lease, pipelines)
            judged.append(run if (status, reason) == (run.status, run.reason) else replace(run, status=status,
                                                                                           reason=reason))
        return judged


class AuditRun:
    """One run of one target: remembers its schemas and records its entries, then finishes.

    As a context manager it finishes the run when the block ends: failed if an exception escaped, else succeeded
    (unless ``finish`` was already called).
    """

    def __init__(self, trail: AuditTrail, run_id: str, flow: str, plugin: str) -> None:
        self.trail = trail
        self.run_id = run_id
        self.flow = flow
        self.plugin = plugin
        self.finished = False
        self._heartbeat: _Heartbeat | None = None

    def __repr__(self) -> str:
        return f"AuditRun(run_id={self.run_id!r}, flow={self.flow!r}, plugin={self.plugin!r})"

    def __enter__(self) -> AuditRun:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self.finished:
            return
        if exc is None:
            self.finish(RunStatus.SUCCEEDED)
        else:
            error = f"{exc_type.__name__}: {exc}"
            self.finish(RunStatus.FAILED, {"error": error}, reason=f"stopped: {_first_line(error)}")

    def remember_schema(self, stream: str, schema: Mapping[str, Any], key_properties: Sequence[str] = ()) -> None:
        """Keep the stream's SCHEMA so that a replay can send it again before the records (the latest one wins)."""
        redactor = self.trail.redactor
        redactor.refresh_secrets()
        row = {
            "run_id": self.run_id,
            "stream": stream,
            "schema": redactor.document_json(dict(schema)),
            "key_properties": dump_json(list(key_properties)),
        }
        where = sa.and_(schemas_table.c.run_id == self.run_id, schemas_table.c.stream == stream)
        with self.trail._writing() as conn:
            conn.execute(schemas_table.delete().where(where))
            conn.execute(schemas_table.insert().values(**row))

    def record(self, entries: Iterable[AuditEntry], *, replacing: Sequence[int] = ()) -> int:
        """Store a batch of entries in one transaction, removing the pending entries (``record_pending``) they are
        the outcome of; returns how many were stored."""
        prepared = self._prepared(entries)
        if not prepared and not replacing:
            return 0
        self._write(prepared, replacing, [])
        return len(prepared)

    def record_pending(self, entries: Iterable[AuditEntry]) -> list[int]:
        """Store, before an action that cannot be undone nor asked about afterwards (a card posted), the entries
        that stand if the process dies before its outcome is known: failed, saying the outcome is unknown.
        ``record(outcome, replacing=ids)`` replaces them in one transaction once it is known. Returns their ids.

        They are failed entries, so rows of their own (entries in blocks cannot be removed one by one)."""
        return self.record_and_pend((), pending=entries)

    def record_and_pend(self, entries: Iterable[AuditEntry], *, replacing: Sequence[int] = (),
                        pending: Iterable[AuditEntry]) -> list[int]:
        """``record(entries, replacing=...)`` and ``record_pending(pending)`` in one transaction: the outcome of one
        action with the pending entries of the next, one commit per action instead of two. Returns the pending
        entries' ids."""
        prepared_pending = self._prepared(pending)
        if any(item.outcome != Outcome.FAILED.value for item in prepared_pending):
            raise ValueError("a pending audit entry stands for an outcome not known yet: its outcome must be 'failed'")
        prepared = self._prepared(entries)
        if not prepared and not replacing and not prepared_pending:
            return []
        return self._write(prepared, replacing, prepared_pending)

    def _write(self, prepared: list[_PreparedEntry], replacing: Sequence[int],
               pending: list[_PreparedEntry]) -> list[int]:
        """One transaction: the pending entries ``replacing`` removed, ``prepared`` stored (failed ones as rows, the
        others in blocks), ``pending`` stored as rows; returns the ids of ``pending``."""
        written_at = _utc_now()
        # Compressed before the transaction, so that other writers wait for the inserts only.
        new_blocks = list(_new_blocks(self.run_id, prepared, written_at))
        with self.trail._writing() as conn:
            if replacing:
                conn.execute(records_table.delete().where(records_table.c.run_id == self.run_id,
                                                          records_table.c.id.in_(list(replacing))))
            if not prepared and not pending:
                return []
            first_id = _allocate_entry_ids(conn, len(prepared) + len(pending))
            rows = self._entry_rows(first_id, prepared, only_failed=True)
            pending_first = first_id + len(prepared)
            rows += self._entry_rows(pending_first, pending, only_failed=False)
            if rows:
                _insert_batch(conn, rows, written_at)
            for first_position, last_position, row in new_blocks:
                conn.execute(blocks_table.insert().values(first_id=first_id + first_position,
                                                          last_id=first_id + last_position, **row))
            for stream in sorted({row["stream"] for _, _, row in new_blocks}):
                _bump_counter(conn, _STREAM_COUNTER + stream)
        return list(range(pending_first, pending_first + len(pending)))

    def _entry_rows(self, first_id: int, prepared: list[_PreparedEntry], *, only_failed: bool) -> list[tuple]:
        """The rows (``_BATCH_COLUMNS``) of entries whose ids follow from ``first_id`` in order; with only_failed,
        of the failed ones alone (the others go into blocks)."""
        return [
            (first_id + position, self.run_id, self.flow, item.stream, item.record_key, item.version, item.operation,
             item.destination, item.outcome, item.attempts, item.error, item.payload, item.source)
            for position, item in enumerate(prepared)
            if not only_failed or item.outcome == Outcome.FAILED.value
        ]

    def finish(self, status: RunStatus | str = RunStatus.SUCCEEDED, summary: Mapping[str, Any] | None = None, *,
               reason: str | None = None) -> None:
        """Record how the run ended, and why in one line (``mlc-audit runs`` shows it); the heartbeat stops."""
        if status not in _FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {sorted(_FINAL_STATUSES)}, not {status!r}")
        redactor = self.trail.redactor
        redactor.refresh_secrets()
        now = _utc_now()
        values = {
            "finished_at": now,
            "heartbeat_at": now,
            "status": str(status),
            "summary": None if summary is None else redactor.document_json(dict(summary)),
            "reason": None if reason is None else redactor.text(_first_line(reason)),
        }
        try:
            with self.trail._writing() as conn:
                conn.execute(runs_table.update().where(runs_table.c.run_id == self.run_id).values(**values))
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()
        self.finished = True
        try:
            self.trail.merge_blocks(self.run_id)
        except sa_exc.DBAPIError as exc:  # the entries are stored all the same, in smaller blocks
            _log.warning("Could not merge the small blocks of audit run %s (mlc-audit compact does it later): %s",
                         self.run_id, _reason(exc))

    def _prepared(self, entries: Iterable[AuditEntry]) -> list[_PreparedEntry]:
        redactor = self.trail.redactor
        redactor.refresh_secrets()
        document, text = redactor.payload_document, redactor.text
        prepared = []
        for entry in entries:
            if entry.operation not in _OPERATIONS or entry.outcome not in _RECORDABLE_OUTCOMES:
                raise ValueError(_invalid_entry(entry))
            try:
                record_key = canonical_key(entry.key)
                payload = None if entry.payload is None else document(entry.payload)
                source = None if entry.source is None else document(entry.source)
                if entry.outcome == Outcome.FAILED.value:  # a row of its own: its texts
                    payload = None if payload is None else dump_json(payload)
                    source = None if source is None else dump_json(source)
            except (TypeError, ValueError, msgspec.EncodeError) as exc:
                raise ValueError(
                    f"cannot audit stream {entry.stream!r} key {entry.key!r}: {redact_text(str(exc))}"
                ) from None
            prepared.append(
                _PreparedEntry(
                    entry.stream, record_key, None if entry.version is None else str(entry.version),
                    str(entry.operation), text(entry.destination), str(entry.outcome), entry.attempts,
                    text(entry.error), payload, source, entry.keep_payload,
                )
            )
        return prepared


class _Heartbeat:
    """Renews a run's heartbeat every ``interval`` seconds from a daemon thread until stopped (or the process ends).
    One UPDATE of one row: cheap on SQLite and PostgreSQL alike."""

    def __init__(self, trail: AuditTrail, run_id: str, interval: float) -> None:
        self._trail = trail
        self._run_id = run_id
        self._interval = interval
        self._stopped = threading.Event()
        trail._heartbeats.add(self)
        self._thread = threading.Thread(target=self._beat, name=f"audit-heartbeat {run_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._trail._heartbeats.discard(self)

    def _beat(self) -> None:
        warned = False
        while not self._stopped.wait(self._interval):
            try:
                self._trail._renew_heartbeat(self._run_id)
            except Exception as exc:  # noqa: BLE001 - a store out of reach for a while must not stop the run
                if not warned:
                    _log.warning("Cannot renew the heartbeat of audit run %s (tried again every %g s): %s",
                                 self._run_id, self._interval, redact_text(_first_line(str(exc))))
                    warned = True


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else text


_BATCH_COLUMNS = (
    "id", "run_id", "flow", "stream", "record_key", "record_version", "operation", "destination", "outcome", "attempts",
    "error", "payload", "source",
)
_BATCH_STATEMENTS: dict[str, tuple[str, tuple[str, ...] | None, Any]] = {}


def _insert_batch(conn: Connection, rows: list[tuple], written_at: datetime) -> None:
    """INSERT a batch through the driver's executemany, with the statement SQLAlchemy compiled for this dialect.

    SQLAlchemy's per-row parameter processing would cost as much as SQLite's own work. Every batch column is a plain
    str, int or None that needs no conversion; written_at, the one that does, is the same for the whole batch and so
    is converted once.
    """
    dialect = conn.dialect
    prepared = _BATCH_STATEMENTS.get(dialect.name)
    if prepared is None:
        columns = (*_BATCH_COLUMNS, "written_at")
        compiled = records_table.insert().compile(dialect=dialect, column_keys=list(columns))
        order = tuple(compiled.positiontup) if compiled.positional else None
        if order is not None and set(order) != set(columns):
            raise RuntimeError(f"unexpected INSERT parameters for {dialect.name}: {order}")
        prepared = _BATCH_STATEMENTS[dialect.name] = (
            compiled.string, order, records_table.c.written_at.type.bind_processor(dialect)
        )
    sql, order, convert_time = prepared
    written = convert_time(written_at) if convert_time else written_at
    if order is None:
        params: list = [{**dict(zip(_BATCH_COLUMNS, row)), "written_at": written} for row in rows]
    elif order == (*_BATCH_COLUMNS, "written_at"):
        params = [(*row, written) for row in rows]
    else:
        index = {name: position for position, name in enumerate(_BATCH_COLUMNS)}
        params = [tuple(written if name == "written_at" else row[index[name]] for name in order) for row in rows]
    conn.exec_driver_sql(sql, params)


def _migrate(conn: Connection) -> None:
    """Bring a trail written by an earlier version up to date, in the transaction that created what was missing.

    Columns added since are nullable, so adding them is enough (runs of versions without heartbeats have no process
    or heartbeat: see HEARTBEATLESS_LEASE); indexes added since are created. A trail without blocks (entries one per
    row) gets the entry id counter, starting after its last entry: its rows stay as they are and are read as before
    (``compact`` moves the succeeded ones into blocks)."""
    inspector = sa.inspect(conn)
    for table in (runs_table, records_table):
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in present]
        for column in missing:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)
    counters = counters_table.c
    if conn.execute(sa.select(counters.value).where(counters.name == _ENTRY_ID_COUNTER)).first() is None:
        last_row = conn.execute(sa.select(sa.func.max(records_table.c.id))).scalar() or 0
        last_block = conn.execute(sa.select(sa.func.max(blocks_table.c.last_id))).scalar() or 0
        conn.execute(counters_table.insert().values(name=_ENTRY_ID_COUNTER, value=max(last_row, last_block) + 1))


def _allocate_entry_ids(conn: Connection, count: int) -> int:
    """The first of ``count`` consecutive new entry ids (taken in the caller's write transaction: one writer at a
    time on SQLite, the counter's row locked until commit on PostgreSQL)."""
    counters = counters_table.c
    following = conn.execute(
        counters_table.update().where(counters.name == _ENTRY_ID_COUNTER)
        .values(value=counters.value + count).returning(counters.value)
    ).scalar_one()
    return following - count


def _bump_counter(conn: Connection, name: str) -> None:
    dialect = sqlite_dialect if conn.dialect.name == "sqlite" else pg_dialect
    insert = dialect.insert(counters_table).values(name=name, value=1)
    conn.execute(insert.on_conflict_do_update(index_elements=[counters_table.c.name],
                                              set_={"value": counters_table.c.value + 1}))


@dataclass(frozen=True, slots=True)
class _PreparedEntry:
    """An entry as stored: key canonical, texts redacted, payload and source as the documents to store (their JSON
    texts for a failed entry, which is a row of its own)."""

    stream: str
    record_key: str
    version: str | None
    operation: str
    destination: str | None
    outcome: str
    attempts: int
    error: str | None
    payload: Any
    source: Any
    keep_payload: bool = True


@dataclass(frozen=True, slots=True)
class CompactResult:
    moved_rows: int
    merged_blocks: int
    bytes_before: int | None
    bytes_after: int | None


#: Decoded entry columns and documents a trail keeps (a few blocks each: a ledger's lookups hit the latest).
_CACHED_BLOCKS = 32
_CACHED_DOCUMENTS = 16
_BLOCK_HEADER = (
    blocks_table.c.block_id, blocks_table.c.run_id, blocks_table.c.stream, blocks_table.c.first_id,
    blocks_table.c.written_at, blocks_table.c.destination,
)


def _entry_id(entry: StoredEntry) -> int:
    return entry.id


def _matches(entry: StoredEntry, run_id: str | None, stream: str | None, key: Mapping[str, Any] | None,
             outcome: Outcome | str | None) -> bool:
    return ((run_id is None or entry.run_id == run_id) and (stream is None or entry.stream == stream)
            and (key is None or entry.record_key == canonical_key(key))
            and (outcome is None or entry.outcome == str(outcome)))


def _in_id_order(headers: Iterable[sa.Row], entries_of: Callable[[sa.Row], list[StoredEntry]]) -> Iterator[StoredEntry]:
    """The entries of blocks given in the order of their first ids, in id order: a block merged at the end of a run
    may span the ids of another run's blocks, so a block is opened once the entries before its first id are out."""
    heap: list[tuple[int, int, StoredEntry, Iterator[StoredEntry]]] = []
    pending = iter(headers)
    upcoming = next(pending, None)
    opened = 0
    while heap or upcoming is not None:
        while upcoming is not None and (not heap or upcoming.first_id <= heap[0][0]):
            entries = iter(entries_of(upcoming))
            first = next(entries, None)
            if first is not None:
                heapq.heappush(heap, (first.id, opened, first, entries))
                opened += 1
            upcoming = next(pending, None)
        if not heap:
            continue
        _, order, entry, entries = heapq.heappop(heap)
        yield entry
        following = next(entries, None)
        if following is not None:
            heapq.heappush(heap, (following.id, order, following, entries))


class _CachedBlock:
    """A block a reader has opened: its header, its entry columns, and (once looked up by key) where each key is."""

    __slots__ = ("header", "columns", "_positions")

    def __init__(self, header: sa.Row, columns: blocks.EntryColumns) -> None:
        self.header = header
        self.columns = columns
        self._positions: dict[str, int] | dict[str, list[int]] | None = None

    def positions_of(self, key_text: str) -> list[int]:
        if self._positions is None:
            keys = self.columns.keys
            last = dict(zip(keys, range(len(keys))))
            if len(last) == len(keys):  # every key once, as in nearly every batch: its one position
                self._positions = last
            else:
                self._positions = {}
                for position, key in enumerate(keys):
                    self._positions.setdefault(key, []).append(position)
        found = self._positions.get(key_text)
        return [] if found is None else [found] if type(found) is int else found


class _DocumentsOfBlock:
    """The payloads and sources of one block's entries, read from the trail when first asked for."""

    __slots__ = ("_trail", "_block_id")

    def __init__(self, trail: AuditTrail, block_id: int) -> None:
        self._trail = trail
        self._block_id = block_id

    def payload(self, position: int, entry_id: int) -> str | None:
        found = self._trail._documents_of(self._block_id)
        if found is None:  # the block was merged into another since the entry was read
            return self._trail.entry(entry_id).payload_json
        documents, _ = found
        return None if documents is None else documents.payload(position)

    def source(self, position: int, entry_id: int) -> str | None:
        found = self._trail._documents_of(self._block_id)
        if found is None:
            return self._trail.entry(entry_id).source_json
        documents, _ = found
        return None if documents is None else documents.source(position)

    def pruned_at(self) -> datetime | None:
        found = self._trail._documents_of(self._block_id)
        return None if found is None else found[1]


class _KeyIndex:
    """Which blocks may hold a key: each block's sorted key hashes, loaded once per stream and reloaded when the
    stream's counter says its blocks changed (a batch written, blocks merged)."""

    def __init__(self) -> None:
        self._streams: dict[str, tuple[int, dict[int, array]]] = {}

    def blocks_with(self, conn: Connection, stream: str | None, key_text: str) -> list[int]:
        counters = counters_table.c
        if stream is None:
            names = conn.execute(sa.select(counters.name, counters.value)
                                 .where(counters.name.startswith(_STREAM_COUNTER, autoescape=True))).all()
            generations = {name[len(_STREAM_COUNTER):]: value for name, value in names}
        else:
            value = conn.execute(sa.select(counters.value)
                                 .where(counters.name == _STREAM_COUNTER + stream)).scalar()
            generations = {} if value is None else {stream: value}
        wanted = blocks.key_hash(key_text)
        found = []
        for name, generation in generations.items():
            for block_id, hashes in self._hashes(conn, name, generation).items():
                at = bisect_left(hashes, wanted)
                if at < len(hashes) and hashes[at] == wanted:
                    found.append(block_id)
        return found

    def _hashes(self, conn: Connection, stream: str, generation: int) -> dict[int, array]:
        cached = self._streams.get(stream)
        if cached is not None and cached[0] == generation:
            return cached[1]
        block = blocks_table.c
        known = {} if cached is None else cached[1]
        listed = conn.execute(sa.select(block.block_id).where(block.stream == stream)).scalars().all()
        missing = [block_id for block_id in listed if block_id not in known]
        hashes = {block_id: known[block_id] for block_id in listed if block_id in known}
        for start in range(0, len(missing), _ID_CHUNK):
            rows = conn.execute(sa.select(block.block_id, block.key_hashes)
                                .where(block.block_id.in_(missing[start : start + _ID_CHUNK])))
            for block_id, blob in rows:
                hashes[block_id] = blocks.unpack_key_hashes(blob)
        self._streams[stream] = (generation, hashes)
        return hashes


def _new_blocks(run_id: str, prepared: list[_PreparedEntry],
                written_at: datetime) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """The blocks of a batch's entries that did not fail, per stream: (position of the first entry in the batch,
    of the last, the row without its ids). Ids are handed out in the write transaction, in the batch's order."""
    positions_by_stream: dict[str, list[int]] = {}
    for position, item in enumerate(prepared):
        if item.outcome != Outcome.FAILED.value:
            positions_by_stream.setdefault(item.stream, []).append(position)
    for stream, positions in positions_by_stream.items():
        for chunk in blocks.iter_chunks(positions):
            items = [prepared[position] for position in chunk]
            payloads, sources = blocks.DocumentColumnsBuilder(), blocks.DocumentColumnsBuilder()
            payload_states, source_states = [], []
            for item in items:
                kept = item.keep_payload
                for document, states, builder in ((item.payload, payload_states, payloads),
                                                  (item.source, source_states, sources)):
                    if document is None:
                        states.append(blocks.DOCUMENT_NONE)
                        builder.add(None)
                    elif kept:
                        states.append(blocks.DOCUMENT_KEPT)
                        builder.add(document)
                    else:
                        states.append(blocks.DOCUMENT_NOT_KEPT)
                        builder.add(None)
            destinations = [item.destination for item in items]
            shared_destination = len(set(destinations)) == 1
            columns = blocks.EntryColumns(
                offsets=[position - chunk[0] for position in chunk],
                keys=[item.record_key for item in items],
                versions=[item.version for item in items],
                operations=[item.operation for item in items],
                attempts=[item.attempts for item in items],
                errors=[item.error for item in items],
                destinations=None if shared_destination else destinations,
                written=[0] * len(items),
                payloads=payload_states,
                sources=source_states,
            )
            any_kept = blocks.DOCUMENT_KEPT in payload_states or blocks.DOCUMENT_KEPT in source_states
            try:
                documents = blocks.pack_documents(payloads.build(), sources.build()) if any_kept else None
            except (TypeError, ValueError, msgspec.EncodeError):
                raise _unencodable(items) from None
            yield chunk[0], chunk[-1], {
                "run_id": run_id,
                "stream": stream,
                "entry_count": len(items),
                "written_at": written_at,
                "last_written_at": written_at,
                "destination": destinations[0] if shared_destination else None,
                "counts": dump_json(dict(Counter(columns.operations))),
                "key_hashes": blocks.pack_key_hashes(columns.keys),
                "entry_columns": blocks.pack_entries(columns),
                "documents": documents,
            }


def _unencodable(items: Sequence[_PreparedEntry]) -> ValueError:
    """The error naming the entry of a block whose payload or source cannot be encoded as JSON."""
    for item in items:
        for document in (item.payload, item.source):
            try:
                _encoder.encode(document)
            except (TypeError, ValueError, msgspec.EncodeError) as exc:
                return ValueError(f"cannot audit stream {item.stream!r} key {item.record_key}: {redact_text(str(exc))}")
    return ValueError("cannot audit the batch: a payload cannot be encoded as JSON")


def _microseconds(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _merged_block(rows: Sequence[sa.Row]) -> dict[str, Any]:
    """One block of several of one run and stream (in the order of their first ids), ids and documents unchanged."""
    first_id = rows[0].first_id
    written_at = min(row.written_at for row in rows)
    parts = [(row, blocks.unpack_entries(row.entry_columns)) for row in rows]
    shared = {row.destination for row, columns in parts if columns.destinations is None}
    per_entry = len(shared) != 1 or any(columns.destinations is not None for _, columns in parts)

    def joined(name: str) -> list:
        return [value for _, columns in parts for value in getattr(columns, name)]

    columns = blocks.EntryColumns(
        offsets=[row.first_id - first_id + offset for row, part in parts for offset in part.offsets],
        keys=joined("keys"), versions=joined("versions"), operations=joined("operations"),
        attempts=joined("attempts"), errors=joined("errors"),
        destinations=[row.destination if part.destinations is None else part.destinations[i]
                      for row, part in parts for i in range(len(part.offsets))] if per_entry else None,
        written=[_microseconds(row.written_at - written_at) + offset for row, part in parts
                 for offset in part.written],
        payloads=joined("payloads"), sources=joined("sources"),
    )
    documents = None
    if any(row.documents is not None for row in rows):
        stored = [blocks.raw_document_columns(row.documents) if row.documents is not None
                  else (blocks.empty_document_columns(row.entry_count),) * 2 for row in rows]
        documents = blocks.pack_documents(blocks.merged_document_columns([p for p, _ in stored]),
                                          blocks.merged_document_columns([s for _, s in stored]))
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(load_json(row.counts))
    pruned = [row.pruned_at for row in rows if row.pruned_at is not None]
    return {
        "run_id": rows[0].run_id, "stream": rows[0].stream, "first_id": first_id,
        "last_id": max(row.last_id for row in rows),
        "entry_count": sum(row.entry_count for row in rows), "written_at": written_at,
        "last_written_at": max(row.last_written_at for row in rows),
        "destination": None if per_entry else next(iter(shared)), "counts": dump_json(dict(counts)),
        "pruned_at": max(pruned) if pruned else None, "key_hashes": blocks.pack_key_hashes(columns.keys),
        "entry_columns": blocks.pack_entries(columns), "documents": documents,
    }


def _spans(rows: Sequence[sa.Row]) -> Iterator[Sequence[sa.Row]]:
    """Rows (in id order) cut into blocks: at most BLOCK_ENTRIES each, ids at most MAX_BLOCK_SPAN apart."""
    chunk: list[sa.Row] = []
    for row in rows:
        if chunk and (len(chunk) == blocks.BLOCK_ENTRIES or row.id - chunk[0].id > blocks.MAX_BLOCK_SPAN):
            yield chunk
            chunk = []
        chunk.append(row)
    if chunk:
        yield chunk


def _block_of_rows(run_id: str, stream: str, rows: Sequence[sa.Row]) -> dict[str, Any]:
    """A block of entries stored one per row by an earlier version: every value as it was, documents included."""
    first_id = rows[0].id
    written_at = min(row.written_at for row in rows)
    destinations = [row.destination for row in rows]
    shared_destination = len(set(destinations)) == 1
    columns = blocks.EntryColumns(
        offsets=[row.id - first_id for row in rows], keys=[row.record_key for row in rows],
        versions=[row.record_version for row in rows], operations=[row.operation for row in rows],
        attempts=[row.attempts for row in rows], errors=[row.error for row in rows],
        destinations=None if shared_destination else destinations,
        written=[_microseconds(row.written_at - written_at) for row in rows],
        payloads=[blocks.DOCUMENT_NONE if row.payload is None else blocks.DOCUMENT_KEPT for row in rows],
        sources=[blocks.DOCUMENT_NONE if row.source is None else blocks.DOCUMENT_KEPT for row in rows],
    )
    any_kept = any(row.payload is not None or row.source is not None for row in rows)
    documents = None
    if any_kept:
        documents = blocks.pack_documents(blocks.document_columns_of_texts([row.payload for row in rows]),
                                          blocks.document_columns_of_texts([row.source for row in rows]))
    return {
        "run_id": run_id, "stream": stream, "first_id": first_id, "last_id": rows[-1].id, "entry_count": len(rows),
        "written_at": written_at, "last_written_at": max(row.written_at for row in rows),
        "destination": destinations[0] if shared_destination else None,
        "counts": dump_json(dict(Counter(columns.operations))), "key_hashes": blocks.pack_key_hashes(columns.keys),
        "entry_columns": blocks.pack_entries(columns), "documents": documents,
    }


def _invalid_entry(entry: AuditEntry) -> str:
    if entry.operation not in _OPERATIONS:
        problem = f"operation {entry.operation!r} is not one of {', '.join(sorted(_OPERATIONS))}"
    else:
        problem = f"outcome {entry.outcome!r} is not one of {', '.join(sorted(_RECORDABLE_OUTCOMES))}"
    return f"cannot audit stream {entry.stream!r} key {dict(entry.key)!r}: {problem}"


def _stored_entry(row: sa.Row) -> StoredEntry:
    return StoredEntry(
        row.id, row.run_id, row.flow, row.stream, row.record_key, row.record_version, row.operation, row.destination,
        row.outcome, row.attempts, row.error, row.payload, row.written_at, row.replay_of, row.source,
    )


def _reason(exc: sa_exc.DBAPIError) -> str:
    return redact_text(str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__)


def _open_engine(url: str, *, must_exist: bool) -> Engine:
    shown = describe_url(url)
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise AuditError(
            f"not a database URL: {shown!r} (expected e.g. sqlite:///path/to/audit.sqlite or "
            "postgresql+psycopg://user@host/database)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise AuditError(f"the audit trail lives in SQLite or PostgreSQL, not {backend!r} ({shown})")
    options: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise AuditError(f"the audit trail needs a SQLite file, e.g. sqlite:///path/to/audit.sqlite (got {shown})")
        path = Path(database)
        if must_exist and not path.is_file():
            raise AuditError(f"no audit trail at {path}: nothing has been recorded there (or set --url / {AUDIT_URL_ENV})")
        path.parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    try:
        engine = sa.create_engine(parsed, **options)
    except (sa_exc.NoSuchModuleError, ImportError) as exc:
        hint = " (install ml-connector-core[postgres])" if backend == "postgresql" else ""
        raise AuditError(f"no database driver for {shown}: {exc}{hint}") from None
    if backend == "sqlite":
        _prepare_sqlite(engine)
    return engine


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _connection_record) -> None:
        # pysqlite's own transaction handling would begin DEFERRED behind our back; we issue BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        # WAL: readers never block the writer and the writer never blocks readers (a replay reads while the target
        # it feeds writes its own entries into the same file).
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock at BEGIN, so it waits its turn under busy_timeout; a DEFERRED one
        # that reads first and writes later would fail with SQLITE_BUSY instead of waiting.
        immediate = conn.get_execution_options().get("audit_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
