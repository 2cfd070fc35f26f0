"""The targets' Singer input reader: msgspec for speed, with exactly what singer-sdk's own reader gives."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from singer_sdk.singerlib.encoding.simple import SimpleSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from ml_connector_core.audited_target import AuditedTarget, SingerInputReader

LINES = [
    '{"type":"RECORD","stream":"s","record":{"Amount":1234567.123456789012345678901234,"Qty":12345678901234567890123,'
    '"Rate":1e-7,"Neg":-0.0,"Name":"Ölfilter \\u00e9","Flag":true,"None":null,"Nested":{"x":[1,2.5]}}}',
    '{"type":"STATE","value":{"bookmarks":{"s":{"replication_key_value":"2026-12-07T10:00:00Z"}}}}',
]


@pytest.mark.parametrize("line", LINES)
def test_same_values_and_types_as_singer_sdks_reader(line):
    ours, theirs = SingerInputReader().deserialize_json(line), SimpleSingerReader().deserialize_json(line)
    assert ours == theirs
    assert repr(ours) == repr(theirs)  # Decimal('1E-7') stays Decimal('1E-7'), -0.0 keeps its sign, ints stay ints


def test_nan_reaches_the_record_checks_as_before():
    record = SingerInputReader().deserialize_json('{"Amount": NaN}')
    assert math.isnan(record["Amount"])


def test_an_unparsable_line_is_refused_as_before():
    with pytest.raises(InvalidInputLine):
        SingerInputReader().deserialize_json('{"type": "RECORD", ')


def test_every_audited_target_reads_with_it():
    assert AuditedTarget.message_reader_class is SingerInputReader
    assert isinstance(SingerInputReader().deserialize_json(LINES[0])["record"]["Amount"], Decimal)
