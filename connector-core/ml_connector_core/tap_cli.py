"""What every ml-connector tap's command line adds to singer-sdk's: discovery checks the configuration as a sync does,
and configuration problems end the command in their one line each, naming the setting and its environment variable
(see :mod:`ml_connector_core.config_validation`), instead of a traceback.

singer-sdk validates the configuration in a sync only (``--discover`` of a tap whose catalog does not depend on its
configuration skips it), so Meltano's discovery before every run accepted ``page_size: "abc"`` that the sync then
refused. And ``--discover`` and ``--test`` run in option callbacks before singer-sdk's command, where a
``ConfigValidationError`` (a sealed secret that does not open, a missing setting, an unknown entity set, all found
while the catalog is built) printed a traceback. A mixin placed before singer-sdk's ``Tap`` in the bases.
"""

from __future__ import annotations

from typing import Any

import click

from ml_connector_core.config_validation import SettingsNamedInErrors, config_errors_end_the_command


class ConfigErrorsInOneLine(SettingsNamedInErrors):
    # The catalog depends on the configuration (which streams, which projections): singer-sdk then validates it
    # before discovering too.
    dynamic_catalog = True

    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        with config_errors_end_the_command(cls, ctx):
            super().cb_discover(ctx, param, value)  # type: ignore[misc]

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: Any) -> None:
        with config_errors_end_the_command(cls, ctx):
            super().cb_test(ctx, param, value)  # type: ignore[misc]
