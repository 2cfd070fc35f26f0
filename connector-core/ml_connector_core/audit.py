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

A run records the process that writes it (host, pid, when it started) and a heartbeat, renewed every
``MLC_AUDIT_HEARTBEAT_SECONDS`` (30) while the process lives. A run still ``running`` whose process is gone is
``interrupted``: on the same host (same kernel boot, same process namespace) as soon as the pid is gone, elsewhere once
its heartbeat is older than the lease (``MLC_AUDIT_LEASE_SECONDS``, 300). Readers show it so at once; the next
``start_run`` on the trail records it. A live run is never marked: its heartbeat puts it back to ``running``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

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
)


# --- What callers pass in and get back ---


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One record as a target wrote it (or tried to).

    ``key`` holds the key properties and their values; ``version`` the record's ETag or change timestamp;
    ``destination`` where it went (table, issue key, channel...); ``payload`` what was sent, as JSON-able values
    (Decimals stay exact), not as already-encoded text, so that sensitive fields can be masked. ``source`` is the record
    as received, for targets whose payload is a request derived from it; replays send ``source`` when there is one.
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


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    run_id: str
    flow: str
    stream: str
    record_key: str
    version: str | None
    operation: str
    destination: str | None
    outcome: str
    attempts: int
    error: str | None
    payload_json: str | None
    written_at: datetime
    replay_of: int | None
    source_json: str | None = None

    @property
    def key(self) -> dict[str, Any]:
        return load_json(self.record_key)

    @property
    def payload(self) -> Any:
        return None if self.payload_json is None else load_json(self.payload_json)

    @property
    def source(self) -> Any:
        return None if self.source_json is None else load_json(self.source_json)

    @property
    def replay_json(self) -> str | None:
        """What a replay feeds the target: the record as received where it was kept, else what was sent."""
        return self.source_json if self.source_json is not None else self.payload_json


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
        self._engine = _open_engine(self.url, must_exist=must_exist)
        try:
            with self._writing() as conn:
                if conn.dialect.name == "postgresql":
                    # Concurrent CREATE TABLEs of the same name collide in PostgreSQL's catalog; take turns.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7236916023409881)"))
                metadata.create_all(conn)
                _add_missing_columns(conn)
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
                answers = sa.select(
                    sa.literal(replay_run.run_id, sa.String),
                    records.flow,
                    records.stream,
                    records.record_key,
                    records.record_version,
                    records.operation,
                    records.destination,
                    sa.literal(Outcome.SUCCEEDED.value, sa.String),
                    sa.literal(1, sa.Integer),
                    records.payload,
                    records.source,
                    sa.literal(written_at, _UtcDateTime()),
                    records.id,
                ).where(still_failed)
                conn.execute(
                    records_table.insert().from_select(
                        [
                            "run_id", "flow", "stream", "record_key", "record_version", "operation", "destination",
                            "outcome", "attempts", "payload", "source", "written_at", "replay_of",
                        ],
                        answers,
                    )
                )
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
        if row is None:
            raise UnknownEntryError(f"no entry {entry_id} in the audit trail at {describe_url(self.url)}")
        return _stored_entry(row)

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
        query = sa.select(records_table).where(*self._filters(run_id, stream, key, outcome, entry_ids))
        query = query.order_by(records_table.c.id)
        if limit is not None:
            query = query.limit(limit)
        return self._stream(query)

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
        with self._reading() as conn:
            return conn.execute(query).first() is not None

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
        rows = self._rows(entries)
        if rows or replacing:
            with self.trail._writing() as conn:
                if replacing:
                    conn.execute(records_table.delete().where(records_table.c.run_id == self.run_id,
                                                              records_table.c.id.in_(list(replacing))))
                if rows:
                    _insert_batch(conn, rows, _utc_now())
        return len(rows)

    def record_pending(self, entries: Iterable[AuditEntry]) -> list[int]:
        """Store, before an action that cannot be undone nor asked about afterwards (a card posted), the entries
        that stand if the process dies before its outcome is known: typically failed, saying the outcome is unknown.
        ``record(outcome, replacing=ids)`` replaces them in one transaction once it is known. Returns their ids."""
        rows = self._rows(entries)
        ids: list[int] = []
        if rows:
            written_at = _utc_now()
            with self.trail._writing() as conn:
                for row in rows:
                    values = {**dict(zip(_BATCH_COLUMNS, row)), "written_at": written_at}
                    ids.append(conn.execute(records_table.insert().values(**values)).inserted_primary_key[0])
        return ids

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

    def _rows(self, entries: Iterable[AuditEntry]) -> list[tuple]:
        redactor = self.trail.redactor
        redactor.refresh_secrets()
        run_id, flow = self.run_id, self.flow
        payload_json, text = redactor.payload_json, redactor.text
        rows = []
        for entry in entries:
            if entry.operation not in _OPERATIONS or entry.outcome not in _RECORDABLE_OUTCOMES:
                raise ValueError(_invalid_entry(entry))
            try:
                record_key = canonical_key(entry.key)
                payload = None if entry.payload is None else payload_json(entry.payload)
                source = None if entry.source is None else payload_json(entry.source)
            except (TypeError, ValueError, msgspec.EncodeError) as exc:
                raise ValueError(
                    f"cannot audit stream {entry.stream!r} key {entry.key!r}: {redact_text(str(exc))}"
                ) from None
            # In the order of _BATCH_COLUMNS.
            rows.append(
                (
                    run_id,
                    flow,
                    entry.stream,
                    record_key,
                    None if entry.version is None else str(entry.version),
                    str(entry.operation),
                    text(entry.destination),
                    str(entry.outcome),
                    entry.attempts,
                    text(entry.error),
                    payload,
                    source,
                )
            )
        return rows


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
    "run_id", "flow", "stream", "record_key", "record_version", "operation", "destination", "outcome", "attempts",
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


def _add_missing_columns(conn: Connection) -> None:
    """Trails written by an earlier version lack columns added since; they are nullable, so adding them is enough
    (their runs then have no process or heartbeat: see HEARTBEATLESS_LEASE). Indexes added since are created."""
    inspector = sa.inspect(conn)
    for table in (runs_table, records_table):
        present = {column["name"] for column in inspector.get_columns(table.name)}
        missing = [column for column in table.columns if column.name not in present]
        for column in missing:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        if missing:
            for index in table.indexes:
                index.create(conn, checkfirst=True)


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
