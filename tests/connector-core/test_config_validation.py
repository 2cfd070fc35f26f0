"""Bad configuration is found early and named: every tap checks its configuration when discovering exactly as when
syncing (Meltano discovers before every run), and every plugin's configuration error is one line naming the setting
and its environment variable, exit status 1, no traceback. Each plugin runs as its own process, as Meltano runs it."""

from __future__ import annotations

import json
import subprocess

import pytest

from support.singer import BIN

# Configurations that are complete and valid but for the setting under test; the hosts do not answer (port 9), so a
# check that let the bad value through would fail later on the network, not with the line looked for.
NOWHERE = "http://127.0.0.1:9"
VALID = {
    "tap-ifscloud": {"base_url": NOWHERE, "realm": "mlc", "client_id": "c", "client_secret": "s"},
    "tap-jiracloud": {"base_url": NOWHERE, "email": "bot@example.com", "api_token": "t"},
    "tap-sfdc": {"base_url": NOWHERE, "client_id": "c", "client_secret": "s",
                 "objects": {"Account": {"fields": ["Id", "Name", "SystemModstamp"]}}},
    "tap-jaggaer": {"base_url": NOWHERE, "client_id": "c", "client_secret": "s"},
}
# A whole-number setting of each tap: page size where the tap has one (Salesforce pages server-side: its request budget)
WHOLE_NUMBER = {"tap-ifscloud": "page_size", "tap-jiracloud": "page_size", "tap-sfdc": "requests_per_minute",
                "tap-jaggaer": "page_size"}


def run(executable: str, config: dict, tmp_path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run([str(BIN / executable), "--config", str(path), *args], capture_output=True, text=True,
                          input=stdin, timeout=120)


def the_one_error(completed: subprocess.CompletedProcess) -> str:
    assert completed.returncode == 1, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr and "ValueError" not in completed.stderr, completed.stderr[-3000:]
    errors = [line for line in completed.stderr.splitlines() if "| ERROR " in line]
    assert len(errors) == 1, completed.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("mode", ["discover", "sync"])
@pytest.mark.parametrize("tap", sorted(VALID))
def test_a_whole_number_setting_given_text_is_named(tap, mode, tmp_path):
    setting = WHOLE_NUMBER[tap]
    completed = run(tap, {**VALID[tap], setting: "abc"}, tmp_path, *(["--discover"] if mode == "discover" else []))
    variable = f"{tap.upper().replace('-', '_')}_{setting.upper()}"
    assert the_one_error(completed).endswith(f"{setting} ({variable}) must be a whole number, not 'abc'")
    assert completed.stdout == ""


@pytest.mark.parametrize("mode", ["discover", "sync"])
@pytest.mark.parametrize("tap", sorted(VALID))
def test_a_start_date_that_is_no_date_is_named(tap, mode, tmp_path):
    completed = run(tap, {**VALID[tap], "start_date": "not-a-date"}, tmp_path,
                    *(["--discover"] if mode == "discover" else []))
    variable = f"{tap.upper().replace('-', '_')}_START_DATE"
    assert the_one_error(completed).endswith(
        f"start_date ({variable}) must be an ISO 8601 date or date and time, e.g. 2024-01-31 or 2024-01-31T00:00:00Z, "
        "not 'not-a-date'")
    assert completed.stdout == ""


@pytest.mark.parametrize("tap", sorted(VALID))
def test_dates_as_meltano_and_users_write_them_pass(tap, tmp_path):
    """A plain date and a UTC timestamp are both fine: the tap goes on to the (unreachable) server, no config error."""
    for start_date in ("2024-01-31", "2024-01-31T00:00:00Z"):
        completed = run(tap, {**VALID[tap], "start_date": start_date, "max_tries": 1}, tmp_path, "--discover")
        assert "start_date" not in completed.stderr, completed.stderr[-2000:]


def test_every_problem_is_its_own_line_and_a_secret_value_is_never_shown(tmp_path):
    secret = 123456789  # a client secret given as a number: wrong, and still not to be printed
    completed = run("tap-jaggaer", {**VALID["tap-jaggaer"], "client_secret": secret, "page_size": "abc",
                                    "start_date": "yesterday"}, tmp_path)
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "| ERROR " in line]
    assert len(errors) == 3, completed.stderr
    assert any(e.endswith("client_secret (TAP_JAGGAER_CLIENT_SECRET) must be text") for e in errors), errors
    assert str(secret) not in completed.stderr


# Targets: the same check, the same lines. Each is given a valid configuration but for one whole-number setting.
TARGETS = {
    "target-databricks": ({"delta_root": "unused"}, "batch_size_rows"),
    "target-jira": ({"base_url": NOWHERE, "email": "bot@example.com", "api_token": "t"}, "max_tries"),
    "target-teams": ({"channels": {"*": "general"}, "ifs_base_url": NOWHERE, "webhooks": {"general": NOWHERE}},
                     "digest_threshold"),
    "target-salesforce": ({"base_url": NOWHERE, "client_id": "c", "client_secret": "s", "sobjects": {}}, "batch_size"),
    "target-jaggaer": ({"base_url": NOWHERE, "client_id": "c", "client_secret": "s", "streams": {}}, "batch_size"),
    "target-ifscloud": ({"base_url": NOWHERE, "realm": "mlc", "client_id": "c", "client_secret": "s", "streams": {}},
                        "max_tries"),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_target_names_the_setting_too(target, tmp_path):
    config, setting = TARGETS[target]
    completed = run(target, {**config, setting: "abc"}, tmp_path, stdin="")
    variable = f"{target.upper().replace('-', '_')}_{setting.upper()}"
    assert the_one_error(completed).endswith(f"{setting} ({variable}) must be a whole number, not 'abc'")
