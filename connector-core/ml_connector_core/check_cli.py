"""mlc-check: before anything is synced, does this Meltano environment fit the real systems it names?

Run from a Meltano project's root:

    mlc-check [--environment sandbox|prod|...] [JOB_OR_PLUGIN ...] [--format table|json]

Without a name it checks every plugin of the project that has a ``check`` command (but a plugin that is only the parent
of inherited ones and in no job); with names, the plugins of those jobs (or the plugins named). Each plugin's check command runs as ``meltano --environment=<env> invoke <plugin>:check --format
json`` would run it, all plugins at once; their results are printed as one table per system, every failure with the one
thing to change. Exit 0: everything the job needs fits (warnings allowed); 1: a check failed; 2: usage (unknown job or
environment, not a Meltano project).

How the settings reach a check (verified with Meltano 4.4): `meltano invoke plugin:command` hands the command the
plugin's whole configuration (meltano.yml, the environment, .env, the shell) as environment variables, under the
plugin's own prefix, its parent's and MELTANO_EXTRACT_/MELTANO_LOAD_: tap-ifscloud-jira's settings (its own
stream_overrides and _select included) arrive as TAP_IFSCLOUD_JIRA_* and as TAP_IFSCLOUD_*, which is what
tap-ifscloud-check's ``--config ENV`` reads. Object settings arrive flattened to dotted keys; check.plugin_config nests
them again as Meltano's config file does. Inherited plugins inherit the parent's commands. With no argument after
``<tap>:check``, Meltano first runs the tap's catalog discovery and state lookup, the very things a check must survive,
so ``--format json`` is always passed.

Why in this process rather than one ``meltano invoke`` per plugin: each Meltano start costs about 4 s of CPU before the
check even begins, which made a 17-plugin project take over a minute on two cores. mlc-check therefore asks Meltano's own
project and invoker, once, for what `meltano invoke` would run: the project (include_paths, inherit_from, jobs and
mappings as Meltano reads them), each plugin's environment (``PluginInvoker.env()`` with the settings exported exactly
as `invoke` exports them) and its command line (``PluginInvoker.exec_args``), and then runs those command lines itself,
concurrently. Unlike `meltano invoke`, it never writes the plugin's config.json (secrets) into .meltano/run: the check
reads the environment only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import click

from ml_connector_core.check import (
    EXIT_DOES_NOT_FIT, EXIT_FITS, EXIT_USAGE, FAIL, PASS, WARN, CheckResult, failed, results_from_json, warned,
)
from ml_connector_core.redaction import redact_text, register_secret

CHECK_COMMAND = "check"
CHECK_ARGS = ("--format", "json")
# Variables whose values are secrets whatever meltano.yml says of their settings.
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|CREDENTIAL|WEBHOOK|STORAGE_OPTIONS", re.I)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class UsageError(click.UsageError):
    exit_code = EXIT_USAGE


# The project, as Meltano reads it


def open_project(environment: str | None, command: str = "mlc-check"):
    """The Meltano project of the current folder (or MELTANO_PROJECT_ROOT) with its environment active."""
    try:
        _quiet_meltano()
    except ImportError:
        raise UsageError(f"{command} runs beside Meltano: use the project's .venv/bin/{command} (scripts/bootstrap "
                         "installs both)") from None
    from meltano.core.error import ProjectNotFound
    from meltano.core.project import Project
    from meltano.core.utils import NotFound

    try:
        project = Project.find()
    except ProjectNotFound:
        raise UsageError(f"{os.getcwd()} is not a Meltano project (no meltano.yml): run {command} from the "
                         "project's root folder") from None
    environment = environment or project.dotenv_env.get("MELTANO_ENVIRONMENT") or project.settings.get(
        "default_environment")
    if environment:
        try:
            project.activate_environment(environment)
        except NotFound:
            known = ", ".join(e.name for e in project.meltano.environments)
            raise UsageError(f"no environment {environment!r} in meltano.yml; it has: {known}") from None
    return project


def _quiet_meltano() -> None:
    """Meltano logs through structlog, by default to standard output: only its errors, and only to stderr."""
    import structlog

    # The processors too: importing meltano.cli configures ones that hand records to the standard library's logging,
    # which a PrintLogger cannot take (Meltano's own error messages then crashed with "PrintLogger.msg() got an
    # unexpected keyword argument 'extra'" instead of being shown).
    structlog.configure(processors=[structlog.processors.add_log_level, structlog.processors.format_exc_info,
                                    structlog.dev.ConsoleRenderer(colors=False)],
                        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
                        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr), cache_logger_on_first_use=False)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    with contextlib.suppress(ImportError):
        import snowplow_tracker.emitters  # Meltano's tracker; it sets its logger to INFO when imported

        logging.getLogger(snowplow_tracker.emitters.__name__).setLevel(logging.ERROR)


def has_check(plugin) -> bool:
    return CHECK_COMMAND in plugin.all_commands  # inherited plugins inherit their parent's commands


def root_of(project, plugin):
    """The plugin an inherited one comes from (whose label names the system and whose venv holds the commands)."""
    from meltano.core.plugin.error import PluginNotFoundError

    while plugin.inherit_from:
        try:
            plugin = project.plugins.find_plugin(plugin.inherit_from)
        except PluginNotFoundError:
            break
    return plugin


def system_of(project, plugin) -> str:
    root = root_of(project, plugin)
    return re.sub(r"\s*\(.*\)$", "", root.label or root.name)  # "IFS Cloud (write-back)" is IFS Cloud too


def plugins_to_check(project, names: tuple[str, ...]) -> tuple[list, list[CheckResult]]:
    """The plugins whose check commands run, and a warning for each plugin of a named job that has none."""
    from meltano.core.plugin.error import PluginNotFoundError
    from meltano.core.task_sets_service import TaskSetsService

    everything = list({p.name: p for p in project.plugins.plugins()}.values())
    jobs = TaskSetsService(project)
    if not names:
        # A plugin that is only the parent of inherited ones (target-ifscloud: no job runs it, its children carry the
        # streams) has no configuration of its own to check.
        in_jobs = {block.split(":")[0] for job in jobs.list_task_sets() for block in job.flat_args}
        parents = {p.inherit_from for p in everything if p.inherit_from}
        return [p for p in everything if has_check(p) and (p.name in in_jobs or p.name not in parents)], []
    chosen, unchecked = [], []
    for name in names:
        if jobs.exists(name):
            blocks = [block.split(":")[0] for block in jobs.get(name).flat_args]
        elif name in [p.name for p in everything]:
            blocks = [name]
        else:
            known = ", ".join(sorted(job.name for job in jobs.list_task_sets())) or "(none)"
            raise UsageError(f"{name!r} is neither a job nor a plugin of this project; its jobs: {known}")
        for block in blocks:
            try:
                plugin = project.plugins.find_plugin(block)
            except PluginNotFoundError:
                continue  # a typo `meltano run` reports itself
            if str(plugin.type) == "mappers":
                continue  # a mapping (Meltano finds its mapper by it): transforms records, reaches no system
            if plugin.name in [p.name for p in chosen] or f"{plugin.name}: not checked" in [r.check for r in unchecked]:
                continue
            if has_check(plugin):
                chosen.append(plugin)
            else:
                unchecked.append(warned(system_of(project, plugin), f"{plugin.name}: not checked",
                                        f"{plugin.name} has no `{CHECK_COMMAND}` command",
                                        "nothing to do for a plugin ml-connector does not ship; its first run shows "
                                        "whether it fits"))
    return chosen, unchecked


# What `meltano invoke <plugin>:check --format json` would run


@dataclass
class Invocation:
    plugin: str
    system: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    installed_by: str = ""  #: the plugin whose environment holds the command (an inherited plugin's parent)


def invocations(project, plugins: list) -> list[Invocation]:
    """Each plugin's command line and environment, resolved by Meltano's own invoker; secrets registered for masking."""
    from meltano.core.db import project_engine
    from meltano.core.plugin_invoker import invoker_factory

    _, session_maker = project_engine(project)
    prepared = []
    with contextlib.closing(session_maker()) as session:
        for plugin in plugins:
            invoker = invoker_factory(project, plugin)
            # What PluginInvoker.prepare() exports to the environment, without the config file it also writes.
            invoker.plugin_config_env = invoker.settings_service.as_env(session=session)
            env = invoker.env()
            for setting in invoker.settings_service.definitions():
                if setting.sensitive or setting.kind == "password":
                    for secret in _leaves(invoker.settings_service.get(setting.name, session=session)):
                        _register(secret)
            prepared.append(Invocation(plugin.name, system_of(project, plugin),
                                       invoker.exec_args(*CHECK_ARGS, command=CHECK_COMMAND, env=env),
                                       {k: str(v) for k, v in env.items()}, str(project.root),
                                       root_of(project, plugin).name))
    for name, value in os.environ.items():
        if SECRET_NAME.search(name):
            for secret in _leaves(value):
                _register(secret)
    return prepared


def _register(secret: str) -> None:
    """Mask a secret, and the plaintext of a sealed one (which only the plugins open) when the key is at hand."""
    from ml_connector_core.secrets import SecretKeyError, is_sealed, unseal

    register_secret(secret)
    if is_sealed(secret):
        with contextlib.suppress(SecretKeyError, ValueError):
            register_secret(unseal(secret, setting_name="a sensitive setting"))


def _leaves(value) -> Iterable[str]:
    """A value and, when it is JSON (e.g. TARGET_TEAMS_WEBHOOKS), every string in it."""
    if isinstance(value, str):
        yield value
        if value[:1] in "[{":
            try:
                yield from _leaves(json.loads(value))
            except ValueError:
                pass
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)


# Running one plugin's check


@dataclass
class PluginOutcome:
    plugin: str
    results: list[CheckResult]
    exit_status: int | None
    seconds: float


def run_check(invocation: Invocation, timeout: float) -> PluginOutcome:
    started = time.monotonic()
    # A missing command is worded alike for plugins sharing one installation (tap-ifscloud-jira uses tap-ifscloud's),
    # so that their lines merge into one.
    system, check, owner = invocation.system, "check command", invocation.installed_by or invocation.plugin
    executable = os.path.basename(invocation.argv[0])
    try:
        completed = subprocess.run(invocation.argv, cwd=invocation.cwd, env=invocation.env, capture_output=True,
                                   text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return PluginOutcome(invocation.plugin, [failed(
            system, check, f"{executable} is not installed in {owner}'s environment",
            f"meltano install --clean {owner} (its package must provide the {executable} command)")],
            None, time.monotonic() - started)
    except subprocess.TimeoutExpired:
        return PluginOutcome(invocation.plugin, [failed(
            system, check, f"no answer within {timeout:.0f} s",
            "a system it checks does not answer: check that plugin's URL settings, or give mlc-check a longer "
            "--timeout")], None, time.monotonic() - started)
    seconds = time.monotonic() - started
    results = _results(completed.stdout)
    broke = failed(system, check, f"{executable} ended with exit status {completed.returncode} and "
                                  f"{'no results' if results is None else 'no failed check'}: "
                                  f"{_last_error(completed.stderr)}",
                   f"meltano invoke {invocation.plugin}:{CHECK_COMMAND} --format table shows the whole error")
    if results is None:
        return PluginOutcome(invocation.plugin, [broke], completed.returncode, seconds)
    if completed.returncode != EXIT_FITS and not any(r.status == FAIL for r in results):
        results.append(broke)
    return PluginOutcome(invocation.plugin, results, completed.returncode, seconds)


def _results(stdout: str) -> list[CheckResult] | None:
    """The check command's JSON list (the last line that is one); None when it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("["):
            try:
                return [r.redacted() for r in results_from_json(line)]
            except (ValueError, TypeError):
                continue
    return None


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", stderr).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("File ", "^", "Traceback", "│", "╭", "╰"))]
    errors = [line for line in lines if re.search(r"error|exception|denied|refused|not found|failed", line, re.I)]
    return redact_text((errors or lines or ["(nothing on stderr)"])[-1])[:300]


# Output


@dataclass
class Line:
    result: CheckResult
    plugins: list[str]


def merged_lines(outcomes: list[PluginOutcome], notes: list[CheckResult]) -> dict[str, list[Line]]:
    """Per system, each distinct result once with the plugins that reported it: plugins that inherit one
    configuration (tap-ifscloud, tap-ifscloud-jira, ...) report the same token and the same streams."""
    systems: dict[str, list[Line]] = {}
    for plugin, result in [(o.plugin, r) for o in outcomes for r in o.results] + [(None, r) for r in notes]:
        lines = systems.setdefault(result.system, [])
        same = next((line for line in lines if line.result == result), None)
        if same is None:
            lines.append(Line(result, [plugin] if plugin else []))
        elif plugin and plugin not in same.plugins:
            same.plugins.append(plugin)
    return systems


def render(systems: dict[str, list[Line]], roots: dict[str, str] | None = None) -> str:
    """One table per system; a line not every plugin of the table reported names its plugins, ``tap-ifscloud*`` for
    all of the table's plugins that come from tap-ifscloud (``roots``: plugin → the plugin it inherits from)."""
    out: list[str] = []
    for system, lines in systems.items():
        plugins = list(dict.fromkeys(p for line in lines for p in line.plugins))
        out.append(f"{system}  ({', '.join(plugins)})" if plugins else system)
        width = max(len("check"), *(len(line.result.check) for line in lines))
        out.append(f"  {'check'.ljust(width)}  result  detail")
        for line in lines:
            r = line.result
            only = (f"  [{_plugin_names(line.plugins, plugins, roots or {})}]"
                    if len(plugins) > 1 and 0 < len(line.plugins) < len(plugins) else "")
            out.append(f"  {r.check.ljust(width)}  {r.status.upper().ljust(6)}  {r.detail}{only}")
            if r.fix:
                out.append(f"  {' ' * width}          → {r.fix}")
        out.append("")
    return "\n".join(out)


def _plugin_names(reported: list[str], in_table: list[str], roots: dict[str, str]) -> str:
    names: list[str] = []
    for plugin in reported:
        root = roots.get(plugin, plugin)
        family = [p for p in in_table if roots.get(p, p) == root]
        whole_family = len(family) > 1 and all(p in reported for p in family)
        name = f"{root}*" if whole_family else plugin
        if name not in names:
            names.append(name)
    return ", ".join(names)


def summary(systems: dict[str, list[Line]], outcomes: list[PluginOutcome], environment: str | None,
            seconds: float) -> str:
    results = [line.result for lines in systems.values() for line in lines]
    counts = {status: sum(r.status == status for r in results) for status in (PASS, WARN, FAIL)}
    failing = list(dict.fromkeys(p for lines in systems.values() for line in lines if line.result.status == FAIL
                                 for p in line.plugins or [line.result.check.split(":")[0]]))
    verdict = (f"does NOT fit: fix the FAIL lines ({', '.join(failing)})" if counts[FAIL]
               else "fits" + (" (see the warnings)" if counts[WARN] else ""))
    return (f"mlc-check{f' --environment={environment}' if environment else ''}: {_n(len(results), 'check')} of "
            f"{_n(len(outcomes), 'plugin')} in {seconds:.1f} s: {counts[PASS]} passed, {_n(counts[WARN], 'warning')}, "
            f"{counts[FAIL]} failed; {verdict}")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@click.command(help=__doc__.split("\n\n")[0] + "\n\nJOB_OR_PLUGIN: jobs or plugins of meltano.yml (default: every "
               "plugin with a check command). Exit 0: fits; 1: a check failed; 2: usage error.")
@click.argument("names", nargs=-1, metavar="[JOB_OR_PLUGIN]...")
@click.option("--environment", "environment", envvar="MELTANO_ENVIRONMENT", metavar="NAME",
              help="Meltano environment (default: MELTANO_ENVIRONMENT, else the project's default_environment).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--parallel", type=click.IntRange(min=1), default=8, show_default=True,
              help="How many plugins' checks run at once.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Seconds one plugin's check may take.")
def main(names: tuple[str, ...], environment: str | None, output_format: str, parallel: int, timeout: float) -> None:
    started = time.monotonic()
    project = open_project(environment)
    environment = project.environment.name if project.environment else None
    chosen, notes = plugins_to_check(project, names)
    prepared = invocations(project, chosen)
    with ThreadPoolExecutor(max_workers=min(parallel, max(1, len(prepared)))) as pool:
        outcomes = list(pool.map(lambda invocation: run_check(invocation, timeout), prepared))
    systems = merged_lines(outcomes, notes)
    seconds = time.monotonic() - started
    status = EXIT_DOES_NOT_FIT if any(line.result.status == FAIL for lines in systems.values() for line in lines) \
        else EXIT_FITS
    if output_format == "json":
        click.echo(json.dumps({
            "environment": environment, "exit_status": status, "seconds": round(seconds, 1),
            "plugins": {o.plugin: {"exit_status": o.exit_status, "seconds": round(o.seconds, 1)} for o in outcomes},
            "results": [{**asdict(line.result), "plugins": line.plugins}
                        for lines in systems.values() for line in lines],
        }, indent=2))
    else:
        if not chosen and not notes:
            click.echo("no plugin with a check command" + (f" in {', '.join(names)}" if names else ""))
        roots = {invocation.plugin: invocation.installed_by for invocation in prepared}
        click.echo(render(systems, roots) + "\n" + summary(systems, outcomes, environment, seconds))
    sys.exit(status)


if __name__ == "__main__":
    main()
