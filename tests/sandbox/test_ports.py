"""One setting, MLC_SANDBOX_PORT_BASE, moves every stand-in's default port and the URLs `mlc-sandbox env` prints for
meltano.yml; a taken port is one line naming the port, the stand-in and how to move it; options may come from the
environment (MLC_SANDBOX_<STAND-IN>_<OPTION>)."""

from __future__ import annotations

import os
import subprocess

import requests

from support.ports import free_port_base
from support.singer import BIN

OFFSETS = {"ifs": 0, "databricks": 100, "teams": 200, "jira": 300, "salesforce": 400, "jaggaer": 500}


def sandbox(*args: str, base: int | str | None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLC_SANDBOX_PORT_BASE"}
    if base is not None:
        env["MLC_SANDBOX_PORT_BASE"] = str(base)
    return subprocess.run([str(BIN / "mlc-sandbox"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def exports(completed: subprocess.CompletedProcess) -> dict[str, str]:
    assert completed.returncode == 0, completed.stderr
    pairs = [line.removeprefix("export ").split("=", 1) for line in completed.stdout.splitlines()]
    return dict(pairs)


def test_env_prints_every_stand_ins_url_from_the_base():
    assert exports(sandbox("env", base=None)) == {
        "MLC_SANDBOX_IFS_URL": "http://127.0.0.1:8600", "MLC_SANDBOX_DATABRICKS_URL": "http://127.0.0.1:8700",
        "MLC_SANDBOX_TEAMS_URL": "http://127.0.0.1:8800", "MLC_SANDBOX_JIRA_URL": "http://127.0.0.1:8900",
        "MLC_SANDBOX_SALESFORCE_URL": "http://127.0.0.1:9000", "MLC_SANDBOX_JAGGAER_URL": "http://127.0.0.1:9100"}
    assert exports(sandbox("env", base=21000)) == {
        f"MLC_SANDBOX_{name.upper()}_URL": f"http://127.0.0.1:{21000 + offset}" for name, offset in OFFSETS.items()}


def test_serve_without_port_listens_on_base_plus_offset_and_wait_sees_it():
    base = free_port_base()
    env = {**os.environ, "MLC_SANDBOX_PORT_BASE": str(base)}
    processes = [subprocess.Popen([str(BIN / "mlc-sandbox"), "serve", name], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for name in ("jira", "jaggaer", "salesforce", "teams")]
    try:
        waited = sandbox("wait", "jira", "jaggaer", "salesforce", "teams", base=base)
        assert waited.returncode == 0, waited.stderr
        urls = exports(sandbox("env", base=base))
        for name in ("jira", "jaggaer", "salesforce", "teams"):
            url = urls[f"MLC_SANDBOX_{name.upper()}_URL"]
            assert url == f"http://127.0.0.1:{base + OFFSETS[name]}"
            assert requests.get(f"{url}/_admin/health", timeout=5).json() == {"status": "ok"}
        taken = sandbox("serve", "jira", base=base)
        assert taken.returncode != 0 and "Traceback" not in taken.stderr
        line, = taken.stderr.strip().splitlines()
        assert f"mlc-sandbox jira: cannot listen on 127.0.0.1:{base + 300}" in line
        assert "--port" in line and f"MLC_SANDBOX_PORT_BASE (now {base}" in line
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


def test_a_taken_port_stops_the_ifs_stand_in_before_it_builds_its_data(tmp_path):
    base = free_port_base()
    with subprocess.Popen([str(BIN / "mlc-sandbox"), "serve", "jaggaer", "--port", str(base)],
                          stdout=subprocess.DEVNULL) as jaggaer:
        try:
            assert sandbox("wait", "ifs", base=base).returncode == 0  # the jaggaer stand-in answers on ifs's port
            taken = sandbox("serve", "ifs", "--data-dir", str(tmp_path), base=base)
            assert taken.returncode != 0 and "Traceback" not in taken.stderr
            assert taken.stderr.strip().splitlines() == [
                f"mlc-sandbox ifs: cannot listen on 127.0.0.1:{base} (Address already in use): choose another port "
                f"with --port, or move every stand-in with MLC_SANDBOX_PORT_BASE (now {base}: ifs {base}, databricks "
                f"{base + 100}, teams {base + 200}, jira {base + 300}, salesforce {base + 400}, jaggaer {base + 500})"]
            assert list(tmp_path.iterdir()) == []
        finally:
            jaggaer.terminate()


def test_a_bad_base_is_one_line_naming_the_setting():
    for bad in ("86OO", "0", "65100"):
        for args in (("env",), ("serve", "jira")):
            completed = sandbox(*args, base=bad)
            assert completed.returncode != 0 and completed.stdout == ""
            assert completed.stderr.strip().splitlines() == [
                f"mlc-sandbox: MLC_SANDBOX_PORT_BASE must be a port number from 1 to 65035 (the stand-ins use it up "
                f"to +500), not '{bad}'"]


def test_wait_names_the_stand_in_that_does_not_answer():
    base = free_port_base()
    completed = sandbox("wait", "teams", "--timeout", "0.5", base=base)
    assert completed.returncode != 0
    assert completed.stderr.strip() == (
        f"mlc-sandbox wait: the teams stand-in did not answer on http://127.0.0.1:{base + 200}/_admin/health within "
        "0.5s (is `mlc-sandbox serve teams` running with the same MLC_SANDBOX_PORT_BASE?)")


def test_an_option_can_come_from_the_environment_and_the_command_line_wins():
    base = free_port_base()
    env = {**os.environ, "MLC_SANDBOX_PORT_BASE": str(base), "MLC_SANDBOX_JIRA_RATE_LIMIT": "0",
           "MLC_SANDBOX_JAGGAER_RATE_LIMIT": "0"}
    jira = subprocess.Popen([str(BIN / "mlc-sandbox"), "serve", "jira"], env=env, stdout=subprocess.DEVNULL)
    jaggaer = subprocess.Popen([str(BIN / "mlc-sandbox"), "serve", "jaggaer", "--rate-limit", "7"], env=env,
                               stdout=subprocess.DEVNULL)
    try:
        assert sandbox("wait", "jira", "jaggaer", base=base).returncode == 0
        jira_settings = requests.get(f"http://127.0.0.1:{base + 300}/_admin/settings", timeout=5).json()
        jaggaer_settings = requests.get(f"http://127.0.0.1:{base + 500}/_admin/settings", timeout=5).json()
        assert jira_settings["rate_limit"] == 0 and jaggaer_settings["rate_limit"] == 7
    finally:
        jira.terminate()
        jaggaer.terminate()
        jira.wait(timeout=10)
        jaggaer.wait(timeout=10)


def test_a_bad_option_from_the_environment_is_one_line_naming_the_variable():
    env = {**os.environ, "MLC_SANDBOX_JAGGAER_RATE_LIMIT": "fast"}
    completed = subprocess.run([str(BIN / "mlc-sandbox"), "serve", "jaggaer", "--port", "0"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode != 0
    assert completed.stderr.strip() == (
        "mlc-sandbox: MLC_SANDBOX_JAGGAER_RATE_LIMIT (as --rate-limit) must be a whole number, not 'fast'")
