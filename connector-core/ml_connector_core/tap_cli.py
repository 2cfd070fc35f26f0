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


#: singer-sdk's default writes a STATE every 10,000 records of a stream, so a run killed before that re-read the
#: whole stream: every tap of ours has this setting (its streams are sorted by their replication key, so a STATE
#: mid-stream carries an exact bookmark).
STATE_INTERVAL_DEFAULT = 100


def state_interval_property(batch_note: str):
    """The ``state_interval_records`` setting; ``batch_note`` names the batch sizes of the targets it feeds."""
    from singer_sdk import typing as th

    return th.Property(
        "state_interval_records", th.IntegerType(minimum=1), default=STATE_INTERVAL_DEFAULT,
        description="A STATE (the bookmark of the records sent so far) after every this many records of a stream, so "
                    "that a run stopped mid-stream resumes near where its target last wrote instead of at the "
                    f"stream's start. Best a divisor of the target's batch size ({batch_note}): a kill then re-reads at "
                    "most one batch per stream.")


def state_interval(config) -> int:
    return int(config.get("state_interval_records") or STATE_INTERVAL_DEFAULT)
