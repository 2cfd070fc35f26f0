"""Every target's records are checked by the compiled validator (ml_connector_core.record_validation): what it refuses
and accepts next to singer-sdk's own validator, the field it names, and every target's sink using it. The bad-records
runs of target-databricks, target-jaggaer and target-salesforce (tests/target-*/test_*bad_records.py) show the same
through real processes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import JSONSchemaValidator

from ml_connector_core.bad_records import BadRecordsSink
from ml_connector_core.record_validation import CompiledSchemaValidator, InvalidField
from target_databricks.target import TargetDatabricks
from target_ifscloud.target import TargetIfsCloud
from target_jaggaer.target import TargetJaggaer
from target_jira.target import TargetJira
from target_salesforce.target import TargetSalesforce
from target_teams.target import TargetTeams

NUMBER = {"type": ["number", "null"]}
SCHEMA = {"type": "object", "properties": {
    "OrderNo": {"type": "string"}, "Amount": NUMBER, "Lines": {"type": "integer"},
    "OrderDate": {"type": ["string", "null"], "format": "date"},
    "Items": {"type": "array", "items": {"type": "object", "properties": {"Qty": NUMBER, "Part": {"type": "string"}}}},
    "Code": {"type": "string", "pattern": "^[0-9]+$"},
}}


def refusal(validator, record: dict) -> InvalidRecord | None:
    try:
        validator.validate(record)
    except InvalidRecord as exc:
        return exc
    return None


@pytest.mark.parametrize(("record", "field", "reason"), [
    ({"Amount": "12.50"}, "Amount", '"12.50" is not of types "null", "number"'),
    ({"Lines": Decimal("2.5")}, "Lines", '2.5 is not of type "integer"'),
    ({"Lines": True}, "Lines", 'true is not of type "integer"'),
    ({"Items": [{"Qty": 1}, {"Qty": 2, "Part": 7}]}, "Items[1].Part", '7 is not of type "string"'),
    ({"OrderNo": None}, "OrderNo", 'null is not of type "string"'),
])
def test_a_value_of_the_wrong_type_is_refused_naming_its_field_as_the_sdk_refuses_it(record, field, reason):
    refused = refusal(CompiledSchemaValidator(SCHEMA), record)

    assert isinstance(refused, InvalidField)
    assert (refused.field, refused.reason) == (field, reason)
    assert refused.record is record
    assert refusal(JSONSchemaValidator(SCHEMA), record) is not None  # singer-sdk refused it too


def test_what_the_sdk_accepts_is_accepted():
    record = {"OrderNo": "PO-1", "Amount": Decimal("1234.5600"), "Lines": 3, "OrderDate": "2026-03-01",
              "Items": [{"Qty": Decimal("2"), "Part": "P-1"}, {"Qty": None, "Part": "P-2"}], "Code": "0042",
              "NotInTheSchema": {"any": "thing"}}

    assert refusal(JSONSchemaValidator(SCHEMA), record) is None
    assert refusal(CompiledSchemaValidator(SCHEMA), record) is None


def test_formats_are_checked_only_when_the_sink_asks_as_in_the_sdk():
    record = {"OrderDate": "next Tuesday"}  # left to the sink's parsing of dates, which names it (BadRecordsSink)

    assert refusal(JSONSchemaValidator(SCHEMA), record) is None
    assert refusal(CompiledSchemaValidator(SCHEMA), record) is None
    assert refusal(JSONSchemaValidator(SCHEMA, validate_formats=True), record) is not None
    refused = refusal(CompiledSchemaValidator(SCHEMA, validate_formats=True), record)
    assert (refused.field, refused.reason) == ("OrderDate", '"next Tuesday" is not a "date"')


def test_a_whole_number_written_with_a_point_is_an_integer_as_json_schema_says():
    # The SDK's reader makes 2.0 a Decimal, which Python's jsonschema does not count as an integer (the float it does).
    assert refusal(JSONSchemaValidator(SCHEMA), {"Lines": Decimal("2.0")}) is not None
    assert refusal(JSONSchemaValidator(SCHEMA), {"Lines": 2.0}) is None

    assert refusal(CompiledSchemaValidator(SCHEMA), {"Lines": Decimal("2.0")}) is None
    assert refusal(CompiledSchemaValidator(SCHEMA), {"Lines": Decimal("2.5")}) is not None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity")])
def test_nan_and_infinity_are_refused_as_not_numbers_json_can_hold(value):
    assert refusal(JSONSchemaValidator(SCHEMA), {"Amount": value}) is None  # the SDK let them through

    refused = refusal(CompiledSchemaValidator(SCHEMA), {"Items": [{"Qty": value}]})

    assert (refused.field, refused.reason) == ("Items[0].Qty", f"{value} is not a number JSON can hold")


def test_patterns_are_ecma_262_as_json_schema_says():
    arabic_indic_digits = "\u0664\u0662"  # digits to Python's \d, not to ECMA-262's
    digits = {"type": "object", "properties": {"Code": {"type": "string", "pattern": "^\\d+$"}}}
    assert refusal(JSONSchemaValidator(digits), {"Code": arabic_indic_digits}) is None
    assert refusal(CompiledSchemaValidator(digits), {"Code": arabic_indic_digits}).field == "Code"


def test_multiple_of_works_on_decimals():
    cents = {"type": "object", "properties": {"Amount": {"type": "number", "multipleOf": 0.01}}}

    with pytest.raises(TypeError):  # singer-sdk's validator: Decimal / float
        JSONSchemaValidator(cents).validate({"Amount": Decimal("1.25")})
    assert refusal(CompiledSchemaValidator(cents), {"Amount": Decimal("1.25")}) is None
    assert refusal(CompiledSchemaValidator(cents), {"Amount": Decimal("1.255")}).field == "Amount"


@pytest.mark.parametrize(("schema", "said"), [
    ({"type": "object", "properties": {"Amount": {"type": "numbr"}}}, "at properties.Amount.type"),
    ({"type": "object", "properties": {"Code": {"type": "string", "pattern": "["}}}, '"[" is not a "regex"'),
    ({"type": "object", "properties": {"Part": {"$ref": "#/$defs/Part"}}}, "'/$defs/Part' does not exist"),
])
def test_a_schema_that_is_not_json_schema_is_refused_when_compiled(schema, said):
    with pytest.raises(InvalidJSONSchema, match="not valid JSON Schema") as refused:
        CompiledSchemaValidator(schema)
    assert said in str(refused.value)


def test_a_remote_schema_is_never_fetched(tmp_path):
    part = tmp_path / "part.json"
    part.write_text('{"type": "string"}')
    schema = {"type": "object", "properties": {"Part": {"$ref": part.as_uri()}}}

    with pytest.raises(InvalidJSONSchema, match="a target does not fetch schemas"):
        CompiledSchemaValidator(schema)


@pytest.mark.parametrize("target", [TargetDatabricks, TargetSalesforce, TargetJira, TargetJaggaer, TargetTeams,
                                    TargetIfsCloud])
def test_every_targets_sink_validates_with_the_compiled_validator(target):
    sink = target.default_sink_class

    assert issubclass(sink, BadRecordsSink)
    assert sink.get_validator is BadRecordsSink.get_validator
    assert sink.validate_field_string_format is False  # formats: as the SDK's default
