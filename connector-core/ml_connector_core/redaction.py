"""Keep secret values out of anything a person or a file may read: logs, errors, audit payloads."""

from __future__ import annotations

import logging
import threading

REDACTED = "***REDACTED***"
_registered: set[str] = set()
_lock = threading.Lock()
# Short values would redact ordinary words; a real credential is never this short.
_MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it would be logged."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)
        _install_log_filter()


def registered_secrets() -> frozenset[str]:
    """The values registered so far, for code that must also find them in encoded text (JSON escapes them)."""
    with _lock:
        return frozenset(_registered)


def redact_text(text: str) -> str:
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


_base_record_factory = logging.getLogRecordFactory()
_factory_installed = False


def _redacting_record_factory(*args, **kwargs) -> logging.LogRecord:
    record = _base_record_factory(*args, **kwargs)
    if _registered:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
    return record


def _install_log_filter() -> None:
    # A record factory sees every record of every logger, whichever handlers are configured later.
    global _factory_installed
    with _lock:
        if not _factory_installed:
            logging.setLogRecordFactory(_redacting_record_factory)
            _factory_installed = True
