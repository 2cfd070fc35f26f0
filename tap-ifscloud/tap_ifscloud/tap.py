"""tap-ifscloud: IFS Cloud OData v4 projections as Singer streams."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import cached_property

import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import StateMessage

from ml_connector_core import ifs_odata
from ml_connector_core.check import setting_ref
from ml_connector_core.http import RETRIABLE_STATUS, RequestBudget, shared_budget, with_retries
from ml_connector_core.ifs_metadata import MetadataError, ServiceMetadata, parse_metadata
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.secrets import SecretKeyError, unseal
from ml_connector_core.tap_cli import ConfigErrorsInOneLine, state_interval_property
from ml_connector_core.tls import ca_bundle_property, new_session
from tap_ifscloud.client import IfsEntityStream
from tap_ifscloud.discovery import ProjectionUnreadable, StreamAssessment, assess
from tap_ifscloud.streams import (
    BUILT_IN_STREAMS,
    OfferedStream,
    SelectRules,
    StreamConfigError,
    offered_streams,
    reference_order,
)

STREAM_OVERRIDE = th.ObjectType(
    th.Property("projection", th.StringType, description="Projection service name, e.g. PurchaseOrderHandling."),
    th.Property("entity_set", th.StringType, description="Entity set within the projection."),
    th.Property("replication_key", th.StringType, description="Change timestamp column; empty for full-table reads."),
    th.Property("expand", th.StringType, description="Collection navigation embedded in each record; empty for none."),
    th.Property("paging", th.StringType, allowed_values=["seek", "server"],
                description="seek (default): page past the last row read; server: follow @odata.nextLink, else $top/$skip."),
)


class TapIfsCloud(ConfigErrorsInOneLine, Tap):
    """Reads IFS Cloud projections incrementally: OAuth2 client credentials, seek paging, exact decimals."""

    name = "tap-ifscloud"
    message_writer_class = MsgSpecWriter

    config_jsonschema = th.PropertiesList(
        th.Property("base_url", th.StringType, title="Base URL",
                    description="The IFS Cloud host, e.g. https://acme.ifs.cloud or a customer-managed https://erp.example.com:8080. "
                                "Takes precedence over tenant."),
        th.Property("tenant", th.StringType, description="Tenant name, giving https://<tenant>.ifs.cloud when base_url is not set."),
        th.Property("realm", th.StringType,
                    description="IFS IAM realm (namespace) of the tenant; not derived from the host name. Needed unless "
                                "token_url is set."),
        th.Property("client_id", th.StringType, required=True, description="OAuth2 client id of the IFS service user."),
        th.Property("client_secret", th.StringType, required=True, secret=True,
                    description="OAuth2 client secret; plain or sealed (sealed:v1:..., opened with MLC_SECRET_KEY)."),
        th.Property("token_url", th.StringType,
                    description="Token endpoint; default <base_url>/auth/realms/<realm>/protocol/openid-connect/token."),
        th.Property("scope", th.StringType, default="openid microprofile-jwt", description="OAuth2 scope requested."),
        th.Property("api_path", th.StringType, default=ifs_odata.DEFAULT_API_PATH,
                    description="Path of the projection services under the host (use /int/... for integration endpoints)."),
        th.Property("companies", th.ArrayType(th.StringType),
                    description="Only records of these companies (sets that have a Company field); empty for all allowed."),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest change timestamp to read on the first run (UTC); empty reads all history."),
        th.Property("lookback_seconds", th.IntegerType, default=300,
                    description="Re-read this many seconds before the bookmark, for rows sharing a timestamp or committed late."),
        th.Property("page_size", th.IntegerType, default=1000, description="Rows asked for per request ($top)."),
        state_interval_property("100 for target-jira and target-jaggaer, 200 target-salesforce, 20000 "
                                "target-databricks"),
        th.Property("max_elements_per_response", th.IntegerType, default=5000,
                    description="IFS's limit on rows plus expanded rows in one response; pages with lines are split to stay under it."),
        th.Property("requests_per_minute", th.IntegerType, default=900,
                    description="Client-side request budget per tenant, shared by all streams (IFS allows about 1,000)."),
        th.Property("token_refresh_margin_seconds", th.IntegerType, default=30,
                    description="Fetch a new token this long before the current one expires."),
        th.Property("request_timeout_seconds", th.IntegerType, default=120, description="Timeout of one HTTP request."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per request on 429, 5xx, 401 and connection errors before the sync fails."),
        ca_bundle_property(),
        th.Property("built_in_streams", th.ArrayType(th.StringType), title="Built-in streams",
                    description="The built-in streams to offer, e.g. [\"purchase_orders\", \"suppliers\"]. Not set: "
                                f"every one ({', '.join(d.name for d in BUILT_IN_STREAMS)}) whose projection the "
                                "service user can read, each left out with a warning otherwise. Set: exactly these, "
                                "and one that cannot be read is an error."),
        th.Property("stream_overrides", th.ObjectType(additional_properties=STREAM_OVERRIDE),
                    description="Per built-in stream: projection, entity_set, replication_key or expand to use on this tenant."),
        th.Property("custom_streams", th.ArrayType(th.ObjectType(
            th.Property("name", th.StringType, required=True),
            th.Property("projection", th.StringType, required=True),
            th.Property("entity_set", th.StringType, required=True),
            th.Property("replication_key", th.StringType),
            th.Property("expand", th.StringType),
            th.Property("paging", th.StringType, allowed_values=["seek", "server"]),
            th.Property("references", th.ArrayType(th.StringType),
                        description="Streams whose records this stream's records reference: they are read first."),
        )), description="More entity sets to read; their schema and keys come from $metadata."),
    ).to_dict()

    @cached_property
    def host_url(self) -> str:
        host = ifs_odata.host_url(self.config.get("base_url"), self.config.get("tenant"))
        if not host:
            problem = f"tap-ifscloud needs {_setting('base_url')} or {_setting('tenant')}"
            raise ConfigValidationError(problem, errors=[problem])
        return host

    @cached_property
    def service_root(self) -> str:
        return ifs_odata.service_root(self.host_url, self.config["api_path"])

    @cached_property
    def authenticator(self) -> ClientCredentialsAuth:
        # --discover runs without the SDK's config validation: name what is missing instead of a KeyError
        missing = [_setting(name) for name in ("client_id", "client_secret") if not self.config.get(name)]
        if not (self.config.get("token_url") or self.config.get("realm")):
            missing.append(f"{_setting('realm')} or {_setting('token_url')}")
        if missing:
            problem = f"tap-ifscloud needs {', '.join(missing)} to get a token from IFS"
            raise ConfigValidationError(problem, errors=[problem])
        try:
            secret = unseal(self.config["client_secret"], setting_name="client_secret")
        except SecretKeyError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        token_url = self.config.get("token_url") or ifs_odata.token_url(self.host_url, self.config["realm"])
        return ClientCredentialsAuth(
            token_url,
            self.config["client_id"],
            secret,
            scope=self.config.get("scope"),
            refresh_margin_seconds=float(self.config["token_refresh_margin_seconds"]),
            timeout_seconds=float(self.config["request_timeout_seconds"]),
            session=new_session(self.config),
        )

    @cached_property
    def request_budget(self) -> RequestBudget:
        return shared_budget(self.host_url, int(self.config["requests_per_minute"]))

    @cached_property
    def _http(self) -> requests.Session:
        session = new_session(self.config)
        session.auth = self.authenticator
        return session

    def service_metadata(self, projection: str) -> ServiceMetadata:
        """The projection's $metadata, read once per run; :class:`ProjectionUnreadable` for a 403 or 404."""
        cache = self.__dict__.setdefault("_metadata_cache", {})
        if projection not in cache:
            try:
                cache[projection] = self._read_metadata(projection)
            except ProjectionUnreadable as exc:
                cache[projection] = exc  # a definite answer: the next stream of the projection is told the same
        found = cache[projection]
        if isinstance(found, ProjectionUnreadable):
            raise found
        return found

    def _read_metadata(self, projection: str) -> ServiceMetadata:
        url = f"{self.service_root}/{projection}.svc/$metadata"
        label = f"{projection}.svc/$metadata"
        max_tries = int(self.config["max_tries"])
        token_renewed = False

        def read_once() -> ServiceMetadata:
            nonlocal token_renewed
            self.request_budget.acquire()
            response = self._http.get(url, headers={"Accept": "application/xml"},
                                      timeout=int(self.config["request_timeout_seconds"]))
            status = response.status_code
            if status == 401:
                if token_renewed:
                    raise MetadataError(f"cannot read {label}: HTTP 401 even with a new token: "
                                        f"{ifs_odata.error_message(response)}")
                token_renewed = True
                self.authenticator.invalidate()
                raise _MetadataNotYet("HTTP 401, fetching a new token", response, retry_immediately=True)
            if status in (403, 404):
                raise ProjectionUnreadable(projection, status, _what_ifs_said(response))
            if status in RETRIABLE_STATUS:
                raise _MetadataNotYet(f"HTTP {status} {ifs_odata.error_message(response)}", response)
            if status != 200:
                raise MetadataError(f"cannot read {label}: HTTP {status} {ifs_odata.error_message(response)}")
            try:
                return parse_metadata(response.content, f"{projection}.svc")
            except MetadataError as exc:  # a cut-off document reads as invalid XML: ask again
                raise _MetadataNotYet(str(exc), response) from None

        retried = with_retries(read_once, (_MetadataNotYet, *_CONNECTION_ERRORS), max_tries=max_tries, log=self.logger)
        try:
            return retried()
        except _MetadataNotYet as exc:
            raise MetadataError(f"cannot read {label}: {exc} (still after {max_tries} tries)") from None
        except _CONNECTION_ERRORS as exc:
            raise MetadataError(f"cannot read {label}: {type(exc).__name__} (still after {max_tries} tries)") from None

    def sync_all(self) -> None:
        super().sync_all()
        # The SDK writes STATE only when it changed, so a run whose last records were look-back re-reads would end on
        # a RECORD; targets that keep only a STATE seen after the last record would then save nothing. End on STATE.
        self.write_message(StateMessage(value=self.state))

    def offered_streams(self) -> list[OfferedStream]:
        """The streams this configuration offers; with an input catalog, only those it selects (each then named by
        the user: selected in the catalog)."""
        try:
            offered = offered_streams(self.config.get("built_in_streams"), self.config.get("stream_overrides"),
                                      self.config.get("custom_streams"))
        except StreamConfigError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        catalog = self.input_catalog
        if catalog is None:
            rules = SelectRules.from_environment(os.environ)
            return [replace(o, named_in="select (meltano.yml)") if o.named_in is None and rules.names(o.name) else o
                    for o in offered]
        selected = {entry.tap_stream_id for entry in catalog.streams
                    if entry.metadata.resolve_selection().get((), True)}
        not_offered = sorted(selected - {o.name for o in offered})
        if not_offered:
            self.logger.warning("Stream(s) %s selected in the catalog but not offered by this configuration "
                                "(built_in_streams, custom_streams): not read", ", ".join(not_offered))
        # Streams the catalog does not select are not read, so their $metadata is not either.
        return [replace(o, named_in=o.named_in or "the catalog") for o in offered if o.name in selected]

    def assess_streams(self) -> list[StreamAssessment]:
        """Each offered stream with its entity set from $metadata, or why it cannot be read."""
        return [assess(offered, self.service_metadata) for offered in self.offered_streams()]

    def load_streams(self) -> list[IfsEntityStream]:
        """The streams in reference order (``StreamDefinition.references``: suppliers, then purchase orders, then
        their lines), not by name as singer-sdk sorts them: records reach a target parents first."""
        streams = {stream.name: stream for stream in super().load_streams()}
        order = reference_order(list(streams), {name: s.definition.references for name, s in streams.items()})
        return [streams[name] for name in order]

    def discover_streams(self) -> list[IfsEntityStream]:
        assessments = self.assess_streams()
        errors = [a.error_text() for a in assessments if a.is_error]
        if errors:
            raise ConfigValidationError(errors[0] if len(errors) == 1 else f"{len(errors)} streams cannot be read",
                                        errors=errors)
        streams = []
        for assessment in assessments:
            if not assessment.readable:
                self.logger.warning(assessment.warning_text())
                continue
            if assessment.note:
                self.logger.warning(assessment.note)
            streams.append(IfsEntityStream(self, assessment.definition, assessment.entity, assessment.lines))
        if assessments and not streams:
            problem = (f"None of the {len(assessments)} streams offered can be read (each is named above): check "
                       f"{_setting('base_url')}, {_setting('api_path')} (/int/ifsapplications/projection/v1 for "
                       "integration endpoints) and the service user's permission sets")
            raise ConfigValidationError(problem, errors=[problem])
        return streams


class _MetadataNotYet(Exception):
    """A $metadata answer worth asking again: 429, 5xx, a cut-off document, or a 401 (once, with a new token)."""

    def __init__(self, message: str, response: requests.Response, *, retry_immediately: bool = False) -> None:
        super().__init__(message)
        self.response = response  # its Retry-After paces the next try
        self.retry_immediately = retry_immediately


def _what_ifs_said(response: requests.Response) -> str:
    """The OData error's code and message, without its details (which IFS often fills with the same words)."""
    try:
        error = ifs_odata.odata_error(response.json())
    except ValueError:
        error = {}
    said = f"{error.get('code', '')} {error.get('message', '')}".strip()
    return said or ifs_odata.error_message(response)[:200]


_CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                      requests.exceptions.ContentDecodingError)


def _setting(name: str) -> str:
    """A setting as a user sets it: its name and the environment variable Meltano and `--config ENV` read it from."""
    return setting_ref(TapIfsCloud.name, name)


if __name__ == "__main__":
    TapIfsCloud.cli()
