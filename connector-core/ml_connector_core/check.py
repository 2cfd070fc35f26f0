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
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import click
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.redaction import redact_text, register_secret
from ml_connector_core.tls import CA_BUNDLE, CaBundleError, UntrustedCertificateError

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
    except CaBundleError as exc:
        yield failed(system, "configuration", exc.message_for(plugin_class.name),
                     f"{setting_ref(plugin_class.name, CA_BUNDLE)}: a readable PEM file of CA certificates").redacted()
    except UntrustedCertificateError as exc:
        yield failed(system, "TLS certificate", exc.message_for(plugin_class.name),
                     f"{setting_ref(plugin_class.name, CA_BUNDLE)}: a PEM file with the CA that signed "
                     f"{exc.host}'s certificate").redacted()
    except Exception as exc:  # noqa: BLE001 - a check that breaks is a result to show, not a traceback
        yield failed(system, "check", f"{type(exc).__name__}: {exc}",
                     "the check itself broke: report it with this line").redacted()


def plugin_config(plugin_class, files: list[str], *, from_env: bool) -> dict:
    """The configuration the plugin would run with, validated by its own schema; secret values registered."""
    from singer_sdk.configuration._dict_config import parse_environment_config
    from ml_connector_core.config_validation import config_problems  # as the plugin checks it (fills defaults too)

    schema = plugin_class.config_jsonschema
    config: dict[str, Any] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                config.update(json.load(handle))
        except (OSError, ValueError) as exc:
            raise ConfigValidationError(f"cannot read --config {path}: {exc}", errors=[f"cannot read --config {path}: {exc}"]) from None
    if from_env:
        prefix = plugin_class.name.upper().replace("-", "_") + "_"
        _check_json_variables(schema, prefix)
        from_environment = parse_environment_config(schema, prefix=prefix)
        for name, value in from_environment.items():
            spec = schema.get("properties", {}).get(name, {})
            if isinstance(value, dict) and _is_object(spec):
                from_environment[name] = nested_setting(value)
            elif isinstance(value, str) and _has_type(spec, "number") and not _has_type(spec, "string"):
                from_environment[name] = _number(value, prefix + name.upper())
        config.update(from_environment)
    for name, spec in schema.get("properties", {}).items():
        if "default" in spec and name not in config:
            config[name] = spec["default"]
        if spec.get("secret") or spec.get("writeOnly"):
            # A secret object (e.g. channel → webhook URL) keeps a secret in each of its values.
            values = config.get(name).values() if isinstance(config.get(name), dict) else [config.get(name)]
            for value in values:
                if isinstance(value, str):
                    register_secret(value)
    errors = config_problems(plugin_class.name, schema, config)
    if errors:
        raise ConfigValidationError("configuration does not validate", errors=errors)
    return config


# `meltano invoke <plugin>:check` hands the plugin's settings over as environment variables, under the plugin's own
# prefix and its parent's (tap-ifscloud-jira's settings arrive as TAP_IFSCLOUD_JIRA_* and TAP_IFSCLOUD_*, which
# tap-ifscloud's `--config ENV` reads). An object setting arrives flattened, as Meltano keeps it internally:
# stream_overrides {"purchase_orders": {"expand": ""}} becomes TAP_IFSCLOUD_STREAM_OVERRIDES='{"purchase_orders.expand": ""}'.
# Meltano's config file nests such keys again on every unescaped dot ("a\\.b" is the literal key "a.b"); so does this.
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def nested_setting(flat: dict) -> dict:
    """An object setting as Meltano's config file holds it, from the flattened form Meltano's environment holds."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = [part.replace("\\.", ".") for part in _UNESCAPED_DOT.split(key)]
        cursor = nested
        for part in parents:
            cursor = cursor.setdefault(part, {})
            if not isinstance(cursor, dict):
                raise ConfigValidationError(f"setting key {key!r} nests under a value that is not an object",
                                            errors=[f"{key}: nests under a value that is not an object"])
        cursor[leaf] = value
    return nested


def _number(text: str, variable: str):
    """A number setting from its variable (Meltano exports a decimal setting as text, singer-sdk leaves it so), as
    singer-sdk reads the same number from a config file: an int, or a Decimal."""
    try:
        number = json.loads(text.strip(), parse_float=Decimal)
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, (int, Decimal)):
        message = f"{variable} is not a number: {text!r}"
        raise ConfigValidationError(message, errors=[message])
    return number


def _check_json_variables(schema: dict, prefix: str) -> None:
    """An object setting whose variable is not JSON is a line naming the variable, not a traceback."""
    for name, spec in schema.get("properties", {}).items():
        variable = prefix + name.upper().replace("-", "_")
        if variable in os.environ and _is_object(spec):  # string arrays may also be given as x,y,z
            try:
                json.loads(os.environ[variable])
            except ValueError as exc:
                message = f"{variable} is not JSON ({exc.msg} at character {exc.pos})"
                raise ConfigValidationError(message, errors=[message]) from None


def _has_type(spec: dict, kind: str) -> bool:
    kinds = spec.get("type", [])
    return kind in (kinds if isinstance(kinds, list) else [kinds]) or any(
        _has_type(option, kind) for option in spec.get("anyOf", []))


def _is_object(spec: dict) -> bool:
    return _has_type(spec, "object")
