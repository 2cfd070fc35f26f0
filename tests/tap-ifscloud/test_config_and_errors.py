"""Bad configuration and refusals from the server end with a clear message; secrets never show."""

from __future__ import annotations

import json
import os
import subprocess

from support.ifs import CLIENT_SECRET
from support.singer import BIN, run_tap

from ml_connector_core.secrets import generate_key, seal


def test_a_sealed_client_secret_works_and_never_appears_in_output(ifs, tmp_path):
    key = generate_key()
    config = ifs.tap_config(client_secret=seal(CLIENT_SECRET, key=key.encode()))
    run = run_tap(tmp_path, config, streams=["suppliers"], env={"MLC_SECRET_KEY": key})
    assert run.records("suppliers")
    assert CLIENT_SECRET not in run.stdout + run.stderr
    assert "is not sealed" not in run.stderr


def test_a_plain_client_secret_still_works_and_is_warned_about(ifs, tmp_path):
    """Meltano writes it to .meltano/run/, where a killed run leaves it: accepted during a move to sealed values,
    but said at start, without the value."""
    run = run_tap(tmp_path, ifs.tap_config(), streams=["suppliers"])
    assert run.records("suppliers")
    warnings = [line for line in run.stderr.splitlines() if "'client_secret' is not sealed" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], run.stderr[-3000:]
    assert CLIENT_SECRET not in run.stdout + run.stderr


def test_a_sealed_secret_without_its_key_names_the_setting(ifs, tmp_path):
    config = ifs.tap_config(client_secret=seal(CLIENT_SECRET, key=generate_key().encode()))
    run = run_tap(tmp_path, config, streams=None, env={"MLC_SECRET_KEY": generate_key()}, check=False)
    assert run.returncode != 0
    assert "client_secret" in run.stderr and "cannot be opened" in run.stderr
    assert CLIENT_SECRET not in run.stderr


def test_wrong_credentials_fail_clearly_without_echoing_the_secret(ifs, tmp_path):
    config = ifs.tap_config(client_secret="definitely-wrong-secret")
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode != 0
    assert "refused client 'mlc-sandbox-client'" in run.stderr and "HTTP 401" in run.stderr
    assert "definitely-wrong-secret" not in run.stdout + run.stderr


def test_missing_host_is_a_configuration_error(tmp_path):
    run = run_tap(tmp_path, {"realm": "r", "client_id": "c", "client_secret": "s"}, check=False)
    assert run.returncode != 0
    assert "tap-ifscloud needs base_url (TAP_IFSCLOUD_BASE_URL) or tenant (TAP_IFSCLOUD_TENANT)" in run.stderr


def test_discovery_without_credentials_names_what_is_missing(tmp_path):
    """--discover checks the configuration as a sync does; Meltano discovers before every run."""
    def discover(config: dict) -> subprocess.CompletedProcess:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        return subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(path), "--discover"], capture_output=True,
                              text=True, timeout=120)

    no_secret = discover({"base_url": "http://127.0.0.1:9", "client_id": "c"})
    assert no_secret.returncode == 1 and no_secret.stdout == ""
    assert "client_secret (TAP_IFSCLOUD_CLIENT_SECRET) is required" in no_secret.stderr
    no_realm = discover({"base_url": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"})
    assert no_realm.returncode == 1 and no_realm.stdout == ""
    assert ("tap-ifscloud needs realm (TAP_IFSCLOUD_REALM) or token_url (TAP_IFSCLOUD_TOKEN_URL) to get a token from "
            "IFS") in no_realm.stderr
    for run in (no_secret, no_realm):
        assert "Traceback" not in run.stderr and "KeyError" not in run.stderr


def test_discovery_with_a_key_that_does_not_open_the_secret_is_one_line(tmp_path):
    """Meltano discovers before every run: a wrong key file ends there in one line naming the setting and the file."""
    key_file = tmp_path / "other.key"
    key_file.write_text(generate_key())
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"base_url": "http://127.0.0.1:9", "realm": "mlc", "client_id": "c",
                                  "client_secret": seal(CLIENT_SECRET, key=generate_key().encode())}))
    run = subprocess.run([str(BIN / "tap-ifscloud"), "--config", str(config), "--discover"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "MLC_SECRET_KEY": "",
                                                      "MLC_SECRET_KEY_FILE": str(key_file)})
    assert run.returncode == 1 and run.stdout == ""
    errors = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, run.stderr
    assert errors[0].endswith(f"the sealed value of 'client_secret' cannot be opened with the key file {key_file} "
                              "named by MLC_SECRET_KEY_FILE: it was sealed with another key, or is damaged")
    assert "Traceback" not in run.stderr and CLIENT_SECRET not in run.stderr


def test_an_unknown_entity_set_is_named(ifs, tmp_path):
    config = ifs.tap_config(stream_overrides={"work_orders": {"entity_set": "NoSuchSet"}})
    run = run_tap(tmp_path, config, check=False)
    assert run.returncode != 0 and "NoSuchSet" in run.stderr and "ActiveWorkOrdersHandling" in run.stderr


def test_a_400_is_not_retried_and_names_the_set_and_the_servers_message(ifs, tmp_path):
    config = ifs.tap_config()
    ifs.fault("status", 1, status=400, path_contains="SupplierInfoGeneralSet")
    ifs.clear_requests()
    run = run_tap(tmp_path, config, streams=["suppliers"], check=False)
    assert run.returncode != 0
    assert "SupplierHandling.svc/SupplierInfoGeneralSet: HTTP 400" in run.stderr
    assert len([r for r in ifs.requests_log() if "SupplierInfoGeneralSet" in r["path"]]) == 1


def test_about_lists_settings_with_descriptions():
    about = subprocess.run([str(BIN / "tap-ifscloud"), "--about", "--format", "json"], capture_output=True, text=True, check=True)
    assert '"client_secret"' in about.stdout and "sealed" in about.stdout
