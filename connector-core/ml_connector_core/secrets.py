"""Sealed settings: secrets stored encrypted at rest and opened only in memory.

A sealed value looks like ``sealed:v1:<Fernet token>``. The key never lives in the project: it comes from the
``MLC_SECRET_KEY`` environment variable or from the file named by ``MLC_SECRET_KEY_FILE``.

Why a secret setting must arrive sealed, even from an environment variable: Meltano hands a plugin its settings in a
file it writes for each run, ``.meltano/run/<plugin>/<tap|target>.<uuid>.config.json`` (mode 0644 under the usual
umask), and deletes it only when the run ends normally; a killed run (SIGKILL, OOM, a lost machine) leaves it behind.
Whatever the plugin is given is on disk for that long. A plain value still works, with a warning, so that a project can
move over setting by setting.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

logger = logging.getLogger(__name__)

SEALED_PREFIX = "sealed:v1:"
KEY_ENV = "MLC_SECRET_KEY"
KEY_FILE_ENV = "MLC_SECRET_KEY_FILE"
_KEY_SHAPE = "a key is the 44 characters `mlc-secret generate-key` prints"


#: Settings already warned about as plain in this process.
_warned_plain: set[str] = set()


class SecretKeyError(RuntimeError):
    """The key needed to open a sealed setting is missing or does not fit."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def key_source() -> str:
    """Where the key is taken from, as messages name it (never the key itself)."""
    if os.environ.get(KEY_ENV):
        return KEY_ENV
    if os.environ.get(KEY_FILE_ENV):
        return f"the key file {Path(os.environ[KEY_FILE_ENV]).expanduser()} named by {KEY_FILE_ENV}"
    return "no key"


def load_key(purpose: str = "a setting is sealed") -> bytes:
    """The key's bytes; ``purpose`` starts the message when there is none to be had."""
    key = os.environ.get(KEY_ENV)
    if not key and os.environ.get(KEY_FILE_ENV):
        key_path = Path(os.environ[KEY_FILE_ENV]).expanduser()
        try:
            key = key_path.read_bytes().decode("ascii").strip()
        except OSError as exc:
            raise SecretKeyError(f"{purpose}, but the key file {key_path} named by {KEY_FILE_ENV} cannot be read: "
                                 f"{exc.strerror}") from None
        except UnicodeDecodeError:
            key = None
        if not key:
            raise SecretKeyError(f"{purpose}, but the key file {key_path} named by {KEY_FILE_ENV} holds no key "
                                 f"({_KEY_SHAPE})")
    if not key:
        raise SecretKeyError(
            f"{purpose}, but no key is available: set {KEY_ENV} or {KEY_FILE_ENV} "
            "(create one with `mlc-secret generate-key --output PATH`)"
        )
    try:
        return key.strip().encode("ascii")
    except UnicodeEncodeError:
        raise SecretKeyError(f"{purpose}, but {key_source()} holds no key ({_KEY_SHAPE})") from None


def _fernet(key: bytes, purpose: str, source: str) -> Fernet:
    try:
        return Fernet(key)
    except ValueError:  # also binascii.Error: not URL-safe base64, or not 32 bytes
        raise SecretKeyError(f"{purpose}, but {source} holds no valid key ({_KEY_SHAPE})") from None


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def seal(plaintext: str, key: bytes | None = None) -> str:
    purpose = "cannot seal"
    fernet = _fernet(key or load_key(purpose), purpose, "the given key" if key else key_source())
    return SEALED_PREFIX + fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")


def unseal(value: str, *, setting_name: str = "setting", key: bytes | None = None, warn_if_plain: bool = True) -> str:
    """Return the plaintext of a sealed value; a value that is not sealed is returned as it is, with a warning (once
    per setting and process) unless ``warn_if_plain`` is false (a part of a setting that is not secret).

    Every failure is one :class:`SecretKeyError` line naming the setting and where the key came from."""
    if not is_sealed(value):
        if warn_if_plain and isinstance(value, str) and value and setting_name not in _warned_plain:
            _warned_plain.add(setting_name)
            logger.warning(
                "'%s' is not sealed: whatever holds this plugin's configuration holds it in plain, and Meltano's "
                "config file for the run (.meltano/run/<plugin>/*.config.json) stays on disk when a run is killed; "
                "give its sealed form instead (`mlc-secret seal`, README: Secrets)", setting_name)
        return value
    purpose = f"'{setting_name}' is sealed"
    source = "the given key" if key else key_source()
    fernet = _fernet(key or load_key(purpose), purpose, source)
    try:
        return fernet.decrypt(value[len(SEALED_PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise SecretKeyError(
            f"the sealed value of '{setting_name}' cannot be opened with {source}: it was sealed with another key, "
            "or is damaged"
        ) from None
