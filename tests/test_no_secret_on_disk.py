"""No plain secret on any disk, also after SIGKILL.

Meltano writes every plugin's settings, as the plugin receives them, to .meltano/run/<plugin>/<tap|target>.<uuid>
.config.json (mode 0644) and deletes the file only when the run ends normally: a killed run leaves it behind. So
secrets must reach Meltano sealed. Here every flow out of IFS runs in a fresh copy of the project on the sandbox
environment, with stand-ins whose credentials are random (so that no source file, doc or log of another test holds
them) and sealed by a key of the test's own; each run is killed with SIGKILL, process group and all, while both of its
plugins run. Then every file under the project (its .meltano, and .venv and the plugins' environments, which it links
to), Meltano's log folder and the test's own folder is searched for each plain secret and for the key.

The control: the same kill with a plain client secret finds it in Meltano's leftover config file (mode 0644), which
shows that the search finds what is there and that Meltano behaves as the design assumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from ml_connector_core.secrets import generate_key, is_sealed, seal
from mlc_sandbox.databricks import DatabricksSandbox
from mlc_sandbox.jaggaer import JaggaerSandbox
from mlc_sandbox.jira import JiraSandbox
from mlc_sandbox.salesforce import SalesforceSandbox
from mlc_sandbox.teams import TeamsSandbox
from support.meltano import fresh_copy, user_env
from support.singer import BIN

pytestmark = pytest.mark.meltano

# Every flow out of IFS, and its target's plugin name (each flow has plugins of its own, see meltano.yml's jobs).
FLOWS = {
    "ifs-to-databricks": ["tap-ifscloud", "target-databricks"],
    "ifs-to-jira": ["tap-ifscloud-jira", "jira-issue-fields", "target-jira"],
    "ifs-to-teams": ["tap-ifscloud-notifications", "teams-notable", "target-teams"],
    "ifs-to-salesforce": ["tap-ifscloud-salesforce", "salesforce-fields", "target-salesforce"],
    "ifs-to-jaggaer": ["tap-ifscloud-jaggaer", "jaggaer-fields", "target-jaggaer"],
}


def random_secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def kill_mid_run(project: Path, env: dict, blocks: list[str], ifs) -> list[Path]:
    """`meltano run <blocks>` killed with SIGKILL (its whole process group) once both plugins run and the tap has read
    from IFS (which answers each data request after a second, so a run lasts well past that moment); returns the config
    files Meltano left behind in .meltano/run."""
    tap, target = blocks[0], blocks[-1]
    run_dir = project / ".meltano" / "run"
    ifs.clear_requests()
    log = open(project.parent / f"{tap}.log", "wb")
    process = subprocess.Popen([str(BIN / "meltano"), "run", *blocks], cwd=project, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert process.poll() is None, f"{blocks} ended before it could be killed:\n" + \
                (project.parent / f"{tap}.log").read_text()[-4000:]
            started = list((run_dir / tap).glob("tap.*.config.json")) and \
                list((run_dir / target).glob("target.*.config.json"))
            reads = [r for r in ifs.requests_log() if r.get("kind") == "data"]
            if started and len(reads) >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"{blocks} did not get going")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
    return sorted(run_dir.glob("*/*.config.json"))


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def files_holding(roots: list[Path], values: dict[str, str]) -> dict[str, list[str]]:
    """Each value's name → the files under ``roots`` (symbolic links followed) whose bytes contain it."""
    found = {}
    for name, value in values.items():
        completed = subprocess.run(["grep", "-R", "-l", "-a", "-F", "-e", value, *map(str, roots)],
                                   capture_output=True, text=True)
        assert completed.returncode in (0, 1), completed.stderr[-2000:]  # 1: nothing found
        found[name] = completed.stdout.split()
    return found


@pytest.fixture
def stand_ins(start_ifs):
    """Every stand-in of the flows out of IFS, each with random credentials."""
    plain = {name: random_secret(name) for name in (
        "ifs_client_secret", "databricks_token", "jira_api_token", "salesforce_client_secret",
        "jaggaer_client_secret", "teams_signing_key")}
    ifs = start_ifs(client_secret=plain["ifs_client_secret"], rate_limit=0, fault_rate_delay=1.0)
    with DatabricksSandbox(token=plain["databricks_token"]) as databricks, \
            JiraSandbox(api_token=plain["jira_api_token"], rate_limit=0) as jira, \
            TeamsSandbox(signing_key=plain["teams_signing_key"]) as teams, \
            SalesforceSandbox(client_secret=plain["salesforce_client_secret"]) as salesforce, \
            JaggaerSandbox(client_secret=plain["jaggaer_client_secret"], rate_limit=0) as jaggaer:
        # a webhook URL's secret is its signature (sig=...), made with the stand-in's signing key
        signatures = {channel: parse_qs(urlsplit(url).query)["sig"][0] for channel, url in teams.webhooks().items()}
        plain.update({f"teams_sig_{channel}": sig for channel, sig in signatures.items()})
        yield {"plain": plain, "ifs": ifs, "databricks": databricks, "jira": jira, "teams": teams,
               "salesforce": salesforce, "jaggaer": jaggaer}


def test_killed_runs_leave_no_plain_secret_anywhere(stand_ins, tmp_path):
    plain, ifs = stand_ins["plain"], stand_ins["ifs"]
    project = fresh_copy(tmp_path / "project")
    key = generate_key()
    sealed = lambda name: seal(plain[name], key=key.encode())  # noqa: E731
    databricks, teams = stand_ins["databricks"], stand_ins["teams"]
    env = {
        **user_env(tmp_path / "home"),
        "MLC_SECRET_KEY": key,
        # the sandbox environment of meltano.yml: the stand-ins' URLs and their sealed credentials
        "MLC_SANDBOX_IFS_URL": ifs.base_url, "MLC_SANDBOX_JIRA_URL": stand_ins["jira"].base_url,
        "MLC_SANDBOX_SALESFORCE_URL": stand_ins["salesforce"].base_url,
        "MLC_SANDBOX_JAGGAER_URL": stand_ins["jaggaer"].base_url,
        "MLC_SANDBOX_IFS_CLIENT_SECRET_SEALED": sealed("ifs_client_secret"),
        "MLC_SANDBOX_JIRA_API_TOKEN_SEALED": sealed("jira_api_token"),
        "MLC_SANDBOX_SALESFORCE_CLIENT_SECRET_SEALED": sealed("salesforce_client_secret"),
        "MLC_SANDBOX_JAGGAER_CLIENT_SECRET_SEALED": sealed("jaggaer_client_secret"),
        # what the sandbox environment leaves to the user: the warehouse, and the Teams webhooks (each URL sealed)
        "TARGET_DATABRICKS_LOAD_METHOD": "warehouse", "TARGET_DATABRICKS_WORKSPACE_HOST": databricks.base_url,
        "TARGET_DATABRICKS_WAREHOUSE_ID": databricks.warehouse_id,
        "TARGET_DATABRICKS_TOKEN": seal(plain["databricks_token"], key=key.encode()),
        "TARGET_TEAMS_WEBHOOKS": json.dumps({channel: seal(url, key=key.encode())
                                             for channel, url in teams.webhooks().items()}),
    }
    left_behind = []
    for flow, blocks in FLOWS.items():
        left_behind += kill_mid_run(project, env, blocks, ifs)

    # The kills left Meltano's config files of every plugin behind: what they hold is sealed.
    left_plugins = {path.parent.name for path in left_behind}
    assert left_plugins >= {name for blocks in FLOWS.values() for name in (blocks[0], blocks[-1])}, left_plugins
    for path in left_behind:
        text = path.read_text()
        if not text:
            continue  # killed between Meltano creating the file and writing it: it holds nothing
        config = json.loads(text)
        for setting in ("client_secret", "api_token", "token"):
            if config.get(setting):
                assert is_sealed(config[setting]), f"{path}: {setting} is not sealed"
        for url in (config.get("webhooks") or {}).values():
            assert is_sealed(url), f"{path}: a webhook URL is not sealed"

    searched = [tmp_path]  # the project copy (with .venv and the plugin environments it links to) and HOME's logs
    assert any((tmp_path / "home").rglob("elt.log")), "Meltano's logs were expected under HOME"
    found = files_holding(searched, {**plain, "MLC_SECRET_KEY": key})
    assert {name: files for name, files in found.items() if files} == {}


def test_control_a_plain_secret_is_found_where_meltano_left_it(start_ifs, tmp_path):
    """The search finds a secret that is there: a plain client secret lies in Meltano's leftover config file."""
    secret = random_secret("plain-ifs-secret")
    ifs = start_ifs(client_secret=secret, rate_limit=0, fault_rate_delay=1.0)
    project = fresh_copy(tmp_path / "project")
    env = {**user_env(tmp_path / "home"), "MLC_SANDBOX_IFS_URL": ifs.base_url, "TAP_IFSCLOUD_CLIENT_SECRET": secret,
           "TARGET_DATABRICKS_DELTA_ROOT": str(tmp_path / "delta")}
    left_behind = kill_mid_run(project, env, ["tap-ifscloud", "target-databricks"], ifs)

    holding = files_holding([tmp_path], {"secret": secret})["secret"]
    tap_configs = [p for p in left_behind if p.parent.name == "tap-ifscloud"]
    assert [str(p) for p in tap_configs] == holding, (tap_configs, holding)
    assert tap_configs[0].stat().st_mode & 0o777 == 0o666 & ~current_umask()  # as Meltano creates it: 0644 usually
    log = (tmp_path / "tap-ifscloud.log").read_text()
    assert "'client_secret' is not sealed" in log and secret not in log  # the tap warned, without the value
