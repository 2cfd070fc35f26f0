"""One stream's notifications: route each record to its channel, never post a record version twice, say what changed,
and roll a surge into one digest card per channel."""

from __future__ import annotations

import json
import typing as t
from collections import defaultdict
from collections.abc import Iterable, Sequence

from singer_sdk.sinks import BatchSink

from ml_connector_core.audit import AuditEntry
from ml_connector_core.audited_target import BOOKMARK_HINT
from ml_connector_core.bad_records import BadRecordsSink
from target_teams import cards
from target_teams.delivery import UNKNOWN_DELIVERY, DeliveryFailed, DeliveryUnknown

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


class StreamNotifier:
    """Posts a stream's records as cards: the sink's batches, and the records of failed sends redone by the target.
    Each record is checked against the ledger (what was posted before), so a record version is never posted twice."""

    def __init__(self, teams: TargetTeams, stream_name: str, key_properties: Sequence[str], templates_dir) -> None:
        self.teams = teams
        self.stream_name = stream_name
        self.key_properties = list(key_properties)
        self.template = cards.load_template(stream_name, templates_dir)
        # The outcome of the last post, recorded with the pending entry of the next one (one audit commit a card).
        self._outcome: tuple[list[AuditEntry], list[int]] = ([], [])

    def deliver(self, records: Iterable[dict]) -> None:
        per_channel: dict[str, list[Notification]] = defaultdict(list)
        skipped: list[AuditEntry] = []
        for record in records:
            notification, channel = self._notification(record)
            if notification.operation in (INSERT, UPDATE):
                per_channel[channel].append(notification)
            else:
                skipped.append(self._entry(notification, channel, "succeeded", None, notification.card, 0))
        if skipped:
            self._record(skipped)
        try:
            for channel, notifications in per_channel.items():
                if self.teams.use_digest(len(notifications)):
                    self._send_digest(channel, notifications)
                else:
                    for notification in notifications:
                        self._send(channel, [notification], notification.card)
        finally:
            # Before the next batch looks its records up in the ledger, and whatever stopped this one.
            entries, replacing = self._take_outcome()
            if entries:
                self._record(entries, replacing=replacing)

    def _notification(self, record: dict) -> tuple[Notification, str]:
        key = {k: record.get(k) for k in self.key_properties}
        version = self.teams.version_of(self.stream_name, record)
        channel = self.teams.channel_for(record)
        url = self.teams.link_for(self.stream_name, record)
        card = cards.render(self.template, record, {"ifs_url": url, "stream_title": self.stream_name.replace("_", " ").title(),
                                                    "record_title": " ".join(str(v) for v in key.values())})
        line = {"text": f"{card['body'][0].get('text', '')}: {cards.facts(card).get('Status', '')}", "url": url}
        previous = self.teams.ledger.last_card(self.stream_name, key, replaying=self.teams.replaying)
        if previous is None:
            return Notification(record, key, version, card, INSERT, line), channel
        if version is not None and previous.version == version:
            if previous.outcome == "failed":  # its delivery is unknown: posted again only when a person asks
                self.teams.logger.warning(
                    "Not posted: the card of %s %s (version %s) may already be in channel '%s' (delivery unknown, "
                    "audit entry %d); look in the channel, `mlc-audit replay --entry %d` posts it again",
                    self.stream_name, json.dumps(key, default=str), version, previous.destination, previous.id,
                    previous.id)
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
        # Written before the post and replaced by its outcome after: a run killed in between (SIGKILL, a crash)
        # leaves the card's delivery unknown in the ledger, so no later run posts it again on its own. The outcome of
        # the previous post goes into the same transaction: killed before it, that card's delivery is unknown too,
        # as it would be if killed before a transaction of its own.
        previous, replacing = self._take_outcome()
        pending = self.teams.audit_run.record_and_pend(previous, replacing=replacing, pending=[
            self._entry(n, channel, "failed", unfinished_post_error(channel), self.teams.delivery.message(card), 0)
            for n in notifications])
        self.teams.count(previous)
        try:
            message, attempts = self.teams.delivery.send(channel, card)
            outcome, error = "succeeded", None
        except DeliveryFailed as exc:
            message = exc.message_sent if isinstance(exc, DeliveryUnknown) else self.teams.delivery.message(card)
            attempts, outcome, error = self.teams.delivery.attempts, "failed", str(exc)
            self.teams.logger.error("%s", exc)
        self._outcome = ([self._entry(n, channel, outcome, error, message, attempts) for n in notifications], pending)

    def _take_outcome(self) -> tuple[list[AuditEntry], list[int]]:
        """The last post's outcome entries and the pending entries they replace, not yet recorded (now taken)."""
        taken, self._outcome = self._outcome, ([], [])
        return taken

    def _entry(self, n: Notification, channel: str, outcome: str, error, message: dict, attempts: int) -> AuditEntry:
        # A failed entry keeps the record as received: a redo or replay renders it again (one digest for all the
        # records it carries), where the message sent would be posted once per record it held.
        return AuditEntry(stream=self.stream_name, key=n.key, version=n.version, operation=n.operation,
                          destination=channel, outcome=outcome, attempts=attempts, error=error, payload=message,
                          source=n.record if outcome == "failed" else None)

    def _record(self, entries: list[AuditEntry], replacing: Sequence[int] = ()) -> None:
        self.teams.audit_run.record(entries, replacing=replacing)
        self.teams.count(entries)


def unfinished_post_error(channel: str) -> str:
    """What a card's entry says when its run ended while posting it: it may or may not be in the channel."""
    return (f"{UNKNOWN_DELIVERY}the run ended (killed or crashed) while this card was being posted to channel "
            f"'{channel}': it may be there; look in the channel before a replay")


class TeamsSink(BadRecordsSink, BatchSink):
    MAX_SIZE_DEFAULT = 2000  # a month-end surge arrives as one batch, so the digest sees all of it

    def __init__(self, target: TargetTeams, stream_name: str, schema: dict, key_properties) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.notifier = StreamNotifier(target, stream_name, self.key_properties, self.config.get("templates_dir"))
        # With the bookmark property, which tells record versions apart when records carry no version_field.
        remembered = {**schema, BOOKMARK_HINT: target.bookmark_properties.get(stream_name) or []}
        target.audit_run.remember_schema(stream_name, remembered, list(self.key_properties))

    def process_batch(self, context: dict) -> None:
        self.notifier.deliver(context["records"])


def _card_of(message: dict) -> dict:
    """The Adaptive Card inside a message as it was sent (Workflows: an object; Graph: a JSON string)."""
    content = (message or {}).get("attachments", [{}])[0].get("content")
    return json.loads(content) if isinstance(content, str) else (content or {})
