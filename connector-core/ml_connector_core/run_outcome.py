"""What a target's input says about the tap that sent it, and the outcome of a run from that and what was delivered.

A target sees only its input, but the input tells two things about the tap's end:

- **Nothing at all**: every tap that runs a sync sends at least the SCHEMA of each stream it reads, so an empty input
  means the tap stopped before its sync began (or selected nothing): the run is ``failed``, "no input".
- **No closing STATE**: every ml-connector tap ends each complete sync with a STATE message, after everything else
  (``sync_all``). An input that carried a STATE and then ends on records or a SCHEMA that no STATE follows was cut
  short: the tap stopped while reading (the streams after it were not read at all). The run is ``partial``; what
  came is written and its STATE emitted, so the next run reads on from there. An input with schemas but neither a
  record nor a STATE is "no input" as well. This holds for taps that close their syncs with a STATE; the setting
  ``expect_closing_state`` turns it off for a tap that may end a complete sync on a record. An input that carries no
  STATE at all (an ``mlc-audit replay``, a file) is not judged by its end.

Both make the target exit 1 rather than 3: status 3 promises that the input was read to the end and that what was
not delivered is in the audit trail to be redone or replayed; after an early end the records never sent are in no
audit trail, and only a rerun of the pipeline (from the STATE emitted) reads them, as after any stop (status 1).

Under Meltano the pipeline's own record says more (a tap that failed fails the Meltano run): see ``meltano_runs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from singer_sdk import typing as th

from ml_connector_core.audit import RunStatus

#: The setting every ml-connector target has (see the module's text).
EXPECT_CLOSING_STATE = "expect_closing_state"
EXPECT_CLOSING_STATE_SETTING = th.Property(
    EXPECT_CLOSING_STATE, th.BooleanType, default=True,
    description="The tap ends every complete sync with a STATE message, as ml-connector's taps do: an input that "
                "carried a STATE and then ends on records or a SCHEMA no STATE follows was cut short (the tap stopped "
                "early), so the run is partial and the target exits 1; the next run reads on from the last STATE. "
                "Turn off for a tap that may end a complete sync on a record.",
)
#: The exit status of a run whose input ended before the tap finished, or that got no input (see the module's text).
EXIT_INPUT_ENDED_EARLY = 1


@dataclass
class InputSeen:
    """What the input brought, counted as it is read: cheap enough for every record."""

    messages: int = 0
    records: int = 0
    states: int = 0
    schemas: dict[str, None] = field(default_factory=dict)  # streams in the order their first SCHEMA came
    messages_since_state: int = 0
    # The stream of the last SCHEMA or RECORD, and how many of its records came since (its SCHEMA, or another stream).
    last_stream: str | None = None
    last_stream_records: int = 0


class InputWatch:
    """A mixin for singer-sdk targets (before ``Target`` in the bases) that keeps ``input_seen`` up to date."""

    def __init__(self, *args, **kwargs) -> None:
        self.input_seen = InputSeen()
        super().__init__(*args, **kwargs)

    def _process_schema_message(self, message_dict: dict) -> None:
        seen = self.input_seen
        seen.messages += 1
        seen.messages_since_state += 1
        stream = message_dict.get("stream")
        seen.schemas[stream] = None
        if stream != seen.last_stream:
            seen.last_stream, seen.last_stream_records = stream, 0
        super()._process_schema_message(message_dict)

    def _process_record_message(self, message_dict: dict) -> None:
        seen = self.input_seen
        seen.messages += 1
        seen.messages_since_state += 1
        seen.records += 1
        stream = message_dict.get("stream")
        if stream != seen.last_stream:
            seen.last_stream, seen.last_stream_records = stream, 0
        seen.last_stream_records += 1
        super()._process_record_message(message_dict)

    def _process_state_message(self, message_dict: dict) -> None:
        seen = self.input_seen
        seen.messages += 1
        seen.states += 1
        seen.messages_since_state = 0
        super()._process_state_message(message_dict)

    def _process_activate_version_message(self, message_dict: dict) -> None:
        self.input_seen.messages += 1
        self.input_seen.messages_since_state += 1
        super()._process_activate_version_message(message_dict)

    def _process_batch_message(self, message_dict: dict) -> None:
        self.input_seen.messages += 1
        self.input_seen.messages_since_state += 1
        super()._process_batch_message(message_dict)


@dataclass(frozen=True)
class RunOutcome:
    """How a target's run ended: its status, why (one line; none for a plain success) and the exit status."""

    status: str
    reason: str | None
    exit_status: int


def input_shortfall(seen: InputSeen, *, expect_closing_state: bool) -> RunOutcome | None:
    """The outcome the input alone forces (see the module's text), or None when it looks complete."""
    if seen.messages == 0:
        return RunOutcome(RunStatus.FAILED.value, "no input: the tap sent nothing", EXIT_INPUT_ENDED_EARLY)
    if not expect_closing_state:
        return None
    if seen.records == 0 and seen.states == 0:
        streams = ", ".join(str(stream) for stream in seen.schemas) or "no stream"
        return RunOutcome(RunStatus.FAILED.value, f"no input: the tap sent the schemas of {streams} but no record "
                          "and no STATE (it stopped before reading)", EXIT_INPUT_ENDED_EARLY)
    if seen.states and seen.messages_since_state:
        return RunOutcome(RunStatus.PARTIAL.value, f"the input ended early{_where(seen)} with no closing STATE: the "
                          "tap stopped before finishing; streams after it were not read", EXIT_INPUT_ENDED_EARLY)
    return None


def _where(seen: InputSeen) -> str:
    if seen.last_stream is None:
        return ""
    if seen.last_stream_records == 0:
        return f" in stream {seen.last_stream} (after its SCHEMA, before any of its records)"
    return f" in stream {seen.last_stream} (after {seen.last_stream_records} of its records)"


def run_outcome(seen: InputSeen, delivered: int, undelivered: int, run_id: str, *, expect_closing_state: bool,
                undelivered_exit_status: int) -> RunOutcome:
    """The outcome of a run that read its input to the end: what the input forces, then what was not delivered
    (``partial`` when some records were delivered, ``failed`` when none could be)."""
    not_delivered = (f"{undelivered} record(s) not delivered (mlc-audit failures --run {run_id})"
                     if undelivered else None)
    shortfall = input_shortfall(seen, expect_closing_state=expect_closing_state)
    if shortfall is not None:
        reason = f"{shortfall.reason}; {not_delivered}" if not_delivered else shortfall.reason
        return RunOutcome(shortfall.status, reason, shortfall.exit_status)
    if undelivered and not delivered:
        return RunOutcome(RunStatus.FAILED.value, f"none delivered: {not_delivered}", undelivered_exit_status)
    if undelivered:
        return RunOutcome(RunStatus.PARTIAL.value, not_delivered, undelivered_exit_status)
    return RunOutcome(RunStatus.SUCCEEDED.value, None, 0)
