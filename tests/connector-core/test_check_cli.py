"""mlc-check's parts: which plugins a job needs and what Meltano hands each check command (this project's meltano.yml,
read by Meltano itself), how a check command that is missing, crashes or fails is reported (real processes), and how
the results of several plugins become one table per system."""

from __future__ import annotations

import json
import sys

import pytest

from ml_connector_core.check import CheckResult, failed, passed, plugin_config, results_as_json, warned
from ml_connector_core.check_cli import (
    Invocation, PluginOutcome, UsageError, invocations, merged_lines, open_project, plugins_to_check, render, run_check,
)
from ml_connector_core.redaction import register_secret
from support.meltano import PROJECT_ROOT


@pytest.fixture(scope="module")
def project():
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT_ROOT)
        yield open_project("sandbox")


def names(plugins) -> list[str]:
    return [p.name for p in plugins]


def test_a_job_is_checked_through_the_plugins_of_its_tasks(project):
    chosen, unchecked = plugins_to_check(project, ("ifs-to-jira",))
    assert names(chosen) == ["tap-ifscloud-jira", "target-jira"]  # the mapping jira-issue-fields is no plugin
    assert unchecked == []
    chosen, unchecked = plugins_to_check(project, ("ifs-to-jsonl", "tap-ifscloud", "target-databricks"))
    assert names(chosen) == ["tap-ifscloud-jsonl", "tap-ifscloud", "target-databricks"]
    assert [(r.check, r.status) for r in unchecked] == [("target-jsonl: not checked", "warn")]


def test_without_a_name_every_plugin_with_a_check_command_inherited_ones_too(project):
    chosen, _ = plugins_to_check(project, ())
    assert {"tap-ifscloud", "tap-ifscloud-jira", "target-ifscloud-jaggaer", "target-databricks", "tap-sfdc"} <= set(
        names(chosen))
    # no check command; or only the parent of inherited plugins, in no job (its children carry the streams)
    assert not {"target-jsonl", "meltano-map-transformer", "target-ifscloud"} & set(names(chosen))
    assert len(chosen) == len(set(names(chosen))) == 17


def test_an_unknown_job_is_a_usage_error_listing_the_jobs(project):
    with pytest.raises(UsageError, match="ifs-to-databricks") as raised:
        plugins_to_check(project, ("ifs-to-nowhere",))
    assert raised.value.exit_code == 2


def test_an_inherited_plugin_s_settings_reach_its_check_under_the_parent_s_prefix(project, monkeypatch):
    """What `meltano invoke tap-ifscloud-jira:check` exports, read back the way tap-ifscloud-check reads it."""
    from tap_ifscloud.tap import TapIfsCloud
    from target_ifscloud.target import TargetIfsCloud

    monkeypatch.setenv("TAP_IFSCLOUD_CLIENT_SECRET", "secret-typed-into-the-shell")
    monkeypatch.setenv("TARGET_IFSCLOUD_CLIENT_SECRET", "another-secret-from-the-shell")
    monkeypatch.setenv("MLC_SANDBOX_IFS_URL", "http://127.0.0.1:18600")  # the sandbox environment's base_url
    tap, target = invocations(project, [project.plugins.find_plugin(name) for name in (
        "tap-ifscloud-jira", "target-ifscloud-jaggaer")])
    assert tap.argv[0].endswith("/.meltano/extractors/tap-ifscloud/venv/bin/tap-ifscloud-check")
    assert tap.argv[1:] == ["--config", "ENV", "--format", "json"]
    # Meltano flattens object settings in the environment ...
    assert json.loads(tap.env["TAP_IFSCLOUD_STREAM_OVERRIDES"]) == {"purchase_orders.expand": ""}
    assert json.loads(tap.env["TAP_IFSCLOUD__SELECT"]) == ["purchase_orders.*", "work_orders.*"]
    # ... and the check reads them nested, as the plugin's config file would hold them
    monkeypatch.setattr("os.environ", tap.env)
    config = plugin_config(TapIfsCloud, [], from_env=True)
    assert config["stream_overrides"] == {"purchase_orders": {"expand": ""}}
    assert config["client_secret"] == "secret-typed-into-the-shell" and config["realm"] == "mlc"
    assert config["base_url"] == "http://127.0.0.1:18600"
    monkeypatch.setattr("os.environ", target.env)
    streams = plugin_config(TargetIfsCloud, [], from_env=True)["streams"]
    assert streams["ifs_suppliers_from_jaggaer"]["actions"] == {"Active": "Activate", "Blocked": "Block",
                                                                "Inactive": "Deactivate"}
    assert streams["ifs_posting_proposals"]["mode"] == "create"


def invocation(code: str, plugin: str = "target-example") -> Invocation:
    return Invocation(plugin, "Example", [sys.executable, "-c", code], {"PATH": "/usr/bin:/bin"}, str(PROJECT_ROOT))


def test_a_missing_check_command_is_a_failed_line_naming_the_plugin():
    outcome = run_check(Invocation("target-example", "Example", ["/nonexistent/target-example-check"], {}, "/"), 60)
    [line] = outcome.results
    assert (line.status, line.check) == ("fail", "check command")
    assert "target-example-check is not installed" in line.detail
    assert "meltano install --clean target-example" in line.fix


def test_a_crashing_check_command_is_a_failed_line_with_its_error_and_no_secret():
    register_secret("crash-secret-value-123")
    outcome = run_check(invocation("import sys; sys.stderr.write('Traceback (most recent call last):\\n'"
                                   "  'KeyError: token crash-secret-value-123\\n'); sys.exit(1)"), 60)
    [line] = outcome.results
    assert line.status == "fail" and "exit status 1 and no results" in line.detail
    assert "KeyError: token ***REDACTED***" in line.detail and "crash-secret-value-123" not in line.detail
    assert "meltano invoke target-example:check --format table" in line.fix


def test_a_check_command_s_results_are_read_from_its_json():
    results = [passed("Example", "token", "valid for 3600 s"), failed("Example", "field X", "missing", "add X")]
    outcome = run_check(invocation(f"import sys; print({results_as_json(results)!r}); sys.exit(1)"), 60)
    assert outcome.results == results and outcome.exit_status == 1


def test_a_check_command_that_fails_without_a_failed_line_gets_one():
    outcome = run_check(invocation(f"import sys; print({results_as_json([])!r}); sys.exit(3)"), 60)
    assert [r.status for r in outcome.results] == ["fail"] and "exit status 3" in outcome.results[0].detail


def test_identical_lines_of_plugins_sharing_a_configuration_are_shown_once():
    token = passed("IFS Cloud", "token", "valid for 3600 s")
    outcomes = [
        PluginOutcome("tap-ifscloud", [token, passed("IFS Cloud", "stream suppliers", "50 rows")], 0, 1.0),
        PluginOutcome("tap-ifscloud-jira", [token, warned("IFS Cloud", "stream work_orders", "no change column",
                                                          "set stream_overrides")], 0, 1.0),
        PluginOutcome("target-databricks", [passed("Databricks", "credentials", "accepted")], 0, 1.0),
    ]
    systems = merged_lines(outcomes, [])
    assert list(systems) == ["IFS Cloud", "Databricks"]
    assert [(line.result.check, line.plugins) for line in systems["IFS Cloud"]] == [
        ("token", ["tap-ifscloud", "tap-ifscloud-jira"]), ("stream suppliers", ["tap-ifscloud"]),
        ("stream work_orders", ["tap-ifscloud-jira"])]
    table = render(systems)
    assert table.count("valid for 3600 s") == 1
    assert "IFS Cloud  (tap-ifscloud, tap-ifscloud-jira)" in table
    assert "50 rows  [tap-ifscloud]" in table and "→ set stream_overrides" in table
    assert "[target-databricks]" not in table  # a system of one plugin needs no plugin names per line


def test_a_line_from_every_plugin_of_one_family_names_the_family():
    token = passed("IFS Cloud", "token", "valid for 180 s")
    plugins = ["tap-ifscloud", "tap-ifscloud-jira", "target-ifscloud-jira", "target-ifscloud-jaggaer"]
    roots = {"tap-ifscloud": "tap-ifscloud", "tap-ifscloud-jira": "tap-ifscloud",
             "target-ifscloud-jira": "target-ifscloud", "target-ifscloud-jaggaer": "target-ifscloud"}
    outcomes = [PluginOutcome(p, [token, passed("IFS Cloud", f"stream of {p}", "readable")], 0, 1.0) for p in plugins]
    outcomes[0].results.append(passed("IFS Cloud", "stream vouchers", "readable"))
    outcomes[1].results.append(passed("IFS Cloud", "stream vouchers", "readable"))
    outcomes[2].results.append(passed("IFS Cloud", "route jira_status", "writable"))
    table = render(merged_lines(outcomes, []), roots)
    assert "stream vouchers" in table and "readable  [tap-ifscloud*]" in table
    assert "writable  [target-ifscloud-jira]" in table
    assert "valid for 180 s\n" in table  # every plugin of the table: no names at all


def test_results_survive_the_json_round_trip():
    result = CheckResult("Jira", "custom field 'IFS Key'", "fail", "not on screen", "add it to the screen")
    assert run_check(invocation(f"print({results_as_json([result])!r})"), 60).results == [result]


def test_the_plaintext_of_a_sealed_secret_is_masked_in_what_a_crash_printed(project, monkeypatch):
    from ml_connector_core.secrets import generate_key, seal

    key = generate_key()
    monkeypatch.setenv("MLC_SECRET_KEY", key)
    monkeypatch.setenv("TARGET_EXAMPLE_CLIENT_SECRET", seal("opened-only-in-the-plugin", key=key.encode()))
    invocations(project, [])  # registers what is secret in the environment
    outcome = run_check(invocation("import sys; sys.exit('ValueError: bad secret opened-only-in-the-plugin')"), 60)
    assert "bad secret ***REDACTED***" in outcome.results[0].detail
