"""Sealed settings: secrets stored encrypted at rest and opened only in memory.

A sealed value looks like ``sealed:v1:<Fernet token>``. The key never lives in the project: it comes from the
``MLC_SECRET_KEY`` environment variable or from the file named by ``MLC_SECRET_KEY_FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

SEALED_PREFIX = "sealed:v1:"
KEY_ENV = "MLC_SECRET_KEY"
KEY_FILE_ENV = "MLC_SECRET_KEY_FILE"


class SecretKeyError(RuntimeError):
    """The key needed to open a sealed setting is missing or does not fit."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def load_key() -> bytes:
    key = os.environ.get(KEY_ENV)
    if not key and os.environ.get(KEY_FILE_ENV):
        key_path = Path(os.environ[KEY_FILE_ENV]).expanduser()
        try:
            key = key_path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise SecretKeyError(f"cannot read the secret key file named by {KEY_FILE_ENV} ({key_path}): {exc.strerror}") from None
    if not key:
        raise SecretKeyError(
            f"a setting is sealed but no key is available: set {KEY_ENV} or {KEY_FILE_ENV} "
            "(create one with `mlc-secret generate-key`)"
        )
    return key.encode("ascii")


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def seal(plaintext: str, key: bytes | None = None) -> str:
    token = Fernet(key or load_key()).encrypt(plaintext.encode("utf-8"))
    return SEALED_PREFIX + token.decode("ascii")


def unseal(value: str, *, setting_name: str = "setting", key: bytes | None = None) -> str:
    """Return the plaintext of a sealed value; a value that is not sealed is returned as it is."""
    if not is_sealed(value):
        return value
    try:
        fernet = Fernet(key or load_key())
    except ValueError:
        raise SecretKeyError(f"the key in {KEY_ENV}/{KEY_FILE_ENV} is not a valid Fernet key") from None
    try:
        return fernet.decrypt(value[len(SEALED_PREFIX):].encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretKeyError(
            f"the sealed value of '{setting_name}' cannot be opened with the configured key "
            "(sealed with another key, or damaged)"
        ) from None
