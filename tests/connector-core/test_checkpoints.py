"""The checkpoint rule on its own: which STATE the durable records cover, for input interleaved as taps send it."""

from __future__ import annotations

from ml_connector_core.checkpoints import Checkpoints


def feed(checkpoints: Checkpoints, script: str) -> None:
    """`a` / `b`: a record of that stream; `1`..`9`: the STATE with that number."""
    for token in script.split():
        if token.isdigit():
            checkpoints.state_received({"n": int(token)})
        else:
            checkpoints.record_received(token)


def test_a_state_is_covered_once_every_record_before_it_is_durable():
    checkpoints = Checkpoints()
    feed(checkpoints, "a a 1 b 2 a")
    assert checkpoints.covered_state() is None
    checkpoints.durable("a")
    assert checkpoints.covered_state() == {"n": 1}  # STATE 2 waits for b's record before it
    checkpoints.durable("b")
    assert checkpoints.covered_state() == {"n": 2}
    assert checkpoints.covered_state() is None  # each goes out once


def test_only_the_newest_covered_state_goes_out():
    checkpoints = Checkpoints()
    feed(checkpoints, "a 1 a 2 a 3 b")
    checkpoints.durable("a")
    assert checkpoints.covered_state() == {"n": 3}


def test_a_stream_written_first_covers_the_states_before_the_others_records():
    checkpoints = Checkpoints()
    feed(checkpoints, "1 a a 2 b 3 b")
    checkpoints.durable("a")
    assert checkpoints.covered_state() == {"n": 2}
    feed(checkpoints, "a 4")
    checkpoints.durable("a")
    assert checkpoints.covered_state() is None  # b's records are before STATE 3 and 4
    checkpoints.durable("b")
    assert checkpoints.covered_state() == {"n": 4}


def test_states_with_no_record_between_them_are_one():
    checkpoints = Checkpoints()
    feed(checkpoints, "a 1 2 3")
    assert checkpoints.covered_state() is None
    checkpoints.durable("a")
    assert checkpoints.covered_state() == {"n": 3}
    feed(checkpoints, "4")  # nothing waits: covered as it arrives
    assert checkpoints.covered_state() == {"n": 4}
