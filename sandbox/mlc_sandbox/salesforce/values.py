"""Field values between JSON and storage: what each field type accepts on write (with Salesforce's error texts) and
how stored values are rendered (datetimes `2026-11-25T20:15:03.000+0000`)."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .schema import NUMBER_TYPES, TEXT_TYPES, Field

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$")


class RecordFailure(Exception):
    """A record Salesforce refuses: one error `{statusCode, message, fields}`."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.code, self.message, self.fields = code, message, list(fields or [])

    def as_result_error(self) -> dict:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def as_api_error(self) -> dict:
        return {"message": self.message, "errorCode": self.code, "fields": self.fields}


def shown(raw) -> str:
    """A value as Salesforce quotes it in messages."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def parse_datetime(text: str) -> datetime | None:
    if not _DATETIME.match(text):
        return None
    normalized = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normalized):
        normalized = normalized[:-2] + ":" + normalized[-2:]
    try:
        return datetime.fromisoformat(normalized).astimezone(timezone.utc)
    except ValueError:
        return None


def parse_date(text: str) -> date | None:
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def coerce(field: Field, raw):
    """The stored value of `raw` written to `field`; RecordFailure when Salesforce would refuse it."""
    if raw is None:
        return False if field.type == "boolean" else None
    wrong_type = RecordFailure("INVALID_TYPE_ON_FIELD_IN_RECORD",
                               f"{field.label}: value not of required type: {shown(raw)}", [field.name])
    kind = field.type
    if kind in TEXT_TYPES or kind in ("reference", "id"):
        if isinstance(raw, (dict, list)):
            raise wrong_type
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, float) and raw.is_integer():
            text = str(int(raw))
        else:
            text = str(raw)
        return text if text != "" else None  # Salesforce stores an empty text as null
    if kind in NUMBER_TYPES:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise wrong_type
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            raise wrong_type from None
        if not number.is_finite():
            raise wrong_type
        number = number.quantize(Decimal(1).scaleb(-field.scale), rounding=ROUND_HALF_UP)
        if abs(number) >= Decimal(10) ** (field.precision - field.scale):
            raise RecordFailure("NUMBER_OUTSIDE_VALID_RANGE",
                                f"{field.label}: value outside of valid range on numeric field: {shown(raw)}",
                                [field.name])
        return float(number)
    if kind == "date":
        value = parse_date(raw) if isinstance(raw, str) else None
        if value is None:
            raise wrong_type
        return value
    if kind == "datetime":
        value = parse_datetime(raw) if isinstance(raw, str) else None
        if value is None:
            raise wrong_type
        return value.replace(microsecond=0)
    if kind == "boolean":
        if not isinstance(raw, bool):
            raise wrong_type
        return raw
    raise wrong_type


def check_content(field: Field, value) -> None:
    """Length, picklist and e-mail checks of a coerced value."""
    if value is None or not isinstance(value, str):
        return
    if field.type in TEXT_TYPES and field.length and len(value) > field.length:
        raise RecordFailure("STRING_TOO_LONG",
                            f"{field.label}: data value too large: {value} (max length={field.length})", [field.name])
    if field.type == "picklist" and field.restricted and value not in field.picklist:
        raise RecordFailure("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            f"{field.label}: bad value for restricted picklist field: {value}", [field.name])
    if field.type == "email" and not _EMAIL.match(value):
        raise RecordFailure("INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {value}", [field.name])


def render_datetime(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def render(value):
    if isinstance(value, datetime):
        return render_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
