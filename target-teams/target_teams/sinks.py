"""One stream's notifications: route each record to its channel, never post a record version twice, say what changed,
and roll a surge into one digest card per channel."""

from __future__ import annotations

import json
import typing as t
from collections import defaultdict

from singer_sdk.sinks import BatchSink

from ml_connector_core.audit import AuditEntry
from target_teams import cards
from target_teams.delivery import DeliveryRefused

if t.TYPE_CHECKING:
    from target_teams.target import TargetTeams

INSERT, UPDATE, UNCHANGED, SKIPPED = "insert", "update", "unchanged", "skipped_duplicate"


class Notification(t.NamedTuple):
    record: dict
    key: dict
    version: str | None
    card: dict
    operation: str
    line: dict  # one line of a digest


class TeamsSink(BatchSink):
    MAX_SIZE_DEFAULT = 2000  # a month-end surge arrives as one batch, so the digest sees all of it

    def __init__(self, target: TargetTeams, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.teams = target
        self.template = cards.load_template(stream_name, self.config.get("templates_dir"))
        target.audit_run.remember_schema(stream_name, schema, list(self.key_properties))

    def process_batch(self, context: dict) -> None:
        per_channel: dict[str, list[Notification]] = defaultdict(list)
        skipped: list[AuditEntry] = []
        for record in context["records"]:
            notification, channel = self._notification(record)
            if notification.operation in (INSERT, UPDATE):
                per_channel[channel].append(notification)
            else:
                skipped.append(self._entry(notification, channel, "succeeded", None, notification.card, 0))
        if skipped:
            self.teams.audit_run.record(skipped)
        for channel, notifications in per_channel.items():
            if self.teams.use_digest(len(notifications)):
                self._send_digest(channel, notifications)
            else:
                for notification in notifications:
                    self._send(channel, [notification], notification.card)

    def _notification(self, record: dict) -> tuple[Notification, str]:
        key = {k: record.get(k) for k in self.key_properties}
        version = self.teams.version_of(self.stream_name, record)
        channel = self.teams.channel_for(record)
        url = self.teams.link_for(self.stream_name, record)
        card = cards.render(self.template, record, {"ifs_url": url, "stream_title": self.stream_name.replace("_", " ").title(),
                                                    "record_title": " ".join(str(v) for v in key.values())})
        line = {"text": f"{card['body'][0].get('text', '')}: {cards.facts(card).get('Status', '')}", "url": url}
        previous = self.teams.ledger.last_sent(self.stream_name, key)
        if previous is None:
            return Notification(record, key, version, card, INSERT, line), channel
        if version is not None and previous.version == version:
            return Notification(record, key, version, card, SKIPPED, line), channel
        changed = cards.changes(cards.facts(_card_of(previous.payload)), cards.facts(card))
        if not changed:
            return Notification(record, key, version, card, UNCHANGED, line), channel
        line["text"] += " (updated: " + "; ".join(changed) + ")"
        return Notification(record, key, version, cards.with_update_banner(card, changed), UPDATE, line), channel

    def _send_digest(self, channel: str, notifications: list[Notification]) -> None:
        title = f"{self.stream_name.replace('_', ' ').title()}: {len(notifications)} to review"
        self._send(channel, notifications, cards.digest_card(title, [n.line for n in notifications]))

    def _send(self, channel: str, notifications: list[Notification], card: dict) -> None:
        try:
            message, attempts = self.teams.delivery.send(channel, card)
            outcome, error = "succeeded", None
        except DeliveryRefused as exc:
            message, attempts = self.teams.delivery.message(card), self.teams.delivery.attempts
            outcome, error = "failed", str(exc)
            self.logger.error("%s", exc)
        self.teams.audit_run.record(
            self._entry(n, channel, outcome, error, message, attempts) for n in notifications
        )
        if error:
            self.teams.failed_sends += len(notifications)

    def _entry(self, n: Notification, channel: str, outcome: str, error, message: dict, attempts: int) -> AuditEntry:
        return AuditEntry(stream=self.stream_name, key=n.key, version=n.version, operation=n.operation,
                          destination=channel, outcome=outcome, attempts=attempts, error=error, payload=message)


def _card_of(message: dict) -> dict:
    """The Adaptive Card inside a message as it was sent (Workflows: an object; Graph: a JSON string)."""
    content = (message or {}).get("attachments", [{}])[0].get("content")
    return json.loads(content) if isinstance(content, str) else (content or {})


