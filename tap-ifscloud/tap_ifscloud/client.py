"""The stream that reads one IFS Cloud entity set: seek paging, incremental filters, $expand under the element limit."""

from __future__ import annotations

import datetime as dt
import decimal
import typing as t
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import msgspec
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers._util import utc_now
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams import RESTStream

from ml_connector_core import ifs_odata as odata
from ml_connector_core.http import RETRIABLE_STATUS, announce_long_waits, retry_waits, with_retries
from ml_connector_core.ifs_metadata import EntitySetInfo, MetadataError, entity_schema
from ml_connector_core.tap_cli import state_interval
from ml_connector_core.tls import new_session
from tap_ifscloud.streams import StreamDefinition

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_ifscloud.tap import TapIfsCloud

_json_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
# Share of the element limit a page aims at, leaving room for orders that are larger than the average so far.
_ELEMENT_TARGET = 0.8
# Lines read from their own set when IFS refuses $expand: the headers of one request's filter, at most this many and
# this long a filter, so that the URL stays well under what proxies in front of IFS accept.
_HEADERS_PER_LINE_REQUEST = 50
_LINE_FILTER_MAX_CHARS = 3000
# The most a zone's offset moves at a daylight-saving change.
_DAYLIGHT_SAVING_MARGIN = dt.timedelta(hours=1)


class ElementLimitExceeded(Exception):
    """IFS refused a response that would carry more elements than it allows."""


class ExpandRefused(Exception):
    """IFS will not $expand this collection (501, ODP_NOT_IMPLEMENTED, or a 400 naming $expand)."""


class Unauthorized(RetriableAPIError):
    """A 401: the token was rejected, so the next try fetches a new one at once."""

    retry_immediately = True


class IfsEntityStream(RESTStream):
    """One IFS entity set as a Singer stream; its schema and keys come from the projection's $metadata.

    Rows arrive ordered by (replication key, keys), so the bookmark after any record is exact: a STATE every
    ``state_interval_records`` records lets a stopped run resume mid-stream (from the bookmark minus the look-back,
    ``ge``: rows sharing the bookmark's timestamp are read again, never skipped). The bookmark moves only with records
    already emitted, never with the page fetched ahead.
    """
    # Values decoded from OData JSON already have their Singer types (str, int, Decimal, bool, lists of objects), so
    # the SDK's per-value conformance pass (half the tap's time) is skipped; post_process drops undeclared and
    # deselected fields instead.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(
        self,
        tap: TapIfsCloud,
        definition: StreamDefinition,
        entity: EntitySetInfo,
        expanded: EntitySetInfo | None = None,
    ) -> None:
        self.definition = definition
        self.entity = entity
        #: The entity set of the lines embedded through definition.expand: their schema, and where they are read from
        #: when IFS refuses the $expand.
        self.expanded = expanded
        schema = entity_schema(entity)
        if expanded is not None:
            schema["properties"][definition.expand] = {"type": ["array", "null"], "items": entity_schema(expanded)}
        super().__init__(tap, name=definition.name, schema=schema, path=definition.path)
        # the plugin's trust (ca_bundle, REQUESTS_CA_BUNDLE) in place of the SDK's plain session
        self._requests_session = new_session(self.config)
        self.primary_keys = list(entity.keys)
        if definition.replication_key:
            if definition.replication_key not in entity.properties:
                raise MetadataError(
                    f"stream '{definition.name}': {definition.entity_set} has no change column "
                    f"'{definition.replication_key}' (set stream_overrides.{definition.name}.replication_key)"
                )
            self.replication_key = definition.replication_key
        self._bookmark_is_timestamp = bool(self.replication_key) and entity.edm_type(self.replication_key) == "Edm.DateTimeOffset"
        self._consecutive_unauthorized = 0
        self._page_size = int(self.config["page_size"])
        self.STATE_MSG_FREQUENCY = state_interval(self.config)
        self._element_limit = int(self.config["max_elements_per_response"])
        self._parents_read = 0
        self._children_read = 0
        self._undeclared_seen: set[str] = set()
        self._offset_known = False
        self._offset_read: dt.timedelta | None = None
        # Set when the server is asked for more than the window (see _bookmark_filter): rows changed before it are
        # not emitted.
        self._emit_from: dt.datetime | None = None
        # Decided at the first refusal of the $expand, for the rest of the run.
        self._lines_from_their_set = False
        # Timestamps are UTC with a Z whatever the tenant sends: some ignore X-Ifs-Time-Zone-Aware-Request and answer
        # in their own zone (+01:00), which would make the same instant a different string from one tenant to another.
        self._timestamp_fields = _timestamp_fields(entity)
        self._line_timestamp_fields = _timestamp_fields(expanded) if expanded is not None else ()

    @property
    def is_sorted(self) -> bool:
        """Rows come ordered by the replication key (a set without keys is read unordered: its bookmark then moves
        only at the end of the stream)."""
        return bool(self.replication_key) and bool(self._order(self.entity, self.replication_key))

    @property
    def url_base(self) -> str:
        return self._tap.service_root

    @property
    def authenticator(self):
        return self._tap.authenticator

    @property
    def http_headers(self) -> dict:
        return {
            "Accept": "application/json;odata.metadata=minimal",
            "OData-MaxVersion": "4.0",
            "X-Ifs-Time-Zone-Aware-Request": "true",
            "User-Agent": self.user_agent,
        }

    @property
    def timeout(self) -> int:
        return int(self.config["request_timeout_seconds"])

    def backoff_wait_generator(self):
        return retry_waits()

    def backoff_max_tries(self) -> int:
        return int(self.config["max_tries"])

    def request_decorator(self, func):
        # The SDK's own decorator logs every wait twice (INFO, and ERROR from backoff_handler) however short; the
        # shared loop keeps short waits at DEBUG and announces long ones once. Same exceptions as the SDK retries.
        return with_retries(func, (ConnectionResetError, RetriableAPIError, requests.exceptions.Timeout,
                                   requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                                   requests.exceptions.ContentDecodingError),
                            max_tries=self.backoff_max_tries, log=self.logger, wait_gen=self.backoff_wait_generator,
                            on_backoff=self.backoff_handler)

    def backoff_handler(self, details) -> None:
        announce_long_waits(self.logger, self.backoff_max_tries)(details)

    @property
    def label(self) -> str:
        return f"{self.definition.projection}.svc/{self.definition.entity_set}"

    # Reading

    def request_records(self, context: Context | None) -> t.Iterable[dict]:
        order = self._order(self.entity, self.replication_key)
        base_filter = odata.conjunction(self._bookmark_filter(context), self._company_filter(self.entity))
        if order and self.definition.paging == "seek":
            yield from self._read_seeking(self.path, base_filter, order, self.definition.expand, context)
        else:
            yield from self._read_following_links(self.path, base_filter, context)

    def _read_seeking(self, path, base_filter, order, expand, context) -> Iterator[dict]:
        """Page by seeking past the last row read: exact even when records change during the sync.

        The next page's condition is known as soon as a page arrives, so it is fetched while this one is emitted:
        the server's time and the tap's overlap instead of adding up.
        """

        def fetch_page_after(last_row: dict | None) -> list[dict]:
            conditions = odata.conjunction(base_filter, odata.seek_after(order, last_row) if last_row else None)
            options = {"$filter": conditions, "$orderby": ",".join(f for f, _ in order)}
            if expand:
                return self._read_expanded_page(path, options, expand, context)
            return self._get_rows(odata.with_query(self.url_base + path, {**options, "$top": self._plain_page_size}),
                                  context)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-prefetch") as prefetcher:
            pending = prefetcher.submit(fetch_page_after, None)
            while True:
                rows = pending.result()
                if not rows:
                    return
                # A copy of the seek values: the rows are post-processed while the next page is fetched.
                pending = prefetcher.submit(fetch_page_after, {field: rows[-1][field] for field, _ in order})
                yield from rows

    def _read_following_links(self, path, base_filter, context) -> Iterator[dict]:
        """Server paging: follow nextLink, else $skip, until a page comes back empty. Not safe against rows moving
        during the sync, which is why seek paging is the default wherever the set has keys."""
        order = self._order(self.entity, self.replication_key)
        orderby = ",".join(f for f, _ in order) or None
        url = odata.with_query(self.url_base + path, {"$filter": base_filter, "$orderby": orderby, "$top": self._page_size})
        rows_read = 0
        while True:
            payload = self._get(url, context)
            rows = payload.get("value", [])
            if not rows:
                return
            yield from rows
            rows_read += len(rows)
            next_link = payload.get("@odata.nextLink")
            url = (
                odata.resolve_next_link(url, next_link)
                if next_link
                else odata.with_query(
                    self.url_base + path,
                    {"$filter": base_filter, "$orderby": orderby, "$top": self._page_size, "$skip": rows_read},
                )
            )

    @property
    def _plain_page_size(self) -> int:
        return max(1, min(self._page_size, self._element_limit))

    def _read_expanded_page(self, path, options, expand, context) -> list[dict]:
        """One page of parents with their lines, split until it fits under the element limit."""
        if self._lines_from_their_set:
            return self._read_page_then_lines(path, options, context)
        top = self._expanded_page_size()
        while True:
            url = odata.with_query(self.url_base + path, {**options, "$top": top, "$expand": expand})
            try:
                rows = self._get_rows(url, context)
            except ElementLimitExceeded:
                if top > 1:
                    self.logger.info("%s: page of %d with %s exceeds %d elements, splitting", self.label, top, expand, self._element_limit)
                    top = max(1, top // 2)
                    continue
                return self._read_oversized_parent(path, options, context)
            except ExpandRefused as refusal:
                self._lines_from_their_set = True
                self.logger.info("%s: IFS refused $expand=%s (%s); reading the lines from %s instead, filtered by "
                                 "the keys of up to %d records a request, for the rest of this run", self.label,
                                 expand, refusal, self.expanded.name, _HEADERS_PER_LINE_REQUEST)
                return self._read_page_then_lines(path, options, context)
            self._parents_read += len(rows)
            self._children_read += sum(len(row.get(expand) or ()) for row in rows)
            return rows

    def _expanded_page_size(self) -> int:
        if not self._parents_read:
            return self._page_size
        elements_per_parent = 1 + self._children_read / self._parents_read
        return max(1, min(self._page_size, int(self._element_limit * _ELEMENT_TARGET / elements_per_parent)))

    def _read_oversized_parent(self, path, options, context) -> list[dict]:
        """A single parent with more lines than one response may carry: read it alone, then its lines in pages."""
        rows = self._get_rows(odata.with_query(self.url_base + path, {**options, "$top": 1}), context)
        if rows:
            self.logger.info("%s: record %s has more lines than one response allows; reading them from %s",
                             self.label, {k: rows[0][k] for k in self.entity.keys}, self.expanded.name)
            self._attach_lines(rows, context)
        return rows

    def _read_page_then_lines(self, path, options, context) -> list[dict]:
        """A page of parents without $expand, then their lines from the lines' own entity set."""
        rows = self._get_rows(odata.with_query(self.url_base + path, {**options, "$top": self._plain_page_size}), context)
        self._attach_lines(rows, context)
        return rows

    def _attach_lines(self, parents: list[dict], context) -> None:
        """Each parent's lines, as $expand would embed them: read from the lines' entity set by the parents' keys (a
        bounded batch of parents per filter, each batch paged by seeking) in the order of the lines' keys."""
        lines_set, keys = self.expanded, self.entity.keys
        path = f"/{self.definition.projection}.svc/{lines_set.name}"
        order = self._order(lines_set, None)
        for batch, condition in _batches_by_keys(parents, keys, {k: lines_set.edm_type(k) for k in keys}):
            lines_of = {tuple(parent[k] for k in keys): [] for parent in batch}
            for line in self._read_seeking(path, condition, order, None, context):
                parent_key = tuple(line.get(k) for k in keys)
                if parent_key not in lines_of:
                    raise FatalAPIError(f"{self.label}: {lines_set.name} answered a line of {parent_key} to a filter "
                                        f"on other {self.entity.name} keys")
                lines_of[parent_key].append(line)
            for parent in batch:
                parent[self.definition.expand] = lines_of[tuple(parent[k] for k in keys)]

    def _get_rows(self, url: str, context) -> list[dict]:
        return self._get(url, context).get("value", [])

    def _get(self, url: str, context) -> dict:
        request = self.build_prepared_request(method="GET", url=url, headers=self.http_headers)
        return self._send_with_retries(request, context).ifs_payload

    @cached_property
    def _send_with_retries(self):
        return self.request_decorator(self._request)

    def _request(self, prepared_request: requests.PreparedRequest, context) -> requests.Response:
        self._tap.request_budget.acquire()
        return super()._request(prepared_request, context)

    def parse_response(self, response: requests.Response) -> t.Iterable[dict]:
        yield from response.ifs_payload.get("value", [])

    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status == 401:
            self._tap.authenticator.invalidate()
            self._consecutive_unauthorized += 1
            if self._consecutive_unauthorized > 2:
                raise FatalAPIError(f"{self.label}: HTTP 401 even with a fresh token: {odata.error_message(response)}")
            raise Unauthorized(f"{self.label}: HTTP 401, fetching a new token", response)
        self._consecutive_unauthorized = 0
        if status == 500 and _is_element_limit(response):
            raise ElementLimitExceeded(odata.error_message(response))
        if status >= 400 and "$expand=" in (response.request.url or "") and _is_expand_refusal(response):
            raise ExpandRefused(f"HTTP {status}: {odata.error_message(response)}")
        if status in RETRIABLE_STATUS:
            raise RetriableAPIError(f"{self.label}: HTTP {status}: {odata.error_message(response)}", response)
        if status >= 400:
            raise FatalAPIError(f"{self.label}: HTTP {status} {response.reason}: {odata.error_message(response)}")
        try:
            payload = _json_decoder.decode(response.content)
        except msgspec.DecodeError as exc:
            raise RetriableAPIError(f"{self.label}: the response is not valid JSON ({exc})", response) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("value", []), list):
            raise FatalAPIError(f"{self.label}: the response has no 'value' list of records")
        response.ifs_payload = payload

    @cached_property
    def _emitted_properties(self) -> frozenset[str]:
        """Declared in $metadata and selected in the catalog: what a record may carry."""
        return frozenset(
            name for name in self.schema["properties"] if self.mask[("properties", name)]
        )

    def post_process(self, row: Record, context: Context | None = None) -> Record | None:
        _tidy(row)
        dropped = row.keys() - self._emitted_properties
        if dropped:
            for name in dropped:
                del row[name]
            undeclared = dropped - self.schema["properties"].keys()
            if undeclared - self._undeclared_seen:
                self._undeclared_seen |= undeclared
                self.logger.warning("%s: dropping fields not in $metadata: %s", self.label, ", ".join(sorted(undeclared)))
        _in_utc(row, self._timestamp_fields)
        if self._emit_from is not None and row.get(self.replication_key) and \
                odata.parse_datetime(row[self.replication_key]) < self._emit_from:
            return None
        rows_inside = row.get(self.definition.expand) if self.definition.expand else None
        if rows_inside:
            for child in rows_inside:
                _tidy(child)
                _in_utc(child, self._line_timestamp_fields)
        return row

    def _generate_record_messages(self, record: Record) -> t.Iterator[RecordMessage]:
        # The SDK's version walks every property of every record through the selection mask and the type conformer;
        # post_process has already kept exactly the selected, declared properties, whose values need no conversion.
        time_extracted = utc_now()
        for stream_map in self.stream_maps:
            mapped_record = stream_map.transform(record)
            if mapped_record is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped_record,
                    version=self._stream_version,
                    time_extracted=time_extracted,
                )

    # Bookmarks

    def _bookmark_filter(self, context) -> str | None:
        if not self.replication_key:
            return None
        bookmark = self.get_context_state(context).get("replication_key_value")
        if bookmark:
            start = odata.parse_datetime(bookmark) - dt.timedelta(seconds=int(self.config["lookback_seconds"]))
        elif self.config.get("start_date"):
            start = odata.parse_datetime(self.config["start_date"])
        else:
            return None
        if not self._bookmark_is_timestamp:
            return f"{self.replication_key} ge {start.date().isoformat()}"  # an Edm.Date change column
        offset = self._tenant_offset(context)
        if not offset:
            return f"{self.replication_key} ge {odata.datetime_literal(start)}"
        # A tenant that ignores X-Ifs-Time-Zone-Aware-Request reads a literal's wall-clock time in its own zone,
        # whatever offset the literal carries. Its offset at `start` may differ from the one its newest change
        # carries by a daylight-saving change, so the server is asked from an hour earlier and the rows before
        # `start` are dropped here: the records are exactly those a tenant answering in UTC gives.
        self._emit_from = start
        local = (start - _DAYLIGHT_SAVING_MARGIN).astimezone(dt.timezone(offset))
        return f"{self.replication_key} ge {local.replace(tzinfo=None).isoformat()}{_offset_text(offset)}"

    def _tenant_offset(self, context) -> dt.timedelta | None:
        """The offset of the tenant's answers when it ignores the request for UTC (None when it answers in UTC): read
        from the newest change of the set, once per stream and run."""
        if not self._offset_known:
            url = odata.with_query(self.url_base + self.path, {
                "$select": self.replication_key, "$orderby": f"{self.replication_key} desc", "$top": 1})
            rows = self._get_rows(url, context)
            value = rows[0].get(self.replication_key) if rows else None
            self._offset_read = odata.parse_datetime(value).utcoffset() if value else None
            self._offset_known = True
            if self._offset_read:
                self.logger.info("%s answers timestamps in UTC%s although asked for UTC: filters on %s are written "
                                 "in its own time; records and bookmarks stay in UTC", self.label,
                                 _offset_text(self._offset_read), self.replication_key)
        return self._offset_read

    def _company_filter(self, entity: EntitySetInfo) -> str | None:
        companies = self.config.get("companies")
        if not companies or "Company" not in entity.properties:
            return None
        return odata.any_of("Company", companies, entity.edm_type("Company"))

    @staticmethod
    def _order(entity: EntitySetInfo, replication_key: str | None) -> list[tuple[str, str]]:
        fields = ([replication_key] if replication_key else []) + [k for k in entity.keys if k != replication_key]
        if not entity.keys:
            return []
        return [(f, entity.edm_type(f)) for f in fields]

    def _increment_stream_state(self, latest_record: Record, *, context: Context | None = None) -> None:
        # The look-back window re-reads records older than the bookmark; they must not move it backwards.
        if self.replication_key:
            current = self.get_context_state(context).get("replication_key_value")
            value = latest_record.get(self.replication_key)
            if self._bookmark_is_timestamp and current:
                current = odata.normalize_utc(current)
            if current and value and value < current:
                return
        super()._increment_stream_state(latest_record, context=context)


def _tidy(row: dict) -> None:
    etag = row.pop("@odata.etag", None)
    if etag is not None:
        row["etag"] = etag
    for name in [n for n in row if "@odata." in n]:
        del row[name]


def _offset_text(offset: dt.timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _timestamp_fields(entity: EntitySetInfo) -> tuple[str, ...]:
    return tuple(name for name in entity.properties if entity.edm_type(name) == "Edm.DateTimeOffset")


def _in_utc(row: dict, fields: tuple[str, ...]) -> None:
    for name in fields:
        value = row.get(name)
        if value:
            row[name] = odata.normalize_utc(value)


def _batches_by_keys(parents: list[dict], keys: list[str], types: dict[str, str]) -> Iterator[tuple[list[dict], str]]:
    """The parents in batches, each with the filter that matches their lines: an `or` of key conditions, bounded in
    parents and in length."""
    batch: list[dict] = []
    conditions: list[str] = []
    length = 0
    for parent in parents:
        condition = odata.conjunction(*(f"{k} eq {odata.literal(parent[k], types[k])}" for k in keys))
        if batch and (len(batch) >= _HEADERS_PER_LINE_REQUEST or length + len(condition) > _LINE_FILTER_MAX_CHARS):
            yield batch, _any(conditions)
            batch, conditions, length = [], [], 0
        batch.append(parent)
        conditions.append(condition)
        length += len(condition) + 4
    if batch:
        yield batch, _any(conditions)


def _any(conditions: list[str]) -> str:
    if len(conditions) == 1:
        return conditions[0]
    return "(" + " or ".join(f"({c})" for c in conditions) + ")"


def _is_expand_refusal(response: requests.Response) -> bool:
    """IFS refuses to expand a collection on some sets: 501, or ODP_NOT_IMPLEMENTED under any status, or a 400 whose
    message names $expand. (The 500 of the element limit is told apart before this is asked.)"""
    if response.status_code == 501:
        return True
    try:
        error = odata.odata_error(response.json())
    except ValueError:
        return False
    parts = [error] + [d for d in error.get("details") or [] if isinstance(d, dict)]
    if any(str(part.get("code", "")).upper() == "ODP_NOT_IMPLEMENTED" for part in parts):
        return True
    return response.status_code == 400 and any("$expand" in str(part.get("message", "")) for part in parts)


def _is_element_limit(response: requests.Response) -> bool:
    try:
        error = odata.odata_error(response.json())
    except ValueError:
        error = {}
    text = f"{error.get('code', '')} {error.get('message', '')}".lower()
    return "limit" in text and ("element" in text or "5000" in text or "5,000" in text)
