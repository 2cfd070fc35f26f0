"""target-jaggaer's checkpoints: a STATE after each batch JAGGAER has, and a batch held back until its suppliers'
stream started holds back every STATE received after it (never one that claims orders JAGGAER does not have)."""

from __future__ import annotations

from support.singer import record_message, run_target_watching_states, schema_message, state_message
from test_jaggaer_target_writes import SCHEMAS, config_for, jg, order, supplier  # noqa: F401 - the fixture

SUPPLIERS, MORE_SUPPLIERS, ORDERS = "jaggaer_suppliers", "jaggaer_suppliers_eu", "jaggaer_purchase_orders"


def test_a_held_batch_holds_the_states_after_it_while_other_batches_get_theirs(jg, tmp_path):
    config = config_for(jg, tmp_path, batch_size=2, streams={
        SUPPLIERS: {"object": "supplier"}, MORE_SUPPLIERS: {"object": "supplier"}, ORDERS: {"object": "purchase_order"}})
    # The input in tap order (streams by name), a STATE after each record naming the records it covers.
    records = [(SUPPLIERS, supplier("S1")), (SUPPLIERS, supplier("S2")),
               (ORDERS, order("P1", "S1")), (ORDERS, order("P2", "S3")),  # S3 comes with the EU stream, later
               (SUPPLIERS, supplier("S4")), (SUPPLIERS, supplier("S5")),
               (MORE_SUPPLIERS, supplier("S3"))]
    messages, started = [], set()
    for n, (stream, record) in enumerate(records):
        if stream not in started:
            started.add(stream)
            messages.append(schema_message(stream, *SCHEMAS[SUPPLIERS if "suppliers" in stream else ORDERS]))
        messages += [record_message(stream, record), state_message({"bookmarks": {"input": {"replication_key_value": n}}})]

    emitted = []

    def written_before_emitted(state: dict) -> bool:
        n = state["bookmarks"]["input"]["replication_key_value"]
        in_jaggaer = {s["externalId"] for s in jg.suppliers()} | {p["externalId"] for p in jg.purchase_orders()}
        assert {r["externalId"] for _, r in records[:n + 1]} <= in_jaggaer, f"STATE {n} before its records were in"
        emitted.append(n)
        return False

    run = run_target_watching_states(tmp_path, config, messages, executable="target-jaggaer",
                                     on_state=written_before_emitted)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Holding 2 'jaggaer_purchase_orders' record(s)" in run.stderr
    # The first suppliers' batch is checkpointed; S4 and S5 are written too, but their STATEs come after the held
    # orders, so none goes out until the orders are written at the end of the input.
    assert emitted == [0, 1, len(records) - 1]
