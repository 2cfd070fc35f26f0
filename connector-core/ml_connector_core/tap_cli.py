"""What every ml-connector tap's command line adds to singer-sdk's: configuration problems found while discovering
end in their one line, as they do in a sync, instead of a traceback.

singer-sdk turns a ``ConfigValidationError`` into log lines and exit code 1 only inside the command it runs;
``--discover`` and ``--test`` run in option callbacks before it, where the same error (a sealed secret that does not
open, a missing setting, an unknown entity set, all found while the catalog is built) printed a traceback.
A mixin placed before singer-sdk's ``Tap`` in the bases.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from singer_sdk.exceptions import ConfigValidationError


class ConfigErrorsInOneLine:
    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        with _config_errors_end_the_command(cls, ctx):
            super().cb_discover(ctx, param, value)  # type: ignore[misc]

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: Any) -> None:
        with _config_errors_end_the_command(cls, ctx):
            super().cb_test(ctx, param, value)  # type: ignore[misc]


@contextmanager
def _config_errors_end_the_command(plugin: Any, ctx: click.Context) -> Iterator[None]:
    try:
        yield
    except ConfigValidationError as exc:
        # Logged as the SDK logs them in a sync: each error on its own line, the schema never.
        for error in exc.errors or [str(exc)]:
            plugin.logger.error(error)
        ctx.exit(1)
