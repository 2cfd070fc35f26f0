"""Which records of a batch are written, and what the audit trail says about each."""

from target_databricks.plan import INSERT, SKIPPED_DUPLICATE, UNCHANGED, UPDATE, PlannedRecord, classify, latest_per_key


def candidate(key, version, fingerprint, row=0):
    return PlannedRecord({"k": key}, (key,), version, fingerprint, row)


def test_latest_version_per_key_and_last_arrival_among_equals():
    plan = latest_per_key([candidate("a", 2, "x"), candidate("a", 1, "y"), candidate("b", 1, "z"), candidate("b", 1, "w")])
    assert {p.key: p.fingerprint for p in plan.latest} == {("a",): "x", ("b",): "w"}
    assert sorted(p.operation for p in plan.superseded) == [SKIPPED_DUPLICATE, SKIPPED_DUPLICATE]


def test_classification_against_the_table():
    plan = latest_per_key([candidate("new", 1, "n"), candidate("same", 1, "s"), candidate("changed", 2, "c2"),
                           candidate("stale", 1, "old")])
    classify(plan, {("same",): ("s", 1), ("changed",): ("c1", 1), ("stale",): ("newer", 5)})
    assert {p.key[0]: p.operation for p in plan.latest} == {
        "new": INSERT, "same": UNCHANGED, "changed": UPDATE, "stale": SKIPPED_DUPLICATE}
    assert [p.key[0] for p in plan.to_write] == ["new", "changed"]
