"""target-teams: IFS records that need attention, posted to Microsoft Teams channels as Adaptive Cards."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Mapping
from functools import cached_property
from urllib.parse import parse_qs, quote, urlsplit

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.audit import AuditEntry, AuditTrail, StoredEntry
from ml_connector_core.audit_cli import REPLAY_RUN_ENV
from ml_connector_core.audited_target import BOOKMARK_HINT, PAYLOAD_RETENTION_SETTING, AuditedTarget
from ml_connector_core.bad_records import BAD_RECORDS_SETTING
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.redaction import register_secret
from ml_connector_core.run_outcome import EXPECT_CLOSING_STATE_SETTING, RunOutcome
from ml_connector_core.secrets import SecretKeyError, unseal
from ml_connector_core.tls import ca_bundle_property, new_session
from target_teams.delivery import (UNKNOWN_DELIVERY, DeliveryRefused, DeliveryUnknown, GraphDelivery,
                                   WorkflowsDelivery)
from target_teams.sinks import StreamNotifier, TeamsSink, _card_of, unfinished_post_error

_LINK_VALUE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
DEFAULT_LINKS = {
    "purchase_orders": "/main/ifsapplications/web/page/PurchaseOrder/Form?$filter=OrderNo eq '{{OrderNo}}'",
    "posting_proposals": "/main/ifsapplications/web/page/ManualSupplierInvoice/Form?$filter=Company eq '{{Company}}' and InvoiceNo eq '{{InvoiceNo}}'",
    "vouchers": "/main/ifsapplications/web/page/Voucher/Form?$filter=Company eq '{{Company}}' and VoucherType eq '{{VoucherType}}' and AccountingYear eq {{AccountingYear}} and VoucherNo eq {{VoucherNo}}",
}


class Ledger:
    """What was already posted, read from the audit trail: the last card sent for a record, whatever run sent it."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail

    def last_sent(self, stream: str, key: dict) -> StoredEntry | None:
        last = None
        for entry in self.trail.entries(stream=stream, key=key, outcome="succeeded"):
            if entry.operation in ("insert", "update"):
                last = entry
        return last

    def last_card(self, stream: str, key: dict, *, replaying: bool = False) -> StoredEntry | None:
        """The last card that is, or may be, in the channel: the last one posted, or a later one whose delivery is
        unknown (still failed). A replay (a person asked for it) counts the posted ones only."""
        last = None
        for entry in self.trail.entries(stream=stream, key=key):
            if entry.outcome == "succeeded" and entry.operation in ("insert", "update"):
                last = entry
            elif entry.outcome == "failed" and not replaying and is_unknown_delivery(entry):
                last = entry
        return last


def is_unknown_delivery(entry: StoredEntry) -> bool:
    return bool(entry.error) and entry.error.startswith(UNKNOWN_DELIVERY)


class TargetTeams(AuditedTarget, Target):
    """Posts one Adaptive Card per notable IFS record (or a digest per channel) to the channel of its company."""

    name = "target-teams"
    default_sink_class = TeamsSink
    outcomes_title = "Teams cards"
    undelivered_log_text = "%d record(s) could not be posted to Teams; they are resent at the start of the next run"

    config_jsonschema = th.PropertiesList(
        th.Property("delivery", th.StringType, default="workflows", allowed_values=["workflows", "graph"],
                    description="workflows: a Power Automate webhook per channel; graph: Microsoft Graph channel messages."),
        th.Property("channels", th.ObjectType(additional_properties=th.StringType), required=True,
                    description="IFS company code (or 'company/cost centre') → channel name; '*' for everything else."),
        th.Property("cost_centre_field", th.StringType, description="Record field holding the cost centre, if routing uses it."),
        th.Property("webhooks", th.ObjectType(additional_properties=th.StringType), secret=True,
                    description="Channel name → Workflows webhook URL (the URL is a secret; values may be sealed)."),
        th.Property("graph_url", th.StringType, default="https://graph.microsoft.com"),
        th.Property("graph_token_url", th.StringType, description="https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token"),
        th.Property("graph_client_id", th.StringType),
        th.Property("graph_client_secret", th.StringType, secret=True),
        th.Property("graph_team_id", th.StringType),
        th.Property("graph_channel_ids", th.ObjectType(additional_properties=th.StringType),
                    description="Channel name → Graph channel id."),
        th.Property("ifs_base_url", th.StringType, required=True, description="The IFS tenant, for 'Open in IFS' links."),
        th.Property("links", th.ObjectType(additional_properties=th.StringType),
                    description="Per stream, the IFS page path with {{Field}} placeholders."),
        th.Property("templates_dir", th.StringType,
                    description="Folder of card templates (<stream>.json, default.json) overriding the packaged ones."),
        th.Property("version_field", th.StringType, default="etag",
                    description="Record field identifying a record version (never posted twice); else the bookmark property."),
        th.Property("digest", th.StringType, default="auto", allowed_values=["off", "auto", "always"],
                    description="Roll a channel's cards of one batch into one digest card: never, above digest_threshold, always."),
        th.Property("digest_threshold", th.IntegerType, default=10),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per card while Teams certainly did not take it: 429, 503 with Retry-After, "
                                "no connection (and with graph, a card found missing after a post without answer)."),
        ca_bundle_property(),
        th.Property("check_post_to", th.StringType,
                    description="Used by target-teams-check only: a channel (a name in webhooks or graph_channel_ids) "
                                "to post one small test card to, proving the whole way into Teams; empty: the check "
                                "posts nothing."),
        th.Property("audit_url", th.StringType, description="Audit trail (also the ledger of what was posted)."),
        th.Property("flow", th.StringType, default="ifs-to-teams"),
        EXPECT_CLOSING_STATE_SETTING,
        BAD_RECORDS_SETTING,
        PAYLOAD_RETENTION_SETTING,
    ).to_dict()

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.audit_trail)

    @cached_property
    def delivery(self) -> WorkflowsDelivery | GraphDelivery:
        return delivery_from_config(self.config)

    @cached_property
    def replaying(self) -> bool:
        """This run was started by `mlc-audit replay`: a person asked for its records to be posted again, also those
        whose delivery is unknown."""
        return bool(os.environ.get(REPLAY_RUN_ENV))

    def channel_for(self, record: dict) -> str:
        channels = self.config["channels"]
        company = str(record.get("Company", ""))
        cost_centre = record.get(self.config["cost_centre_field"]) if self.config.get("cost_centre_field") else None
        for candidate in ([f"{company}/{cost_centre}"] if cost_centre else []) + [company, "*"]:
            if candidate in channels:
                return channels[candidate]
        raise DeliveryRefused(f"no channel for company '{company}' (add it, or '*', to the channels setting)")

    def link_for(self, stream: str, record: dict) -> str:
        path = {**DEFAULT_LINKS, **(self.config.get("links") or {})}.get(stream)
        if not path:
            return self.config["ifs_base_url"]
        filled = _LINK_VALUE.sub(lambda m: str(record.get(m.group(1), "")).replace("'", "''"), path)
        return self.config["ifs_base_url"].rstrip("/") + quote(filled, safe="/?=&$;:'")

    def version_of(self, stream: str, record: dict) -> str | None:
        value = record.get(self.config["version_field"])
        if value is None:
            bookmarks = self.bookmark_properties.get(stream) or []
            value = record.get(bookmarks[0]) if bookmarks else None
        return None if value is None else str(value)

    def use_digest(self, count: int) -> bool:
        mode = self.config["digest"]
        return mode == "always" or (mode == "auto" and count > int(self.config["digest_threshold"]))

    def posted_since(self, failed: StoredEntry) -> bool:
        """A card for the failed entry's record (this version or a later one) was posted after it failed."""
        last = self.ledger.last_sent(failed.stream, failed.key)
        return last is not None and last.id > failed.id

    def redo_failed_work(self) -> None:
        """Cards that failed in earlier runs of this flow go out first, each once: their records are rendered and
        posted again the way a new batch is (one digest per channel for many), unless a card for the record was
        posted since. Entries of older versions, which kept only the message, are posted once per message."""
        records_by_stream: dict[str, list[dict]] = defaultdict(list)
        schema_run: dict[str, StoredEntry] = {}  # the newest failure of each stream: its run's SCHEMA is used
        by_message: dict[tuple[str | None, str | None], list[StoredEntry]] = defaultdict(list)
        for (stream, _), failures in self.open_failures(with_source_only=False).items():
            newest = failures[-1]
            if self.posted_since(newest):
                self.mark_replayed(failures)
            elif is_unknown_delivery(newest):
                continue  # it may be in the channel: posted again only by mlc-audit replay, when a person asks
            elif newest.source is not None:
                records_by_stream[stream].append(newest.source)
                if stream not in schema_run or schema_run[stream].id < newest.id:
                    schema_run[stream] = newest
            else:
                by_message[(newest.destination, newest.payload_json)].extend(failures)
        if records_by_stream or by_message:
            self.logger.info("Resending the cards of %d record(s) that could not be posted in earlier runs",
                             sum(map(len, records_by_stream.values())) + len(by_message))
        for stream, records in records_by_stream.items():
            remembered = self.audit_trail.schema(schema_run[stream].run_id, stream)
            key_properties = remembered.key_properties if remembered else list(records[0])
            if remembered and stream not in self.bookmark_properties:
                self.bookmark_properties[stream] = remembered.schema.get(BOOKMARK_HINT) or []
            StreamNotifier(self, stream, key_properties, self.config.get("templates_dir")).deliver(records)
        for (channel, _), failures in by_message.items():
            newest = list({f.record_key: f for f in failures}.values())
            card = _card_of(failures[-1].payload)
            # As for a new card (sinks.StreamNotifier._send): unknown if the run ends while it is being posted.
            pending = self.audit_run.record_pending([
                AuditEntry(stream=f.stream, key=f.key, version=f.version, operation=f.operation, destination=channel,
                           outcome="failed", attempts=0, error=unfinished_post_error(channel),
                           payload=self.delivery.message(card)) for f in newest])
            try:
                self.delivery.send(channel, card)
            except DeliveryUnknown as exc:  # recorded, so that no later run posts it again on its own
                self.logger.error("resending entries %s: %s", ", ".join(str(f.id) for f in failures), exc)
                entries = [AuditEntry(stream=f.stream, key=f.key, version=f.version, operation=f.operation,
                                      destination=channel, outcome="failed", attempts=self.delivery.attempts,
                                      error=str(exc), payload=exc.message_sent) for f in newest]
                self.audit_run.record(entries, replacing=pending)
                self.count(entries)
                continue
            except DeliveryRefused as exc:
                self.audit_run.record([], replacing=pending)
                self.logger.error("resending entries %s still fails: %s", ", ".join(str(f.id) for f in failures), exc)
                self.unrecorded_failures += len({f.record_key for f in failures})
                continue
            self.mark_replayed(failures)
            self.audit_run.record([], replacing=pending)
        self.settle_failures()

    def settle_failures(self) -> None:
        """Failures whose record got its card after all (redone, or a later version posted) are marked replayed."""
        for failures in self.open_failures(with_source_only=False).values():
            if self.posted_since(failures[-1]):
                self.mark_replayed(failures)

    def process_endofpipe(self) -> None:
        super().process_endofpipe()
        self.settle_failures()

    def report_outcomes(self, outcome: RunOutcome) -> None:
        unknown = sum(1 for entry in self.audit_trail.failures(run_id=self.audit_run.run_id)
                      if is_unknown_delivery(entry))
        # The closing ERROR must not promise to resend these.
        if unknown and unknown == self.undelivered():
            self.undelivered_log_text = ("%d record(s) may not have reached Teams: their delivery is unknown (the card "
                                         "may be in the channel), so they are not resent on their own; look in the "
                                         "channel before a replay")
        elif unknown:
            self.undelivered_log_text += (f", except {unknown} whose delivery is unknown (the card may be in the "
                                          "channel): those are not resent on their own, look in the channel")
        super().report_outcomes(outcome)


def delivery_from_config(config: Mapping) -> WorkflowsDelivery | GraphDelivery:
    """How cards reach Teams, from the settings: a Workflows webhook per channel, or Graph with an app token."""
    max_tries = int(config.get("max_tries") or 8)
    if (config.get("delivery") or "workflows") == "workflows":
        webhooks = {name: _unsealed(url, f"webhooks.{name}") for name, url in (config.get("webhooks") or {}).items()}
        for url in webhooks.values():
            register_secret(url)  # the URL is the credential; its signature alone is secret too
            for signature in parse_qs(urlsplit(url).query).get("sig", []):
                register_secret(signature)
        return WorkflowsDelivery(webhooks, max_tries=max_tries, session=new_session(config))
    missing = [k for k in ("graph_token_url", "graph_client_id", "graph_client_secret", "graph_team_id")
               if not config.get(k)]
    if missing:
        raise ConfigValidationError(f"delivery graph needs {', '.join(missing)}", errors=missing)
    auth = ClientCredentialsAuth(
        config["graph_token_url"], config["graph_client_id"],
        _unsealed(config["graph_client_secret"], "graph_client_secret"),
        scope="https://graph.microsoft.com/.default", session=new_session(config),
    )
    return GraphDelivery(config.get("graph_url") or "https://graph.microsoft.com", config["graph_team_id"],
                         config.get("graph_channel_ids") or {}, auth, max_tries=max_tries, session=new_session(config))


def _unsealed(value: str, setting_name: str) -> str:
    # A configuration error, which singer-sdk reports in one line, instead of an exception with a traceback.
    try:
        return unseal(value, setting_name=setting_name)
    except SecretKeyError as exc:
        raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
