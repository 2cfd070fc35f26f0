"""Sealed settings open only with the right key, and the CLI seals what a user pipes in."""

import subprocess

import pytest

from ml_connector_core import secrets
from support.singer import BIN


def test_seal_then_unseal_round_trips(monkeypatch):
    monkeypatch.setenv(secrets.KEY_ENV, secrets.generate_key())
    sealed = secrets.seal("s3cr3t-value")
    assert sealed.startswith("sealed:v1:") and "s3cr3t-value" not in sealed
    assert secrets.unseal(sealed) == "s3cr3t-value"


def test_plain_values_pass_through():
    assert secrets.unseal("not-sealed") == "not-sealed"


def test_wrong_key_names_the_setting_not_the_secret(monkeypatch):
    monkeypatch.setenv(secrets.KEY_ENV, secrets.generate_key())
    sealed = secrets.seal("s3cr3t-value")
    monkeypatch.setenv(secrets.KEY_ENV, secrets.generate_key())
    with pytest.raises(secrets.SecretKeyError, match="client_secret") as caught:
        secrets.unseal(sealed, setting_name="client_secret")
    assert "s3cr3t-value" not in str(caught.value)


def test_missing_key_says_how_to_provide_one(monkeypatch):
    monkeypatch.delenv(secrets.KEY_ENV, raising=False)
    monkeypatch.delenv(secrets.KEY_FILE_ENV, raising=False)
    with pytest.raises(secrets.SecretKeyError, match="MLC_SECRET_KEY"):
        secrets.unseal("sealed:v1:abc")


def test_key_file(monkeypatch, tmp_path):
    key_file = tmp_path / "mlc.key"
    key_file.write_text(secrets.generate_key() + "\n")
    monkeypatch.delenv(secrets.KEY_ENV, raising=False)
    monkeypatch.setenv(secrets.KEY_FILE_ENV, str(key_file))
    assert secrets.unseal(secrets.seal("from-a-file")) == "from-a-file"


def test_cli_generates_a_key_and_seals_stdin(monkeypatch):
    key = subprocess.run([str(BIN / "mlc-secret"), "generate-key"], capture_output=True, text=True, check=True).stdout.strip()
    sealed = subprocess.run(
        [str(BIN / "mlc-secret"), "seal", "--stdin"], input="piped-secret\n", capture_output=True, text=True, check=True,
        env={"MLC_SECRET_KEY": key, "PATH": ""},
    ).stdout.strip()
    assert secrets.unseal(sealed, key=key.encode()) == "piped-secret"
