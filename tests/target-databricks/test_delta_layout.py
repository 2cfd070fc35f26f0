"""target-databricks keeps Delta tables clustered by key so that a change costs the file holding its key: through the
real target process, tables read back with DuckDB's delta extension (not the library that wrote them) and their
transaction log read as written."""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from support.delta import read_delta
from support.singer import record_message, run_target, schema_message
from target_databricks.arrow import arrow_schema, row_fingerprint, to_table
from target_databricks.delta import FINGERPRINT
from target_databricks.sinks import LOADED_AT

INVOICE = {
    "Company": {"type": ["string"]},
    "InvoiceNo": {"type": ["string"]},
    "LineCount": {"type": ["integer", "null"]},
    "GrossAmount": {"type": ["number", "null"], "x-sql-datatype": "decimal",
                    "x-sql-datatype-properties": {"precision": 38}},
    "Rowversion": {"type": ["string"], "format": "date-time"},
    "Objstate": {"type": ["string", "null"]},
}
KEYS = ["Company", "InvoiceNo"]
STREAM = "posting_proposals"


def invoice(company: str, number: int, amount: str, day: int, state: str = "Preliminary") -> dict:
    return {"Company": company, "InvoiceNo": f"INV-{number:05d}", "LineCount": number % 7, "GrossAmount": Decimal(amount),
            "Rowversion": f"2026-01-{day:02d}T08:00:00Z", "Objstate": state}


@pytest.fixture
def config(tmp_path):
    return {"delta_root": str(tmp_path / "delta"), "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}",
            "delta_rows_per_file": 10, "batch_size_rows": 25}


def location(config) -> Path:
    return Path(config["delta_root"]) / "ifscloud" / STREAM


def load(tmp_path, config, records, schema=INVOICE):
    messages = [schema_message(STREAM, schema, KEYS, bookmark="Rowversion")]
    return run_target(tmp_path, config, messages + [record_message(STREAM, r) for r in records])


def table_rows(config) -> dict[tuple, dict]:
    rows = read_delta(location(config), order_by="Company, InvoiceNo")
    by_key = {(r["Company"], r["InvoiceNo"]): r for r in rows}
    assert len(by_key) == len(rows), "a key is in the table twice"
    return by_key


def commits(config) -> list[list[dict]]:
    return [[json.loads(line) for line in path.read_text().splitlines()]
            for path in sorted((location(config) / "_delta_log").glob("*.json"))]


def file_key_ranges(config) -> list[tuple[tuple, tuple]]:
    """(first key, last key) of every data file of the table's current version, by reading the files."""
    ranges = []
    for path in DeltaTable(str(location(config))).file_uris():
        keys = pq.read_table(path, columns=KEYS).to_pylist()
        tuples = sorted((k["Company"], k["InvoiceNo"]) for k in keys)
        ranges.append((tuples[0], tuples[-1]))
    return sorted(ranges)


def files_holding(config, keys: list[tuple]) -> set[str]:
    """The data files (paths as the log names them) of the table's current version that hold any of the keys."""
    table = DeltaTable(str(location(config)))
    held = set()
    for uri in table.file_uris():
        found = {(k["Company"], k["InvoiceNo"]) for k in pq.read_table(uri, columns=KEYS).to_pylist()}
        if found & set(keys):
            held.add(uri.rsplit("/", 1)[-1])
    return held


def test_a_full_load_ends_clustered_and_a_change_rewrites_only_the_file_holding_its_key(tmp_path, config):
    numbers = list(range(1, 121))
    random.Random(3).shuffle(numbers)  # arrival order (the change timestamp) has nothing to do with key order
    records = [invoice("10" if n % 3 else "20", n, f"{n}.25", 1 + n % 20) for n in numbers]
    load(tmp_path, config, records)
    rows = table_rows(config)
    assert len(rows) == 120
    files = [a["add"]["path"] for a in commits(config)[-1] if "add" in a]
    assert files and all(p.startswith("mlc-clustered-") for p in files), files
    ranges = file_key_ranges(config)
    assert all(previous[1] < following[0] for previous, following in zip(ranges, ranges[1:])), ranges
    assert len(ranges) == 12  # 120 rows, 10 a file

    # Three neighbouring invoices change, one is sent again unchanged: one file is replaced, nothing else.
    first, last = ranges[4]
    neighbours = [key for key in sorted(rows) if first <= key <= last][:4]
    holding = files_holding(config, neighbours[:3])
    changed = [invoice(c, int(n[4:]), "999.123456789", 25, "Posted") for c, n in neighbours[:3]]
    same = next(r for r in records if (r["Company"], r["InvoiceNo"]) == neighbours[3])
    load(tmp_path, config, [*changed, same])
    removed = {a["remove"]["path"] for a in commits(config)[-1] if "remove" in a}
    assert removed == holding and len(holding) == 1
    after = table_rows(config)
    assert len(after) == 120
    for key in neighbours[:3]:
        assert after[key]["GrossAmount"] == Decimal("999.123456789") and after[key]["Objstate"] == "Posted"
    assert after[neighbours[3]]["_mlc_loaded_at"] == rows[neighbours[3]]["_mlc_loaded_at"]  # unchanged: untouched
    untouched = [k for k in rows if k not in neighbours[:3]]
    assert all(after[k] == rows[k] for k in untouched)


def old_layout_table(config, records: list[dict], appends: int) -> None:
    """A table as target-databricks wrote it before it clustered: delta-rs appends in arrival order (part-* files,
    one per batch), with the fingerprint and load time columns."""
    schema = arrow_schema(INVOICE, decimal_scale=24)
    schema = schema.append(pa.field(FINGERPRINT, pa.string())).append(pa.field(LOADED_AT, pa.timestamp("us", tz="UTC")))
    loaded_at = dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)
    size = -(-len(records) // appends)
    for start in range(0, len(records), size):
        chunk = records[start:start + size]
        table = to_table(chunk, schema, stream=STREAM, extra={FINGERPRINT: [row_fingerprint(r) for r in chunk],
                                                              LOADED_AT: [loaded_at] * len(chunk)})
        write_deltalake(str(location(config)), table, mode="append")


def test_a_table_written_before_clustering_keeps_working_and_is_clustered_once(tmp_path, config):
    numbers = list(range(1, 81))
    random.Random(5).shuffle(numbers)
    records = [invoice("10", n, f"{n}.5", 1 + n % 9) for n in numbers]
    old_layout_table(config, records, appends=4)
    assert all(p.rsplit("/", 1)[-1].startswith("part-") for p in DeltaTable(str(location(config))).file_uris())

    resent = records[:10]  # unchanged: must stay as they are, not be written again
    updated = [invoice("10", n, "0.000000000000000000000001", 28, "Authorized") for n in numbers[10:15]]
    new = [invoice("20", n, "7", 28) for n in range(1, 6)]
    load(tmp_path, config, [*resent, *updated, *new])
    rows = table_rows(config)
    assert len(rows) == 85
    for r in resent:
        assert rows[("10", r["InvoiceNo"])]["_mlc_loaded_at"] == dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)
    for r in updated:
        assert rows[("10", r["InvoiceNo"])]["GrossAmount"] == Decimal("0.000000000000000000000001")
    assert all(rows[("20", r["InvoiceNo"])]["GrossAmount"] == Decimal("7") for r in new)
    operations = [next(a["commitInfo"] for a in commit if "commitInfo" in a).get("mlc.operation") for commit in commits(config)]
    assert operations[-2:] == ["write by key", "cluster by key"]
    assert all(p.rsplit("/", 1)[-1].startswith("mlc-clustered-") for p in DeltaTable(str(location(config))).file_uris())

    # The next run with a few changes rewrites what holds them and does not cluster the table again.
    version = len(commits(config))
    load(tmp_path, config, [invoice("10", numbers[20], "1", 29, "Posted")])
    later = commits(config)[version:]
    assert [next(a["commitInfo"] for a in c if "commitInfo" in a).get("mlc.operation") for c in later] == ["write by key"]
    assert sum(1 for a in later[0] if "remove" in a) == 1
    assert table_rows(config)[("10", f"INV-{numbers[20]:05d}")]["Objstate"] == "Posted"


def test_random_batches_leave_exactly_the_latest_version_of_every_key(tmp_path, config):
    """Runs of random inserts, changes, re-sends, stale versions and repeats within a batch: after each run the
    table holds each key once, with the values of its latest version, decimals to the last digit."""
    rng = random.Random(11)
    model: dict[tuple, dict] = {}
    day = 1
    for _ in range(4):
        batch = []
        for _ in range(60):
            choice = rng.random()
            if model and choice < 0.35:  # a change, newer
                company, number = rng.choice(sorted(model))
                amount = f"{rng.randrange(10**6)}.{rng.randrange(10**20):020d}"
                record = invoice(company, int(number[4:]), amount, min(day + 1, 28), rng.choice(["Authorized", "Posted"]))
            elif model and choice < 0.5:  # a re-send or a stale version: nothing changes
                company, number = rng.choice(sorted(model))
                record = dict(model[(company, number)])
                if choice > 0.45:
                    record = {**record, "Rowversion": "2025-12-31T00:00:00Z", "Objstate": "Stale"}
            else:  # a new key, anywhere in key order
                record = invoice(rng.choice(["10", "20", "30"]), rng.randrange(1, 5000), f"{rng.randrange(1000)}.1", day)
            batch.append(record)
            key = (record["Company"], record["InvoiceNo"])
            if record["Objstate"] != "Stale" and (key not in model or record["Rowversion"] >= model[key]["Rowversion"]):
                model[key] = record
        load(tmp_path, config, batch)
        day += 2
        rows = table_rows(config)
        assert set(rows) == set(model)
        for key, record in model.items():
            assert rows[key]["GrossAmount"] == record["GrossAmount"], key
            assert rows[key]["Objstate"] == record["Objstate"], key


def test_columns_the_stream_no_longer_sends_keep_their_values_in_changed_rows(tmp_path, config):
    load(tmp_path, config, [invoice("10", n, "1", 1) for n in range(1, 30)])
    narrower = {k: v for k, v in INVOICE.items() if k != "LineCount"}
    changed = {k: v for k, v in invoice("10", 7, "2", 2, "Posted").items() if k != "LineCount"}
    new = {k: v for k, v in invoice("10", 99, "3", 2).items() if k != "LineCount"}
    load(tmp_path, config, [changed, new], schema=narrower)
    rows = table_rows(config)
    assert rows[("10", "INV-00007")]["GrossAmount"] == Decimal("2") and rows[("10", "INV-00007")]["LineCount"] == 0
    assert rows[("10", "INV-00099")]["LineCount"] is None


def test_bucket_numbers_follow_key_order_over_every_column():
    from target_databricks.delta_layout import bucket_numbers

    rng = random.Random(2)
    keys = [(rng.choice(["10", "20", "3"]), rng.randrange(50)) for _ in range(500)]
    boundaries = sorted(rng.sample(keys, 12))
    table = pa.table({"Company": [k[0] for k in keys], "RowNo": [k[1] for k in keys]})
    bounds = pa.table({"Company": [b[0] for b in boundaries], "RowNo": [b[1] for b in boundaries]})
    import bisect

    assert bucket_numbers(table, bounds).to_pylist() == [bisect.bisect_right(boundaries, k) for k in keys]


def test_file_statistics_bound_every_value_and_keep_decimals_exact(tmp_path):
    import pyarrow.fs as pafs

    from target_databricks.delta_files import DataFiles

    long_text = "A" * 31 + "\U0010ffff" * 3
    schema = pa.schema([("name", pa.string()), ("amount", pa.decimal128(38, 24)),
                        ("at", pa.timestamp("us", tz="UTC")), ("flag", pa.bool_())])
    rows = pa.table({"name": ["b" * 40, "a" * 40 + "z", long_text],
                     "amount": [Decimal("12345678901234.123456789012345678901234"), Decimal("-1"), None],
                     "at": [dt.datetime(2026, 1, 1, 0, 0, 0, 1500, tzinfo=dt.timezone.utc),
                            dt.datetime(2026, 1, 1, 0, 0, 0, 999, tzinfo=dt.timezone.utc), None],
                     "flag": [True, False, None]}, schema=schema)
    files = DataFiles(pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()), schema, clustered=True,
                      rows_per_file=10, row_group_rows=2, stats_columns=schema.names)
    files.write(rows)
    (action,) = files.close()
    stats = json.loads(action.stats, parse_float=Decimal)
    assert stats["numRecords"] == 3 and stats["nullCount"] == {"name": 0, "amount": 1, "at": 1, "flag": 1}
    low, high = stats["minValues"], stats["maxValues"]
    assert all(low["name"] <= v for v in rows["name"].to_pylist())
    assert "name" not in high or all(high["name"] >= v for v in rows["name"].to_pylist())
    assert low["amount"] == Decimal("-1") and high["amount"] == Decimal("12345678901234.123456789012345678901234")
    assert low["at"] == "2026-01-01T00:00:00.000Z" and high["at"] == "2026-01-01T00:00:00.002Z"
    assert "flag" not in low and "flag" not in high
    assert pq.read_table(tmp_path / action.path).equals(rows)


# Deletion vectors ---------------------------------------------------------------------------------------------------

def vectors_of(commit: list[dict]) -> dict[str, dict]:
    """The data files a commit gives a deletion vector, with the vector's descriptor."""
    return {a["add"]["path"]: a["add"]["deletionVector"] for a in commit if "add" in a and a["add"].get("deletionVector")}


def test_changes_spread_over_the_table_are_marked_in_deletion_vectors_not_rewritten(tmp_path, config):
    numbers = list(range(1, 201))
    random.Random(7).shuffle(numbers)
    records = {n: invoice("10", n, f"{n}.5", 1 + n % 20) for n in numbers}
    load(tmp_path, config, list(records.values()))
    table = DeltaTable(str(location(config)))
    assert "deletionVectors" in table.protocol().reader_features  # a new table on a local path
    assert table.protocol().writer_features == ["deletionVectors"]
    before = {a["add"]["path"] for a in commits(config)[-1] if "add" in a}
    assert len(before) == 20

    # One invoice in each of five files far apart changes: five files get vectors, none is rewritten; the changed
    # rows land in one new file.
    spread = [7, 48, 95, 141, 188]
    load(tmp_path, config, [invoice("10", n, "0.000000000000000000000001", 27, "Posted") for n in spread])
    (commit,) = commits(config)[-1:]
    marked = vectors_of(commit)
    assert len(marked) == 5 and set(marked) <= before
    assert all(v["storageType"] == "u" and v["cardinality"] == 1 for v in marked.values())
    assert {a["remove"]["path"] for a in commit if "remove" in a} == set(marked)
    new_files = [a["add"] for a in commit if "add" in a and not a["add"].get("deletionVector")]
    assert len(new_files) == 1 and json.loads(new_files[0]["stats"])["numRecords"] == 5
    assert all(json.loads(a["add"]["stats"])["tightBounds"] is False for a in commit if "add" in a and a["add"].get("deletionVector"))
    assert len(list(location(config).glob("deletion_vector_*.bin"))) == 1

    # Read back by two readers that are not ours: DuckDB's delta extension and delta-rs's scan.
    rows = table_rows(config)
    assert len(rows) == 200
    for n in spread:
        assert rows[("10", f"INV-{n:05d}")]["GrossAmount"] == Decimal("0.000000000000000000000001")
    assert all(rows[("10", f"INV-{n:05d}")]["GrossAmount"] == Decimal(f"{n}.5") for n in numbers if n not in spread)
    scanned = pa.table(DeltaTable(str(location(config))).scan(columns=["InvoiceNo", "Objstate"])).to_pylist()
    assert len(scanned) == 200 and sum(r["Objstate"] == "Posted" for r in scanned) == 5

    # The same invoices change again, with two more in files already marked: those two files' vectors grow; the
    # appended file, all of whose rows change, is rewritten (with the two) rather than marked.
    appended = new_files[0]["path"]
    again = [*spread, 8, 142]
    load(tmp_path, config, [invoice("10", n, "2.25", 28, "Paid") for n in again])
    rows = table_rows(config)
    assert len(rows) == 200
    assert all(rows[("10", f"INV-{n:05d}")]["Objstate"] == "Paid" for n in again)
    commit = commits(config)[-1]
    marked = vectors_of(commit)
    assert sorted(v["cardinality"] for v in marked.values()) == [2, 2]
    assert {a["remove"]["path"] for a in commit if "remove" in a} == {*marked, appended}
    (rewritten,) = [a["add"] for a in commit if "add" in a and not a["add"].get("deletionVector")]
    assert json.loads(rewritten["stats"])["numRecords"] == 7


def test_deletion_vectors_survive_checkpoints_and_clustering(tmp_path, config):
    load(tmp_path, config, [invoice("10", n, "1", 1) for n in range(1, 101)])
    for day in range(2, 14):  # a change each run into a different file: a checkpoint every ten versions
        load(tmp_path, config, [invoice("10", (day * 37) % 100 + 1, f"{day}", day, "Posted")])
    log = location(config) / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet"))
    expected = {n: Decimal(1) for n in range(1, 101)}
    for day in range(2, 14):
        expected[(day * 37) % 100 + 1] = Decimal(day)
    rows = table_rows(config)
    assert {int(k[1][4:]): r["GrossAmount"] for k, r in rows.items()} == expected

    # Clustering merges the appended files into key order, drops the deleted rows and leaves no vector behind.
    from target_databricks.delta import DeltaWriter

    DeltaWriter(config["delta_root"], rows_per_file=10).cluster(str(location(config)), KEYS, force=True)
    (commit,) = commits(config)[-1:]
    assert next(a["commitInfo"] for a in commit if "commitInfo" in a)["mlc.operation"] == "cluster by key"
    assert not vectors_of(commit)
    live = DeltaTable(str(location(config)))
    total = sum(pq.read_metadata(uri).num_rows for uri in live.file_uris())
    assert total == 100  # deleted rows are gone from the files, not just masked
    assert {int(k[1][4:]): r["GrossAmount"] for k, r in table_rows(config).items()} == expected


def test_deletion_vectors_off_rewrites_files_and_creates_tables_without_the_feature(tmp_path, config):
    config = {**config, "delta_deletion_vectors": False}
    load(tmp_path, config, [invoice("10", n, "1", 1) for n in range(1, 41)])
    assert not DeltaTable(str(location(config))).protocol().reader_features
    load(tmp_path, config, [invoice("10", 5, "2", 2, "Posted")])
    commit = commits(config)[-1]
    assert not vectors_of(commit) and sum(1 for a in commit if "remove" in a) == 1
    assert table_rows(config)[("10", "INV-00005")]["Objstate"] == "Posted"


def test_a_commit_that_meets_a_concurrent_change_to_its_files_is_refused_and_leaves_nothing(tmp_path, config):
    from target_databricks.delta import DeltaWriter
    from target_databricks.delta_log import CommitConflict

    load(tmp_path, config, [invoice("10", n, "1", 1) for n in range(1, 41)])
    writer = DeltaWriter(config["delta_root"], rows_per_file=10)
    where = str(location(config))
    batch = to_table([invoice("10", 3, "9", 2, "Posted")], arrow_schema(INVOICE, decimal_scale=24), stream=STREAM)
    writer.stored(where, batch.select(KEYS), None)
    # Meanwhile another writer changes the same file (a run of this target in another process).
    load(tmp_path, config, [invoice("10", 4, "7", 3, "Authorized")])
    versions = len(commits(config))
    files_before = set(location(config).iterdir())
    with pytest.raises(CommitConflict, match="removed"):
        writer.merge(where, batch, KEYS, None)
    assert len(commits(config)) == versions
    assert set(location(config).iterdir()) == files_before  # its data and vector files are removed again
    rows = table_rows(config)
    assert rows[("10", "INV-00003")]["Objstate"] == "Preliminary" and rows[("10", "INV-00004")]["Objstate"] == "Authorized"


def test_files_hold_more_rows_where_rows_are_marked_than_where_files_are_rewritten(tmp_path, config):
    records = [invoice("10", n, "1", 1) for n in range(1, 12_001)]
    defaults = {k: v for k, v in config.items() if k not in ("delta_rows_per_file", "batch_size_rows")}
    marking = {**defaults, "delta_root": str(tmp_path / "marking")}
    rewriting = {**defaults, "delta_root": str(tmp_path / "rewriting"), "delta_deletion_vectors": False}
    load(tmp_path, marking, records)
    load(tmp_path, rewriting, records)
    assert len(DeltaTable(str(location(marking))).file_uris()) == 1  # up to 250,000 rows a file
    assert len(DeltaTable(str(location(rewriting))).file_uris()) == 2  # up to 10,000


def test_a_file_system_without_hard_links_fails_the_batch_by_name_and_leaves_the_table_as_it_was(tmp_path, config,
                                                                                                monkeypatch):
    import errno
    import os

    from target_databricks.delta import DeltaWriter
    from target_databricks.delta_log import CommitFailed

    load(tmp_path, config, [invoice("10", n, "1", 1) for n in range(1, 41)])
    versions = len(commits(config))

    def no_links(source, target):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    writer = DeltaWriter(config["delta_root"], rows_per_file=10)
    batch = to_table([invoice("10", 3, "9", 2, "Posted")], arrow_schema(INVOICE, decimal_scale=24), stream=STREAM)
    with pytest.raises(CommitFailed, match="refuses the hard link"):
        writer.merge(str(location(config)), batch, KEYS, None)
    assert len(commits(config)) == versions
    assert not list((location(config) / "_delta_log").glob(".*.tmp"))
    assert table_rows(config)[("10", "INV-00003")]["Objstate"] == "Preliminary"


def test_a_table_with_a_writer_feature_this_target_does_not_honour_is_refused_by_name(tmp_path, config):
    from deltalake import TableFeatures

    load(tmp_path, config, [invoice("10", n, "1", 1) for n in range(1, 11)])
    DeltaTable(str(location(config))).alter.add_feature(TableFeatures.ChangeDataFeed,
                                                        allow_protocol_versions_increase=True)
    versions = len(commits(config))
    result = load_failing(tmp_path, config, [invoice("10", 5, "2", 2, "Posted")])
    assert "uses changeDataFeed, which target-databricks does not write" in result.stderr
    assert len(commits(config)) == versions


def load_failing(tmp_path, config, records):
    messages = [schema_message(STREAM, INVOICE, KEYS, bookmark="Rowversion")]
    return run_target(tmp_path, config, messages + [record_message(STREAM, r) for r in records], check=False)


def test_inline_deletion_vectors_and_z85_read_back_as_written(tmp_path):
    import pyarrow.fs as pafs
    from pyroaring import BitMap64

    from target_databricks.deletion_vectors import DeletionVector, serialize, write_vectors, z85_decode, z85_encode

    assert z85_decode(z85_encode(bytes(range(32)))) == bytes(range(32))
    assert z85_encode(bytes.fromhex("864FD26FB559F75B")) == "HelloWorld"  # the Z85 specification's example
    deleted = BitMap64([0, 7, 4096, 70_000])
    data = serialize(deleted)
    padded = data + bytes(-len(data) % 4)
    inline = DeletionVector("i", z85_encode(padded), None, len(data), len(deleted))
    fs = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    assert inline.read(fs, "f.parquet") == deleted
    _, (stored,) = write_vectors(fs, [deleted])
    assert stored.read(fs, "f.parquet") == deleted and stored.unique_id.startswith("u")
