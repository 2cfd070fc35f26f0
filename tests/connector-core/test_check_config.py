"""A check command's `--config ENV` reads the settings as Meltano hands them to `meltano invoke <plugin>:check`:
object settings flattened to dotted keys, decimal settings as text; a variable that cannot be read is a line naming
it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.check import plugin_config, run_checks


class TapExample:
    name = "tap-example"
    config_jsonschema = th.PropertiesList(
        th.Property("stream_overrides", th.ObjectType(additional_properties=th.ObjectType())),
        th.Property("labels", th.ObjectType(additional_properties=th.StringType)),
        th.Property("tolerance", th.NumberType),
        th.Property("page_size", th.IntegerType, default=100),
    ).to_dict()


@pytest.fixture(autouse=True)
def no_example_variables(monkeypatch):
    for name in ("STREAM_OVERRIDES", "LABELS", "TOLERANCE", "PAGE_SIZE"):
        monkeypatch.delenv(f"TAP_EXAMPLE_{name}", raising=False)


def test_object_and_decimal_settings_read_as_from_the_config_file(monkeypatch):
    monkeypatch.setenv("TAP_EXAMPLE_STREAM_OVERRIDES", '{"orders.expand": "", "orders.entity_set": "OrderSet", '
                                                       '"lines.projection": "OrderHandling"}')
    monkeypatch.setenv("TAP_EXAMPLE_LABELS", r'{"cost\\.centre": "CC"}')  # an escaped dot is part of the key
    monkeypatch.setenv("TAP_EXAMPLE_TOLERANCE", "0.01")
    monkeypatch.setenv("TAP_EXAMPLE_PAGE_SIZE", "50")
    config = plugin_config(TapExample, [], from_env=True)
    assert config["stream_overrides"] == {"orders": {"expand": "", "entity_set": "OrderSet"},
                                          "lines": {"projection": "OrderHandling"}}
    assert config["labels"] == {"cost.centre": "CC"}
    assert config["tolerance"] == Decimal("0.01") and isinstance(config["tolerance"], Decimal)
    assert config["page_size"] == 50


def test_an_already_nested_object_stays_as_it_is(monkeypatch):
    monkeypatch.setenv("TAP_EXAMPLE_STREAM_OVERRIDES", '{"orders": {"expand": "Lines"}}')
    assert plugin_config(TapExample, [], from_env=True)["stream_overrides"] == {"orders": {"expand": "Lines"}}


@pytest.mark.parametrize("variable, value, message", [
    ("TAP_EXAMPLE_TOLERANCE", "one cent", "TAP_EXAMPLE_TOLERANCE is not a number: 'one cent'"),
    ("TAP_EXAMPLE_STREAM_OVERRIDES", "{orders: x}", "TAP_EXAMPLE_STREAM_OVERRIDES is not JSON"),
])
def test_a_variable_that_cannot_be_read_is_a_failed_line_naming_it(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigValidationError, match=message):
        plugin_config(TapExample, [], from_env=True)
    [line] = run_checks(TapExample, "Example", lambda config: [], ["ENV"])
    assert line.status == "fail" and line.check == "configuration" and message in line.detail
