"""target-jira's checkpoints against the Jira stand-in: a STATE after each batch Jira has, covering exactly the issues
it holds, and a target killed mid-input re-sends at most one batch when resumed from its last STATE."""

from __future__ import annotations

from ml_connector_core.audit import AuditTrail
from support.singer import record_message, run_target_watching_states, schema_message, state_message
from test_jira_target_issues import RECORD_SCHEMA, config_for, jira, purchase_order  # noqa: F401 - the fixture

STREAM = "jira_purchase_orders"
BATCH = 3
ORDERS = [purchase_order(f"K{n:03}") for n in range(11)]


def tap_output(start: int = 0) -> list[dict]:
    """What a tap sends from order `start` on: each record followed by the STATE that covers it (its position)."""
    messages = [schema_message(STREAM, RECORD_SCHEMA, ["ifs_key"])]
    for n in range(start, len(ORDERS)):
        messages += [record_message(STREAM, ORDERS[n]),
                     state_message({"bookmarks": {STREAM: {"replication_key_value": str(n)}}})]
    return messages


def position(state: dict) -> int:
    return int(state["bookmarks"][STREAM]["replication_key_value"])


def in_jira(jira) -> list[str]:
    field = jira.field_ids()["IFS Key"]
    return [issue["fields"][field] for issue in jira.issues()]


def test_a_state_follows_each_batch_jira_has_and_covers_only_what_it_has(jira, tmp_path):
    config = config_for(jira, tmp_path, batch_size_rows=BATCH)
    emitted = []

    def written_before_emitted(state: dict) -> bool:
        covered = {o["ifs_key"] for o in ORDERS[:position(state) + 1]}
        assert covered <= set(in_jira(jira)), f"STATE {position(state)} went out before Jira had its issues"
        emitted.append(position(state))
        return False

    run = run_target_watching_states(tmp_path, config, tap_output(), executable="target-jira",
                                     on_state=written_before_emitted)
    assert run.returncode == 0, run.stderr[-3000:]
    # One checkpoint (at least) per batch: never more than a batch between two, the last one the end of the input.
    assert emitted == sorted(emitted) and emitted[-1] == len(ORDERS) - 1
    gaps = [b - a for a, b in zip([-1, *emitted], emitted)]
    assert max(gaps) <= BATCH, emitted


def test_a_target_killed_after_a_checkpoint_re_sends_at_most_one_batch(jira, tmp_path):
    config = config_for(jira, tmp_path, batch_size_rows=BATCH)
    saved = []

    def kill_after_the_second(state: dict) -> bool:
        saved.append(state)  # what Meltano would have saved
        return len(saved) == 2

    killed = run_target_watching_states(tmp_path, config, tap_output(), executable="target-jira",
                                        on_state=kill_after_the_second)
    assert killed.returncode != 0 and len(saved) == 2
    # A request the kill cut off arrives with half its body, which the stand-in (unlike Jira, which never sees the
    # request complete) still judges: only such are allowed, and only from the killed run.
    assert all(v["kind"] == "request" for v in jira.violations()), jira.violations()
    jira.clear_violations()
    resume_from = position(saved[-1]) + 1
    assert 0 < resume_from < len(ORDERS)

    resumed = run_target_watching_states(tmp_path, config, tap_output(resume_from), executable="target-jira",
                                         on_state=lambda state: False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    keys = in_jira(jira)
    assert sorted(keys) == sorted(o["ifs_key"] for o in ORDERS)  # none lost, none doubled
    trail = AuditTrail(config["audit_url"])
    rerun = trail.runs(limit=1)[0]
    re_sent = sum(1 for e in trail.entries(run_id=rerun.run_id) if e.operation == "unchanged")
    assert re_sent <= BATCH, re_sent  # what the killed run had written after the saved STATE
