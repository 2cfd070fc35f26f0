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
from tap_ifscloud.streams import StreamDefinition

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record

    from tap_ifscloud.tap import TapIfsCloud

_json_decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
# Share of the element limit a page aims at, leaving room for orders that are larger than the average so far.
_ELEMENT_TARGET = 0.8


class ElementLimitExceeded(Exception):
    """IFS refused a response that would carry more elements than it allows."""


class Unauthorized(RetriableAPIError):
    """A 401: the token was rejected, so the next try fetches a new one at once."""

    retry_immediately = True


class IfsEntityStream(RESTStream):
    """One IFS entity set as a Singer stream; its schema and keys come from the projection's $metadata."""

    is_sorted = True
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
        self.expanded = expanded
        schema = entity_schema(entity)
        if expanded is not None:
            schema["properties"][definition.expand] = {"type": ["array", "null"], "items": entity_schema(expanded)}
        super().__init__(tap, name=definition.name, schema=schema, path=definition.path)
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
        self._element_limit = int(self.config["max_elements_per_response"])
        self._parents_read = 0
        self._children_read = 0
        self._undeclared_seen: set[str] = set()

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
            return self._get_rows(odata.with_query(self.url_base + path, {**options, "$top": self._page_size}), context)

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

    def _read_expanded_page(self, path, options, expand, context) -> list[dict]:
        """One page of parents with their lines, split until it fits under the element limit."""
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
                return self._read_oversized_parent(path, options, expand, context)
            self._parents_read += len(rows)
            self._children_read += sum(len(row.get(expand) or ()) for row in rows)
            return rows

    def _expanded_page_size(self) -> int:
        if not self._parents_read:
            return self._page_size
        elements_per_parent = 1 + self._children_read / self._parents_read
        return max(1, min(self._page_size, int(self._element_limit * _ELEMENT_TARGET / elements_per_parent)))

    def _read_oversized_parent(self, path, options, expand, context) -> list[dict]:
        """A single parent with more lines than one response may carry: read it alone, then its lines in pages."""
        rows = self._get_rows(odata.with_query(self.url_base + path, {**options, "$top": 1}), context)
        if not rows:
            return rows
        parent = rows[0]
        navigation = self.entity.navigations[expand]
        child = self.expanded
        if child is None or not navigation.target_entity_set:
            raise FatalAPIError(f"{self.label}: cannot read {expand} of an oversized record: no entity set is bound to it")
        parent_keys = [k for k in self.entity.keys if k in child.properties]
        child_filter = odata.conjunction(
            *(f"{k} eq {odata.literal(parent[k], child.edm_type(k))}" for k in parent_keys)
        )
        child_path = f"/{self.definition.projection}.svc/{navigation.target_entity_set}"
        self.logger.info("%s: record %s has more lines than one response allows; reading them from %s",
                         self.label, {k: parent[k] for k in self.entity.keys}, navigation.target_entity_set)
        parent[expand] = list(self._read_seeking(child_path, child_filter, self._order(child, None), None, context))
        return rows

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
        rows_inside = row.get(self.definition.expand) if self.definition.expand else None
        if rows_inside:
            for child in rows_inside:
                _tidy(child)
        if self._bookmark_is_timestamp and row.get(self.replication_key):
            row[self.replication_key] = odata.normalize_utc(row[self.replication_key])
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
        if self._bookmark_is_timestamp:
            return f"{self.replication_key} ge {odata.datetime_literal(start)}"
        return f"{self.replication_key} ge {start.date().isoformat()}"  # an Edm.Date change column

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


def _is_element_limit(response: requests.Response) -> bool:
    try:
        error = odata.odata_error(response.json())
    except ValueError:
        error = {}
    text = f"{error.get('code', '')} {error.get('message', '')}".lower()
    return "limit" in text and ("element" in text or "5000" in text or "5,000" in text)
