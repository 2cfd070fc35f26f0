"""mlc-check as a user runs it, from this project's root in the sandbox environment, against the Databricks stand-in
configured through environment variables: a fitting configuration exits 0 with its table, a wrong token exits 1 with
the line naming the setting, and the token is never printed."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from mlc_sandbox.databricks import DatabricksSandboxProcess
from support.meltano import PROJECT_ROOT
from support.sealed import sealed_env
from support.singer import BIN

pytestmark = pytest.mark.meltano  # reads this project's meltano.yml and plugin environments through Meltano

WRONG_TOKEN = "dapi-wrong-token-typed-by-hand"


@pytest.fixture(scope="module")
def databricks(tmp_path_factory):
    stand_in = DatabricksSandboxProcess(data_dir=tmp_path_factory.mktemp("warehouse"))
    stand_in.define_job(31, name="refresh-finance-marts")
    yield stand_in
    stand_in.stop()


def run(command: str, databricks, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "TAP_", "MELTANO_"))}
    env.update({"TARGET_DATABRICKS_LOAD_METHOD": "warehouse", "TARGET_DATABRICKS_WORKSPACE_HOST": databricks.base_url,
                "TARGET_DATABRICKS_TOKEN": databricks.token, "TARGET_DATABRICKS_WAREHOUSE_ID": databricks.warehouse_id,
                "TARGET_DATABRICKS_JOB_ID": "31"})
    env.update({f"TARGET_DATABRICKS_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run([str(BIN / command), *args], cwd=PROJECT_ROOT, env=sealed_env(env), capture_output=True,
                          text=True, timeout=600)


def mlc_check(databricks, *args: str, **settings: str) -> subprocess.CompletedProcess:
    return run("mlc-check", databricks, *args, **settings)


def test_a_fitting_workspace_exits_0_with_its_table(databricks):
    completed = mlc_check(databricks, "target-databricks")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    table = completed.stdout
    assert "Databricks  (target-databricks)" in table
    for check in ("credentials", f"SQL warehouse {databricks.warehouse_id}", "catalog main", "job 31"):
        assert any(line.split()[:len(check.split()) + 1] == [*check.split(), "PASS"] for line in table.splitlines()
                   if line.startswith("  ")), (check, table)
    assert "refresh-finance-marts" in table
    assert table.rstrip().splitlines()[-1].startswith("mlc-check --environment=sandbox: ")
    assert "fits" in table.rstrip().splitlines()[-1] and databricks.token not in completed.stdout + completed.stderr

    unknown = mlc_check(databricks, "ifs-to-nowhere")
    assert unknown.returncode == 2 and "ifs-to-databricks" in unknown.stderr


def test_a_wrong_token_exits_1_with_the_line_to_change_and_never_prints_it(databricks):
    completed = mlc_check(databricks, "--format", "json", "target-databricks", token=WRONG_TOKEN)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert report["exit_status"] == 1 and report["environment"] == "sandbox"
    [line] = [r for r in report["results"] if r["status"] == "fail"]
    assert (line["system"], line["check"], line["plugins"]) == ("Databricks", "credentials", ["target-databricks"])
    assert "HTTP 403: Invalid access token." in line["detail"] and "TARGET_DATABRICKS_TOKEN" in line["fix"]
    assert WRONG_TOKEN not in completed.stdout + completed.stderr

    completed = mlc_check(databricks, "target-databricks", token=WRONG_TOKEN)
    assert completed.returncode == 1 and "credentials  FAIL" in completed.stdout
    assert "does NOT fit: fix the FAIL lines (target-databricks)" in completed.stdout
    assert WRONG_TOKEN not in completed.stdout + completed.stderr


def test_mlc_check_runs_the_check_as_meltano_invoke_runs_it(databricks):
    """mlc-check resolves each plugin's command and settings through Meltano's own invoker in one process; the plugin
    command `meltano invoke <plugin>:check` must see exactly the same."""
    by_meltano = run("meltano", databricks, "invoke", "target-databricks:check", "--format", "json", job_id="32")
    by_mlc_check = mlc_check(databricks, "--format", "json", "target-databricks", job_id="32")
    assert by_meltano.returncode == by_mlc_check.returncode == 1, by_meltano.stderr[-3000:]
    results = json.loads(by_meltano.stdout.strip().splitlines()[-1])
    assert results == [{k: v for k, v in r.items() if k != "plugins"} for r in json.loads(by_mlc_check.stdout)["results"]]
    assert [r["check"] for r in results if r["status"] == "fail"] == ["job 32"]
