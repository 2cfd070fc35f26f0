"""Every target's records checked against their stream's schema by a compiled validator (jsonschema-rs), plugged in
through singer-sdk's documented extension point (``Sink.get_validator``, done by ``BadRecordsSink`` for every sink).

singer-sdk's own validator is pure Python (jsonschema): about 130 µs for a flat record of ten fields, where jsonschema-rs
takes 2 µs, and it was the largest single cost of target-salesforce (more than its HTTP). Every record is still checked,
against the same dialect (JSON Schema 2020-12, whatever the schema's ``$schema`` says, as singer-sdk does); a refused
record raises ``InvalidField``, which names the field apart from the reason, and the bad-records machinery names the
stream and the record's key.

Where the two validators differ, and why that is kept:

- Formats: neither checks them unless the sink asks (``validate_field_string_format``, off in singer-sdk and in every
  ml-connector sink); dates and timestamps are then checked by the sink's parsing (``BadRecordsSink``), as before.
- A number written with a point or an exponent and no fraction (``2.0``, ``1e3``) in a field of type ``integer`` is
  accepted, as JSON Schema says (an integer is a number whose fractional part is zero). singer-sdk refused it only
  because its reader makes such numbers ``Decimal``, which Python's jsonschema does not count as integers (the float
  ``2.0`` it does); every writer here takes Decimals. ``2.5`` is refused by both.
- NaN and Infinity, which Python's JSON reader takes from a tap but JSON has not, are refused as not numbers
  (singer-sdk accepted them and the JSON encoders would have sent null).
- ``pattern`` is an ECMA-262 regular expression, as JSON Schema says: ``\\d`` is 0-9 only (Python's matches any
  Unicode digit), and a Python-only construct (``\\Z``) makes the schema invalid, named at the stream's start.
- ``multipleOf`` works on Decimals (singer-sdk's validator crashed on them with a TypeError).
- The messages are jsonschema-rs' (``"abc" is not of types "null", "number"``, where singer-sdk said
  ``'abc' is not of type 'number', 'null'``).
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Sequence
from decimal import Decimal

import jsonschema_rs
from singer_sdk.exceptions import InvalidJSONSchema, InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator


class InvalidField(InvalidRecord):
    """A validator's answer naming the field (a path such as ``lines[0].quantity``) apart from the reason."""

    def __init__(self, reason: str, field: str | None, record: dict) -> None:
        super().__init__(f"{reason} at {field}" if field else reason, record)
        self.field = field
        self.reason = reason


def field_path(parts: Sequence[t.Any]) -> str | None:
    """``["lines", 0, "quantity"]`` as ``lines[0].quantity``; None for the record itself."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or None


class CompiledSchemaValidator(BaseJSONSchemaValidator):
    """A stream's schema compiled once; ``validate`` raises ``InvalidField`` (an ``InvalidRecord``) for a record that
    does not fit it."""

    def __init__(self, schema: dict[str, t.Any], *, validate_formats: bool = False) -> None:
        super().__init__(schema)
        try:
            self._validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=validate_formats,
                                                                 retriever=_not_fetched)
        except jsonschema_rs.ValidationError as exc:
            where = field_path(list(exc.instance_path))
            raise InvalidJSONSchema(f"not valid JSON Schema: {exc.message}" + (f" at {where}" if where else "")) from None

    def validate(self, record: dict[str, t.Any]) -> None:
        try:
            self._validator.validate(record)
        except jsonschema_rs.ValidationError as exc:
            path = list(exc.instance_path)
            raise InvalidField(_reason(exc.message, _value_at(record, path)), field_path(path), record) from None


def _not_fetched(uri: str) -> t.NoReturn:
    # jsonschema-rs would fetch a remote $ref over HTTP: a target talks to its destination only (singer-sdk's validator
    # never fetched one either).
    raise ValueError(f"{uri}: a target does not fetch schemas")


def _value_at(record: t.Any, path: Sequence[str | int]) -> t.Any:
    value = record
    for part in path:
        value = value[part]
    return value


def _reason(message: str, value: t.Any) -> str:
    # jsonschema-rs sees a non-finite number as null ("null is not of types "null", "number""): say what it is.
    if (isinstance(value, float) and not math.isfinite(value)) or (isinstance(value, Decimal) and not value.is_finite()):
        return f"{value} is not a number JSON can hold"
    return message
