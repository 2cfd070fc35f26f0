"""The Delta path on object storage: s3:// through delta-rs, against moto's S3 server on loopback, with the storage
credentials given sealed."""

from __future__ import annotations

import logging
from decimal import Decimal

import boto3
import pytest
from deltalake import DeltaTable
from moto.server import ThreadedMotoServer

from ml_connector_core.secrets import generate_key, seal
from support.singer import run_target
from test_delta_load import invoice, messages_for


@pytest.fixture
def s3():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="lake-key",
                          aws_secret_access_key="lake-secret-value", region_name="us-east-1")
    client.create_bucket(Bucket="lake")
    yield endpoint
    # moto keeps its buckets in the process, past this server: the next test (here or in another module) starts empty.
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="lake"):
        for item in page.get("Contents", []):
            client.delete_object(Bucket="lake", Key=item["Key"])
    client.delete_bucket(Bucket="lake")
    server.stop()


def test_merge_into_delta_tables_on_s3(s3, tmp_path):
    key = generate_key()
    options = {"AWS_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "lake-key", "AWS_REGION": "us-east-1",
               "AWS_SECRET_ACCESS_KEY": seal("lake-secret-value", key=key.encode()),
               "AWS_ALLOW_HTTP": "true", "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    config = {"delta_root": "s3://lake/warehouse", "storage_options": options,
              "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}
    batch = [invoice("S3-1", "1.5", "2026-01-01T00:00:00Z"), invoice("S3-2", "2", "2026-01-01T00:00:00Z")]
    for _ in range(2):
        result = run_target(tmp_path, config, messages_for(batch), env={"MLC_SECRET_KEY": key})
    assert "lake-secret-value" not in result.stderr
    plain = {**options, "AWS_SECRET_ACCESS_KEY": "lake-secret-value"}
    table = DeltaTable("s3://lake/warehouse/ifscloud/posting_proposals", storage_options=plain)
    rows = table.to_pyarrow_table()
    # Written, rewritten and clustered by key through delta-rs's own object-storage client, without deletion vectors
    # (delta-rs commits none there).
    assert not table.protocol().reader_features
    assert table.file_uris() and all("/mlc-clustered-" in uri for uri in table.file_uris())
    assert sorted((r["InvoiceNo"], r["GrossAmount"]) for r in rows.to_pylist()) == [
        ("S3-1", Decimal("1.5")), ("S3-2", Decimal("2"))]


def test_a_table_with_deletion_vectors_on_object_storage_is_refused_by_name(s3, tmp_path):
    import pyarrow as pa
    from deltalake import TableFeatures, write_deltalake

    options = {"AWS_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "lake-key", "AWS_REGION": "us-east-1",
               "AWS_SECRET_ACCESS_KEY": "lake-secret-value", "AWS_ALLOW_HTTP": "true",
               "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
    where = "s3://lake/warehouse/with_vectors/posting_proposals"
    write_deltalake(where, pa.table({"InvoiceNo": ["S3-0"]}), storage_options=options)
    DeltaTable(where, storage_options=options).alter.add_feature(TableFeatures.DeletionVectors,
                                                                 allow_protocol_versions_increase=True)
    config = {"delta_root": "s3://lake/warehouse", "target_schema": "with_vectors", "storage_options": options,
              "audit_url": f"sqlite:///{tmp_path / 'audit.sqlite'}"}
    result = run_target(tmp_path, config, messages_for([invoice("S3-1", "1.5", "2026-01-01T00:00:00Z")]),
                        check=False)
    assert result.returncode != 0
    assert f"the Delta table {where} has deletion vectors" in result.stderr
    assert "load_method warehouse" in result.stderr
    assert DeltaTable(where, storage_options=options).version() == 1  # nothing written
