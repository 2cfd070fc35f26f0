"""Checks that say whether a plugin fits the systems it is configured for, before anything is synced.

Every ml-connector plugin ships a ``<plugin>-check`` command built with :func:`check_command`: it reads the plugin's
configuration exactly as the plugin does (``--config FILE`` or ``--config ENV``), runs the plugin's read-only checks,
and prints one line per check, with the one thing to change for each failure. ``mlc-check`` runs these commands for
the plugins of a Meltano job (through ``meltano invoke <plugin>:check``) and gathers their results.

A check never writes business data and never prints a secret: every secret setting of the plugin is registered for
redaction before the first check runs, and each result's text is redacted again before it is printed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import click
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.redaction import redact_text, register_secret

PASS, WARN, FAIL = "pass", "warn", "fail"
#: Exit statuses of a check command and of mlc-check.
EXIT_FITS, EXIT_DOES_NOT_FIT, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class CheckResult:
    """One thing checked. ``fail`` means the job cannot run as configured; ``warn`` means it can, with less."""

    system: str  #: e.g. "IFS Cloud", "Databricks", "Jira"
    check: str  #: what was checked, e.g. "token", "stream purchase_orders", "custom field 'IFS Key'"
    status: str  #: PASS, WARN or FAIL
    detail: str  #: what was found, e.g. "token valid for 180 s", "HTTP 403 on PurchaseOrderHandling.svc/$metadata"
    fix: str = ""  #: for a warning or failure: the one thing to change (a setting, a permission, a field)

    def redacted(self) -> CheckResult:
        return CheckResult(self.system, self.check, self.status, redact_text(self.detail), redact_text(self.fix))


def passed(system: str, check: str, detail: str) -> CheckResult:
    return CheckResult(system, check, PASS, detail)


def warned(system: str, check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(system, check, WARN, detail, fix)


def failed(system: str, check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(system, check, FAIL, detail, fix)


def env_var(plugin_name: str, setting: str) -> str:
    """The environment variable a plugin reads a setting from (``--config ENV``, Meltano): ``TARGET_JIRA_API_TOKEN``.
    For a part of a setting (``custom_fields.gl_account``, ``projects[0]``) it is the variable of the whole setting."""
    whole = re.split(r"[.\[]", setting, maxsplit=1)[0]
    return f"{plugin_name}_{whole}".upper().replace("-", "_")


def setting_ref(plugin_name: str, setting: str) -> str:
    """A setting as a fix names it: ``api_token (TARGET_JIRA_API_TOKEN)``."""
    return f"{setting} ({env_var(plugin_name, setting)})"


def exit_status(results: Iterable[CheckResult]) -> int:
    return EXIT_DOES_NOT_FIT if any(r.status == FAIL for r in results) else EXIT_FITS


def render_table(results: list[CheckResult]) -> str:
    """A plain-text table: system, check, result, and the fix under each warning or failure."""
    if not results:
        return "nothing to check"
    # One line per result: services quote multi-line errors (a SOQL error points at its column on a second line).
    rows = [(r.system, r.check, r.status.upper(), " ".join(r.detail.split())) for r in results]
    widths = [max(len(row[i]) for row in rows + [("system", "check", "result", "detail")]) for i in range(3)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("system", "check", "result"), widths)) + "  detail"]
    for result, row in zip(results, rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[3])
        if result.fix:
            lines.append(" " * (sum(widths) + 6) + "  → " + result.fix)
    return "\n".join(lines)


def results_as_json(results: list[CheckResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=None)


def results_from_json(text: str) -> list[CheckResult]:
    return [CheckResult(**item) for item in json.loads(text)]


def check_command(
    plugin_class: Any, system: str, checks: Callable[[dict], Iterable[CheckResult]]
) -> Callable[[], None]:
    """The ``<plugin>-check`` console script of a singer-sdk plugin class.

    ``checks`` receives the plugin's configuration as the plugin would see it (files merged, ``ENV`` settings read,
    defaults applied, validated against the plugin's own schema; secret values registered for redaction) and yields
    results. The plugin is not constructed here: a singer-sdk Tap discovers its streams when constructed, which is one
    of the things to check. An exception a check raises becomes one failed result naming the error, not a traceback.
    """

    @click.command(help=f"Read-only checks that {plugin_class.name}'s configuration fits {system}. "
                        "Exit 0: fits; 1: a check failed.")
    @click.option("--config", "config_args", multiple=True, metavar="FILE|ENV",
                  help="Configuration file, or ENV to read the settings from environment variables (as the plugin does).")
    @click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
    def main(config_args: tuple[str, ...], output_format: str) -> None:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
        results = list(run_checks(plugin_class, system, checks, config_args))
        click.echo(results_as_json(results) if output_format == "json" else render_table(results))
        sys.exit(exit_status(results))

    return main


def run_checks(plugin_class, system: str, checks, config_args: Iterable[str]) -> Iterable[CheckResult]:
    config_args = list(config_args)
    try:
        config = plugin_config(plugin_class, [a for a in config_args if a != "ENV"], from_env="ENV" in config_args)
    except ConfigValidationError as exc:
        for error in exc.errors or [str(exc)]:
            yield failed(system, "configuration", str(error), f"set {plugin_class.name}'s setting named here").redacted()
        return
    try:
        for result in checks(config):
            yield result.redacted()
    except ConfigValidationError as exc:
        yield failed(system, "configuration", str(exc), f"fix {plugin_class.name}'s setting named here").redacted()
    except Exception as exc:  # noqa: BLE001 - a check that breaks is a result to show, not a traceback
        yield failed(system, "check", f"{type(exc).__name__}: {exc}",
                     "the check itself broke: report it with this line").redacted()


def plugin_config(plugin_class, files: list[str], *, from_env: bool) -> dict:
    """The configuration the plugin would run with, validated by its own schema; secret values registered."""
    from singer_sdk.configuration._dict_config import parse_environment_config
    from singer_sdk.plugin_base import JSONSchemaValidator  # the validator singer-sdk checks configs with (fills defaults)

    schema = plugin_class.config_jsonschema
    config: dict[str, Any] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                config.update(json.load(handle))
        except (OSError, ValueError) as exc:
            raise ConfigValidationError(f"cannot read --config {path}: {exc}", errors=[f"cannot read --config {path}: {exc}"]) from None
    if from_env:
        config.update(parse_environment_config(schema, prefix=plugin_class.name.upper().replace("-", "_") + "_"))
    for name, spec in schema.get("properties", {}).items():
        if "default" in spec and name not in config:
            config[name] = spec["default"]
        if spec.get("secret") or spec.get("writeOnly"):
            # A secret object (e.g. channel → webhook URL) keeps a secret in each of its values.
            values = config.get(name).values() if isinstance(config.get(name), dict) else [config.get(name)]
            for value in values:
                if isinstance(value, str):
                    register_secret(value)
    errors = [f"{'.'.join(map(str, e.path)) or 'configuration'}: {e.message}" for e in JSONSchemaValidator(schema).iter_errors(config)]
    if errors:
        raise ConfigValidationError("configuration does not validate", errors=errors)
    return config
