"""What reached a channel (accepted messages, in order) and what was refused, with why."""

from __future__ import annotations

import threading
import time
from collections import deque

from .responses import utc_now


class MessageStore:
    def __init__(self, rejection_limit: int = 5000):
        self._lock = threading.Lock()
        self._messages: list[dict] = []
        self._rejections: deque[dict] = deque(maxlen=rejection_limit)
        self._sequence = 0
        self._last_id_ms = 0

    def _next(self) -> tuple[int, str, str]:
        """(sequence, message id, received time): Teams message ids are the creation time in epoch milliseconds,
        kept unique here by stepping past the previous one."""
        now = time.time()
        self._sequence += 1
        self._last_id_ms = max(self._last_id_ms + 1, int(now * 1000))
        return self._sequence, str(self._last_id_ms), utc_now(self._last_id_ms / 1000)

    def accept(self, channel, api: str, cards: list[dict], request: dict, size_bytes: int, **extra) -> dict:
        with self._lock:
            sequence, message_id, received_at = self._next()
            message = {"sequence": sequence, "id": message_id, "channel_id": channel.id,
                       "channel_name": channel.name, "api": api, "received_at": received_at,
                       "card": cards[0] if cards else None, "cards": cards, "size_bytes": size_bytes,
                       "request": request, **extra}
            self._messages.append(message)
        return message

    def messages(self, channel_id: str | None = None) -> list[dict]:
        with self._lock:
            return [m for m in self._messages if channel_id is None or m["channel_id"] == channel_id]

    def clear_messages(self) -> int:
        with self._lock:
            cleared = len(self._messages)
            self._messages.clear()
        return cleared

    def reject(self, api: str, channel_id: str | None, status: int, code: str, message: str, *,
               path: str | None = None, problems: list[dict] | None = None, size_bytes: int = 0,
               request_text: str = "", **extra) -> dict:
        with self._lock:
            self._sequence += 1
            entry = {"sequence": self._sequence, "received_at": utc_now(), "api": api, "channel_id": channel_id,
                     "status": status, "code": code, "message": message, "path": path, "problems": problems or [],
                     "size_bytes": size_bytes, "request": request_text[:4000], **extra}
            self._rejections.append(entry)
        return entry

    def rejections(self) -> list[dict]:
        with self._lock:
            return list(self._rejections)

    def clear_rejections(self) -> int:
        with self._lock:
            cleared = len(self._rejections)
            self._rejections.clear()
        return cleared
