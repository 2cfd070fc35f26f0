"""Sealed settings open only with the right key, and the CLI seals what a user pipes in."""

import json
import os
import stat
import subprocess
import sys

import pytest

from ml_connector_core import secrets
from support.singer import BIN


def test_seal_then_unseal_round_trips(monkeypatch):
    monkeypatch.setenv(secrets.KEY_ENV, secrets.generate_key())
    sealed = secrets.seal("s3cr3t-value")
    assert sealed.startswith("sealed:v1:") and "s3cr3t-value" not in sealed
    assert secrets.unseal(sealed) == "s3cr3t-value"


def test_plain_values_pass_through_with_one_warning_per_setting(caplog):
    with caplog.at_level("WARNING", logger="ml_connector_core.secrets"):
        assert secrets.unseal("not-sealed", setting_name="plain_passing_setting") == "not-sealed"
        assert secrets.unseal("not-sealed", setting_name="plain_passing_setting") == "not-sealed"
        assert secrets.unseal("", setting_name="an_empty_setting") == ""
        assert secrets.unseal("eu-west-1", setting_name="storage_options.region", warn_if_plain=False) == "eu-west-1"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("'plain_passing_setting' is not sealed") and "not-sealed" not in warnings[0]
    assert ".meltano/run/" in warnings[0] and "mlc-secret seal" in warnings[0]


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


def test_cli_seals_each_value_of_a_json_object():
    """An object setting whose values are secrets (target-teams' webhooks): each value sealed, the keys kept."""
    key = secrets.generate_key()
    webhooks = {"company-10": "https://example.invalid/workflows/1?sig=abc", "general": "https://example.invalid/2?sig=d"}
    sealed = subprocess.run([str(BIN / "mlc-secret"), "seal", "--json"], input=json.dumps(webhooks),
                            capture_output=True, text=True, check=True, env={"MLC_SECRET_KEY": key, "PATH": ""})
    document = json.loads(sealed.stdout)
    assert set(document) == set(webhooks) and "sig=" not in sealed.stdout
    assert {name: secrets.unseal(value, key=key.encode()) for name, value in document.items()} == webhooks
    again = subprocess.run([str(BIN / "mlc-secret"), "seal", "--json"], input=sealed.stdout, capture_output=True,
                           text=True, check=True, env={"MLC_SECRET_KEY": key, "PATH": ""})
    assert json.loads(again.stdout) == document  # a sealed value is not sealed twice
    refused = subprocess.run([str(BIN / "mlc-secret"), "seal", "--json"], input='["a list"]', capture_output=True,
                             text=True, env={"MLC_SECRET_KEY": key, "PATH": ""})
    assert refused.returncode == 2 and "values of a JSON object" in refused.stderr


# --- A key file of its own ---


def _generate_to(path, **kwargs):
    return subprocess.run([str(BIN / "mlc-secret"), "generate-key", "--output", str(path)], capture_output=True,
                          text=True, **kwargs)


def test_generate_key_output_creates_private_folders_and_file_even_with_a_permissive_umask(tmp_path):
    key_file = tmp_path / "keys" / "ml-connector" / "mlc.key"
    # umask 0 would leave a file made by open() and then chmod-ed readable by others for a moment, and folders made by
    # os.makedirs 0777: only modes given at creation come out private here.
    created = _generate_to(key_file, preexec_fn=lambda: os.umask(0))
    assert created.returncode == 0, created.stderr
    assert created.stdout == ""  # the key is in the file only
    assert f"MLC_SECRET_KEY_FILE={key_file}" in created.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.parent.parent.stat().st_mode) == 0o700
    key = key_file.read_text()
    assert key.endswith("\n") and len(key.strip()) == 44
    sealed = secrets.seal("from-the-new-file", key.strip().encode())
    env = {"MLC_SECRET_KEY_FILE": str(key_file)}
    assert subprocess.run([sys.executable, "-c", "import sys; from ml_connector_core.secrets import unseal; "
                           "print(unseal(sys.argv[1]))", sealed], capture_output=True, text=True, check=True,
                          env={**os.environ, **env, "MLC_SECRET_KEY": ""}).stdout.strip() == "from-the-new-file"


def test_generate_key_output_never_overwrites(tmp_path):
    key_file = tmp_path / "mlc.key"
    assert _generate_to(key_file).returncode == 0
    first = key_file.read_text()
    again = _generate_to(key_file)
    assert again.returncode == 2
    assert again.stderr.splitlines() == [f"mlc-secret: {key_file} already exists: not overwritten (a key in use would "
                                         "be lost)"]
    assert key_file.read_text() == first


def test_generate_key_output_into_an_unwritable_place_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    failed = _generate_to(blocker / "mlc.key")
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [f"mlc-secret: cannot write the key to {blocker / 'mlc.key'}: Not a directory"]


def test_generate_key_without_output_prints_the_key():
    printed = subprocess.run([str(BIN / "mlc-secret"), "generate-key"], capture_output=True, text=True, check=True)
    assert len(printed.stdout.strip()) == 44 and printed.stderr == ""


# --- A key that does not fit: one line naming the setting and where the key came from ---


@pytest.fixture
def sealed_with_some_key(monkeypatch):
    monkeypatch.delenv(secrets.KEY_ENV, raising=False)
    monkeypatch.delenv(secrets.KEY_FILE_ENV, raising=False)
    return secrets.seal("s3cr3t-value", secrets.generate_key().encode())


def _refusal(sealed, setting="client_secret") -> str:
    with pytest.raises(secrets.SecretKeyError) as caught:
        secrets.unseal(sealed, setting_name=setting)
    message = str(caught.value)
    assert "\n" not in message and "s3cr3t-value" not in message
    return message


def test_another_key_in_the_environment(monkeypatch, sealed_with_some_key):
    monkeypatch.setenv(secrets.KEY_ENV, secrets.generate_key())
    assert _refusal(sealed_with_some_key) == (
        "the sealed value of 'client_secret' cannot be opened with MLC_SECRET_KEY: it was sealed with another key, "
        "or is damaged")


def test_another_key_in_the_key_file(monkeypatch, tmp_path, sealed_with_some_key):
    key_file = tmp_path / "other.key"
    key_file.write_text(secrets.generate_key())
    monkeypatch.setenv(secrets.KEY_FILE_ENV, str(key_file))
    assert _refusal(sealed_with_some_key) == (
        f"the sealed value of 'client_secret' cannot be opened with the key file {key_file} named by "
        "MLC_SECRET_KEY_FILE: it was sealed with another key, or is damaged")


@pytest.mark.parametrize("content", [b"not-a-key\n", b"caf\xc3\xa9\n", b"\x00\xff\xfe", b""])
def test_a_malformed_key_file(monkeypatch, tmp_path, sealed_with_some_key, content):
    key_file = tmp_path / "broken.key"
    key_file.write_bytes(content)
    monkeypatch.setenv(secrets.KEY_FILE_ENV, str(key_file))
    message = _refusal(sealed_with_some_key)
    assert message.startswith(f"'client_secret' is sealed, but ") and str(key_file) in message
    assert "mlc-secret generate-key" in message or "no key is available" in message


@pytest.mark.parametrize("key", ["garbage", "café" * 11])
def test_a_malformed_key_in_the_environment(monkeypatch, sealed_with_some_key, key):
    monkeypatch.setenv(secrets.KEY_ENV, key)
    message = _refusal(sealed_with_some_key)
    assert message.startswith("'client_secret' is sealed, but MLC_SECRET_KEY holds no")


def test_a_missing_key_file(monkeypatch, tmp_path, sealed_with_some_key):
    monkeypatch.setenv(secrets.KEY_FILE_ENV, str(tmp_path / "nowhere.key"))
    assert _refusal(sealed_with_some_key) == (
        f"'client_secret' is sealed, but the key file {tmp_path / 'nowhere.key'} named by MLC_SECRET_KEY_FILE cannot "
        "be read: No such file or directory")


@pytest.mark.parametrize("damage", [lambda s: s[:-8], lambda s: s + "é", lambda s: "sealed:v1:"])
def test_a_damaged_sealed_value(monkeypatch, sealed_with_some_key, damage):
    monkeypatch.setenv(secrets.KEY_ENV, secrets.generate_key())
    assert "cannot be opened with MLC_SECRET_KEY" in _refusal(damage(sealed_with_some_key))
