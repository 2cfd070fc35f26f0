"""Checkpoints: a target emits a STATE as soon as everything the STATE covers is durably written, batch by batch,
so that a run stopped at any moment (SIGKILL included) re-reads at most about one batch per stream.

singer-sdk (0.54) keeps only the latest STATE received and emits it when every sink is drained together: at the end
of the input, or when records have waited five minutes. A sink that fills up is drained alone, without a STATE. A
load killed late therefore leaves the saved state where the previous run left it, and the rerun reads everything
again. Meltano saves every STATE line a target writes the moment it reads it (complete state, replacing the one
before), so a target that emits after each batch gives Meltano a checkpoint after each batch.

The rule, as built here:

- Records are numbered in the order they reach a sink; a STATE received after ``n`` records covers records ``0 ..
  n-1`` (a tap emits STATE only for what it has emitted before it).
- A stream's records become durable a whole sink at a time, when its batch is written (a record sink writes each
  record before the next message is read) -- unless the target holds them back on purpose (children waiting for
  their parent stream, see ``ParentsFirstTarget``): held records are not durable until they are written.
- A STATE may be emitted once no stream has a record numbered before it that is not durable; the newest such STATE
  is emitted, once.
- When a sink is full its batch is written and then every other sink is drained too: the partial batch of a stream
  the tap has finished with (taps send streams one after another) would otherwise keep every later STATE back until
  the end of the input. Batch sizes keep their meaning: no batch grows beyond its size, some end earlier.

How interleaved input plays out (``aN``/``bN`` records of streams a and b, ``Sn`` STATEs):

- ``a1 a2 S1 b1 S2 a3``, a's sink full at a3: a's batch is written, then b's partial one; S2 is emitted (S1 is
  superseded by S2 and never emitted).
- ``a1 S1 b1 S2 ...`` with b held (its parent stream has not started): S1 is emitted after a's batch; S2 and every
  later STATE wait until b's held records are written (at the end of the input at the latest).
- A batch that fails stops the run before anything is emitted: the STATE of the unfinished batch never goes out.
- Records the service refused are durable in the audit trail's sense (failed entries, redone by the next run or by
  ``mlc-audit replay``), so the STATE after them goes out as before.
- A stream whose SCHEMA changes gets a new sink while the old one still holds records: the stream is durable only
  when neither holds any.

What a kill costs: the records received since the last STATE emitted -- each stream's unwritten batch, plus the
records between the tap's last STATE before that batch ended and its end (none when the tap's STATE interval divides
the batch size, as the defaults do), plus what the tap's look-back window re-reads.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class Checkpoints:
    """The STATEs received, each with the number of records before it, and each stream's oldest record not yet
    durable; which STATE is covered by what is durable."""

    def __init__(self) -> None:
        self._records = 0
        # stream -> number of its oldest record not known to be durable
        self._oldest_not_durable: dict[str, int] = {}
        # (records received before it, STATE), oldest first, none emitted yet
        self._states: deque[tuple[int, dict]] = deque()

    def record_received(self, stream: str) -> None:
        if stream not in self._oldest_not_durable:
            self._oldest_not_durable[stream] = self._records
        self._records += 1

    def state_received(self, state: dict) -> None:
        if self._states and self._states[-1][0] == self._records:
            self._states[-1] = (self._records, state)  # no record between: the newer one says everything
        else:
            self._states.append((self._records, state))

    def streams_not_durable(self) -> list[str]:
        return list(self._oldest_not_durable)

    def durable(self, stream: str) -> None:
        """Every record of the stream received so far is durably written."""
        self._oldest_not_durable.pop(stream, None)

    def covered_state(self) -> dict | None:
        """The newest STATE not handed out before that every durable record covers, or None; older ones are
        dropped (a newer STATE says everything they say)."""
        horizon = min(self._oldest_not_durable.values(), default=self._records)
        newest = None
        while self._states and self._states[0][0] <= horizon:
            newest = self._states.popleft()[1]
        return newest


class CheckpointingTarget:
    """Emits a STATE after each durably written batch, covering exactly what is written (see the module's text).

    A mixin placed before singer-sdk's ``Target`` in the bases; every ml-connector target has it through
    ``AuditedTarget``. A target that holds records back on purpose says so in ``holds_records``; one that must hold a
    STATE itself (target-databricks until its job ran) overrides ``emit_state``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.checkpoints = Checkpoints()
        #: The newest STATE handed to ``emit_state``.
        self.last_checkpoint: dict | None = None
        self._sink_drained = False
        super().__init__(*args, **kwargs)

    def holds_records(self, stream: str) -> bool:
        """Records of the stream that its sink handed over are held back, not written yet."""
        return False

    def emit_state(self, state: dict) -> None:
        """Write the STATE line (singer-sdk's writer: one line on stdout, flushed)."""
        super()._write_state_message(state)

    def emit_checkpoint(self) -> None:
        """Emit the newest STATE that the durably written records cover, if there is a new one."""
        for stream in self.checkpoints.streams_not_durable():
            if self._stream_written(stream):
                self.checkpoints.durable(stream)
        state = self.checkpoints.covered_state()
        if state is not None and state != self.last_checkpoint:
            self.last_checkpoint = state
            self.emit_state(state)

    def _stream_written(self, stream: str) -> bool:
        if self.holds_records(stream):
            return False
        sinks = [*self._sinks_to_clear, self._sinks_active.get(stream)]
        return all(sink.current_size == 0 for sink in sinks if sink is not None and sink.stream_name == stream)

    # singer-sdk's hooks

    def get_sink(self, stream_name: str, *, record: dict | None = None, schema: dict | None = None,
                 key_properties=None):
        if record is not None:  # singer-sdk asks for the sink of each record it is about to hand over
            self.checkpoints.record_received(stream_name)
        return super().get_sink(stream_name, record=record, schema=schema, key_properties=key_properties)

    def _process_record_message(self, message_dict: dict) -> None:
        self._sink_drained = False
        super()._process_record_message(message_dict)
        if self._sink_drained:
            # A full sink was written: the others' partial batches too, then the STATE they all cover.
            self.drain_all()

    def _process_state_message(self, message_dict: dict) -> None:
        super()._process_state_message(message_dict)
        self.checkpoints.state_received(message_dict["value"])
        self.emit_checkpoint()  # at once when nothing before it waits (a record sink writes as records come)

    def drain_one(self, sink) -> None:
        super().drain_one(sink)
        self._sink_drained = True

    def _write_state_message(self, state: dict) -> None:
        # singer-sdk calls this after draining every sink, with the latest STATE received: what goes out is the
        # newest one the written records cover (the latest, unless records before it are held back).
        self.emit_checkpoint()
