"""A plugin's configuration checked against its settings schema, every problem one line naming the setting as its users
set it: ``page_size (TAP_JAGGAER_PAGE_SIZE) must be a whole number, not 'abc'``.

singer-sdk's own messages (``'abc' is not of type 'integer', 'null' in config['page_size']``) name neither the
environment variable Meltano sets nor, for a date, anything at all: it does not check ``format: date-time``, so
``start_date: "not-a-date"`` passed and failed later as a bare ``ValueError`` deep in a sync. Here a date-time setting
must be what ``datetime.fromisoformat`` (the SDK's own parser) reads.

:class:`SettingsNamedInErrors` puts this in place of singer-sdk's check for taps and targets alike, and ends the
command on a configuration error with those lines only (exit status 1, no traceback, no schema dump).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from jsonschema import ValidationError
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.check import setting_ref
from ml_connector_core.tls import CA_BUNDLE, CaBundleError, UntrustedCertificateError, ca_bundle_problem

_REQUIRED = re.compile(r"^'(?P<name>[^']+)' is a required property$")
_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
               "array": "a list", "object": "an object"}
_DATE_TIME_EXAMPLE = "an ISO 8601 date or date and time, e.g. 2024-01-31 or 2024-01-31T00:00:00Z"


def config_problems(plugin_name: str, schema: dict, config: dict) -> list[str]:
    """Every way ``config`` does not fit ``schema``, one line each. Validating with singer-sdk's validator also fills
    the schema's defaults into ``config``, as singer-sdk's own check does."""
    from singer_sdk.plugin_base import JSONSchemaValidator

    problems = [_describe(plugin_name, error) for error in JSONSchemaValidator(schema).iter_errors(config)]
    problems += list(_date_time_problems(plugin_name, schema, config, ()))
    if CA_BUNDLE in (schema.get("properties") or {}) and (problem := ca_bundle_problem(config.get(CA_BUNDLE))):
        problems.append(f"{_label(plugin_name, [CA_BUNDLE])}: {problem}")
    return problems


def _describe(plugin_name: str, error: ValidationError) -> str:
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and (missing := _REQUIRED.match(error.message)):
        return f"{_label(plugin_name, [*path, missing.group('name')])} is required"
    label = _label(plugin_name, path)
    if not path:
        return f"the configuration: {error.message}"
    shown = "" if _is_secret(error.schema) else f", not {_short(error.instance)}"
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join(_TYPE_WORDS.get(kind, kind) for kind in kinds if kind != "null")
        return f"{label} must be {words}{shown}"
    if error.validator == "enum":
        allowed = ", ".join(str(value) for value in error.validator_value if value is not None)
        return f"{label} must be one of {allowed}{shown}"
    return f"{label} does not fit its schema ({error.validator})" if _is_secret(error.schema) else f"{label}: {error.message}"


def _date_time_problems(plugin_name: str, schema: dict, config: Any, path: tuple[str, ...]) -> Iterator[str]:
    """Date-time settings that ``datetime.fromisoformat`` cannot read, at any depth of the configuration."""
    if not isinstance(config, dict):
        return
    for name, spec in (schema.get("properties") or {}).items():
        value = config.get(name)
        if value is None:
            continue
        if _has_format(spec, "date-time") and isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                yield f"{_label(plugin_name, [*path, name])} must be {_DATE_TIME_EXAMPLE}, not {_short(value)}"
        elif isinstance(value, dict):
            yield from _date_time_problems(plugin_name, spec, value, (*path, name))


def _label(plugin_name: str, path: list[str]) -> str:
    """``page_size (TAP_JAGGAER_PAGE_SIZE)``; a part of an object setting names the variable of the whole setting."""
    return setting_ref(plugin_name, ".".join(path)) if path else "the configuration"


def _has_format(spec: dict, fmt: str) -> bool:
    return spec.get("format") == fmt or any(_has_format(option, fmt) for option in spec.get("anyOf", []))


def _is_secret(spec: Any) -> bool:
    return isinstance(spec, dict) and bool(spec.get("secret") or spec.get("writeOnly"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class SettingsNamedInErrors:
    """A mixin placed before singer-sdk's ``Tap`` or ``Target`` in the bases: the configuration is checked by
    :func:`config_problems`, and a configuration error ends the command with its lines alone, exit status 1."""

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        schema = self.config_jsonschema  # type: ignore[attr-defined]
        self.append_builtin_config(schema)  # type: ignore[attr-defined]
        problems = config_problems(self.name, schema, self._config)  # type: ignore[attr-defined]
        if problems and raise_errors:
            raise ConfigValidationError(problems[0] if len(problems) == 1 else f"{len(problems)} settings are wrong",
                                        errors=problems)
        for problem in problems:
            self.logger.warning(problem)  # type: ignore[attr-defined]
        return problems

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        with config_errors_end_the_command(cls, click.get_current_context()):
            super().invoke(*args, **kwargs)  # type: ignore[misc]


@contextmanager
def config_errors_end_the_command(plugin: Any, ctx: click.Context) -> Iterator[None]:
    try:
        yield
    except ConfigValidationError as exc:
        # each error on its own line, the schema never (singer-sdk would add "Config validation failed" and the schema)
        for error in exc.errors or [str(exc)]:
            plugin.logger.error(error)
        ctx.exit(1)
    except (UntrustedCertificateError, CaBundleError) as exc:  # fixed by a setting too: one line, no traceback
        plugin.logger.error(exc.message_for(plugin.name))
        ctx.exit(1)
