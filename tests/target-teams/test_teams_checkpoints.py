"""target-teams' checkpoints: a STATE after each batch whose cards (single or one digest) Teams has, never before."""

from __future__ import annotations

from support.singer import record_message, run_target_watching_states, schema_message, state_message
from test_delivery import PROPOSAL, config_for, proposal, teams  # noqa: F401 - the fixture


def test_a_state_follows_each_batch_once_its_cards_are_posted(teams, tmp_path):
    config = config_for(teams, tmp_path, batch_size_rows=4, digest="auto", digest_threshold=3)
    invoices = [f"INV-C{n}" for n in range(10)]
    messages = [schema_message("posting_proposals", PROPOSAL, ["Company", "InvoiceNo"], bookmark="Rowversion")]
    for n, invoice in enumerate(invoices):
        messages += [record_message("posting_proposals", proposal(invoice)),
                     state_message({"bookmarks": {"posting_proposals": {"replication_key_value": n}}})]
    emitted = []

    def posted_before_emitted(state: dict) -> bool:
        n = state["bookmarks"]["posting_proposals"]["replication_key_value"]
        posted = " ".join(str(card) for card in teams.cards("company-10"))  # cards and digests name their invoices
        assert all(invoice in posted for invoice in invoices[:n + 1]), n
        emitted.append(n)
        return False

    run = run_target_watching_states(tmp_path, config, messages, executable="target-teams",
                                     on_state=posted_before_emitted)
    assert run.returncode == 0, run.stderr[-3000:]
    assert emitted[-1] == len(invoices) - 1
    assert max(b - a for a, b in zip([-1, *emitted], emitted)) <= 4, emitted
    assert len(teams.cards("company-10")) == 4  # batches of 4, 4 and 2: a digest each for the first two, 2 cards
