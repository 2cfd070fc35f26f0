"""No secret reaches the audit store: registered values are masked everywhere, sensitive fields inside payloads."""

from __future__ import annotations

import dataclasses
import secrets
from decimal import Decimal
from pathlib import Path

import msgspec
import sqlalchemy as sa

from ml_connector_core import audit_blocks
from ml_connector_core.audit import AuditEntry, AuditTrail
from ml_connector_core.redaction import REDACTED, register_secret


def stored_text(trail: AuditTrail) -> str:
    """Every value of every audit table, as text, read back through SQL; the compressed columns of blocks
    decompressed (entries, every payload and source)."""
    with trail._engine.connect() as conn:
        parts = [
            repr(tuple(row))
            for table in ("audit_runs", "audit_schemas", "audit_records", "audit_blocks")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        ]
        for entry_columns, documents in conn.execute(sa.text("SELECT entry_columns, documents FROM audit_blocks")):
            parts.append(repr(audit_blocks.unpack_entries(entry_columns)))
            if documents is not None:
                parts.extend(msgspec.json.encode(frame).decode()
                             for frame in audit_blocks.unpack_documents(documents).frames())
    assert parts
    return "\n".join(parts)


def sqlite_file_bytes(database: Path) -> bytes:
    """The database file and its write-ahead log, as they lie on disk."""
    return b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))


def test_a_registered_secret_never_reaches_the_store(audit_url, tmp_path):
    token = "tok-" + secrets.token_hex(12)
    password = 'pa"ss\\w0rd-' + secrets.token_hex(6)  # JSON escapes it: it must be found in its escaped form too
    register_secret(token)
    register_secret(password)
    with AuditTrail(audit_url) as trail:
        with trail.start_run("ifs-to-jira", "target-jira") as run:
            run.remember_schema("issues", {"type": "object", "description": f"made with {token}"}, ["key"])
            run.record(
                [
                    AuditEntry(
                        stream="issues",
                        key={"key": "PO-1"},
                        operation="insert",
                        outcome="failed",
                        destination=f"https://hooks.example/{token}",
                        error=f"HTTP 401 for Bearer {token} (password {password})",
                        payload={
                            "summary": f"note with {token} inside",
                            "fields": {"comments": [f"login {password}"]},
                            "amount": Decimal("12.30"),
                        },
                    ),
                    AuditEntry(
                        stream="issues", key={"key": "PO-2"}, operation="insert", outcome="succeeded",
                        payload={"summary": f"only this one: {password}"},
                    ),
                ]
            )
            run.finish("failed", {"last_error": f"Bearer {token}"})
        text = stored_text(trail)
        [entry] = trail.failures()
        [succeeded] = [e for e in trail.entries() if e.outcome == "succeeded"]
    for secret in (token, password, password.replace("\\", "\\\\").replace('"', '\\"')):
        assert secret not in text
    assert entry.payload == {
        "summary": f"note with {REDACTED} inside",
        "fields": {"comments": [f"login {REDACTED}"]},
        "amount": Decimal("12.30"),
    }
    assert succeeded.payload == {"summary": f"only this one: {REDACTED}"}
    assert entry.error == f"HTTP 401 for Bearer {REDACTED} (password {REDACTED})"
    assert entry.destination == f"https://hooks.example/{REDACTED}"
    if audit_url.startswith("sqlite"):
        on_disk = sqlite_file_bytes(tmp_path / "audit.sqlite")
        assert token.encode() not in on_disk and password.encode() not in on_disk
        assert b"note with" in on_disk  # the scan reads the right file


def test_secrets_registered_after_the_run_started_are_masked_too(sqlite_url):
    with AuditTrail(sqlite_url) as trail:
        run = trail.start_run("flow", "target-test")
        run.record([AuditEntry(stream="s", key={"id": 1}, operation="insert", outcome="succeeded", payload={"v": "early"})])
        late = "late-" + secrets.token_hex(10)
        register_secret(late)  # e.g. a token fetched mid-run
        run.record([AuditEntry(stream="s", key={"id": 2}, operation="insert", outcome="failed", payload={"v": late}, error=late)])
        assert late not in stored_text(trail)


def test_sensitive_fields_are_masked_inside_payloads_and_business_data_is_not(sqlite_url):
    payload = {
        "client_secret": "abc",
        "Authorization": "Bearer xyz",
        "headers": {"X-Api-Key": "k-1", "Accept": "application/json"},
        "accessToken": {"nested": "structure"},
        "users": [{"name": "ann", "password": "p1"}, {"name": "bob", "PASSWORD": "p2"}],
        "token_count": 5,
        "secret_question_id": 7,
        "description": "password reset token kit",
        "amount": Decimal("99.990"),
    }
    with AuditTrail(sqlite_url) as trail:
        run = trail.start_run("flow", "target-test")
        run.record([AuditEntry(stream="s", key={"id": 1}, operation="insert", outcome="succeeded", payload=payload)])
        [stored] = trail.entries()
    assert stored.payload == {
        "client_secret": REDACTED,
        "Authorization": REDACTED,
        "headers": {"X-Api-Key": REDACTED, "Accept": "application/json"},
        "accessToken": REDACTED,
        "users": [{"name": "ann", "password": REDACTED}, {"name": "bob", "PASSWORD": REDACTED}],
        "token_count": 5,
        "secret_question_id": 7,
        "description": "password reset token kit",
        "amount": Decimal("99.990"),
    }
    assert '"amount":99.990' in stored.payload_json


def test_the_list_of_sensitive_fields_is_configurable(sqlite_url):
    with AuditTrail(sqlite_url, sensitive_fields=["ssn", "bank account"]) as trail:
        run = trail.start_run("flow", "target-test")
        run.record(
            [
                AuditEntry(
                    stream="s", key={"id": 1}, operation="insert", outcome="succeeded",
                    payload={"SSN": "19121212-1212", "bank_account": "1234", "password": "kept as business data"},
                )
            ]
        )
        [stored] = trail.entries()
    assert stored.payload == {"SSN": REDACTED, "bank_account": REDACTED, "password": "kept as business data"}


def test_schemas_keep_their_sensitive_looking_properties(sqlite_url):
    schema = {"type": "object", "properties": {"api_token": {"type": "string"}, "id": {"type": "integer"}}}
    with AuditTrail(sqlite_url) as trail:
        run = trail.start_run("flow", "target-test")
        run.remember_schema("s", schema, ["id"])
        assert trail.schema(run.run_id, "s").schema == schema



def test_payloads_given_as_dataclasses_are_masked_as_well(sqlite_url):
    @dataclasses.dataclass
    class Login:
        user: str
        password: str
        limit: Decimal

    with AuditTrail(sqlite_url) as trail:
        run = trail.start_run("flow", "target-test")
        run.record([AuditEntry(stream="s", key={"id": 1}, operation="insert", outcome="succeeded",
                               payload={"login": Login("ann", "hunter2-pw", Decimal("1.50"))})])
        [stored] = trail.entries()
    assert stored.payload_json == '{"login":{"user":"ann","password":"' + REDACTED + '","limit":1.50}}'
