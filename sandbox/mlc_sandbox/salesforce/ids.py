"""Salesforce record ids: 15 case-sensitive characters (key prefix + counter) and the 3-character suffix that makes
the 18-character form safe for case-insensitive systems."""

from __future__ import annotations

import re
import string

_SUFFIX_CHARS = string.ascii_uppercase + "012345"
_DIGITS = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_SHAPE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")
POD = "5e"  # characters 4-5 of an id name the instance; constant in one org


def _suffix(id15: str) -> str:
    suffix = ""
    for chunk in range(3):
        flags = 0
        for position, char in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= char <= "Z":
                flags |= 1 << position
        suffix += _SUFFIX_CHARS[flags]
    return suffix


def make_id(prefix: str, number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = _DIGITS[rest] + digits
    id15 = prefix + POD + digits.rjust(10, "0")
    return id15 + _suffix(id15)


def well_formed(value: str) -> bool:
    return isinstance(value, str) and bool(_ID_SHAPE.match(value))


def to18(value: str) -> str:
    """The 18-character form of a 15- or 18-character id (the case of an 18-character id's first 15 is trusted)."""
    return value if len(value) == 18 else value + _suffix(value)


def lookup_key(value: str) -> str:
    """What ids are indexed by: 18-character ids compare case-insensitively."""
    return to18(value).lower()
