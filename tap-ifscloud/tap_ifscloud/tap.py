"""tap-ifscloud: IFS Cloud OData v4 projections as Singer streams."""

from __future__ import annotations

from functools import cached_property

import requests
from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import StateMessage

from ml_connector_core import ifs_odata
from ml_connector_core.http import RequestBudget, shared_budget
from ml_connector_core.ifs_metadata import MetadataError, ServiceMetadata, parse_metadata
from ml_connector_core.oauth import ClientCredentialsAuth
from ml_connector_core.secrets import SecretKeyError, unseal
from ml_connector_core.tap_cli import ConfigErrorsInOneLine
from tap_ifscloud.client import IfsEntityStream
from tap_ifscloud.streams import StreamConfigError, configured_streams

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
        th.Property("realm", th.StringType, required=True,
                    description="IFS IAM realm (namespace) of the tenant; not derived from the host name."),
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
        th.Property("max_elements_per_response", th.IntegerType, default=5000,
                    description="IFS's limit on rows plus expanded rows in one response; pages with lines are split to stay under it."),
        th.Property("requests_per_minute", th.IntegerType, default=900,
                    description="Client-side request budget per tenant, shared by all streams (IFS allows about 1,000)."),
        th.Property("token_refresh_margin_seconds", th.IntegerType, default=30,
                    description="Fetch a new token this long before the current one expires."),
        th.Property("request_timeout_seconds", th.IntegerType, default=120, description="Timeout of one HTTP request."),
        th.Property("max_tries", th.IntegerType, default=8,
                    description="Attempts per request on 429, 5xx, 401 and connection errors before the sync fails."),
        th.Property("stream_overrides", th.ObjectType(additional_properties=STREAM_OVERRIDE),
                    description="Per built-in stream: projection, entity_set, replication_key or expand to use on this tenant."),
        th.Property("custom_streams", th.ArrayType(th.ObjectType(
            th.Property("name", th.StringType, required=True),
            th.Property("projection", th.StringType, required=True),
            th.Property("entity_set", th.StringType, required=True),
            th.Property("replication_key", th.StringType),
            th.Property("expand", th.StringType),
            th.Property("paging", th.StringType, allowed_values=["seek", "server"]),
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
        )

    @cached_property
    def request_budget(self) -> RequestBudget:
        return shared_budget(self.host_url, int(self.config["requests_per_minute"]))

    @cached_property
    def _http(self) -> requests.Session:
        session = requests.Session()
        session.auth = self.authenticator
        return session

    def service_metadata(self, projection: str) -> ServiceMetadata:
        cache = self.__dict__.setdefault("_metadata_cache", {})
        if projection not in cache:
            url = f"{self.service_root}/{projection}.svc/$metadata"
            self.request_budget.acquire()
            response = self._http.get(url, timeout=int(self.config["request_timeout_seconds"]))
            if response.status_code == 401:
                self.authenticator.invalidate()
                self.request_budget.acquire()
                response = self._http.get(url, timeout=int(self.config["request_timeout_seconds"]))
            if response.status_code != 200:
                raise MetadataError(
                    f"cannot read $metadata of {projection}.svc: HTTP {response.status_code} {response.text[:200]}"
                )
            cache[projection] = parse_metadata(response.content, f"{projection}.svc")
        return cache[projection]

    def sync_all(self) -> None:
        super().sync_all()
        # The SDK writes STATE only when it changed, so a run whose last records were look-back re-reads would end on
        # a RECORD; targets that keep only a STATE seen after the last record would then save nothing. End on STATE.
        self.write_message(StateMessage(value=self.state))

    def discover_streams(self) -> list[IfsEntityStream]:
        try:
            definitions = configured_streams(self.config.get("stream_overrides"), self.config.get("custom_streams"))
        except StreamConfigError as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
        streams = []
        for definition in definitions:
            metadata = self.service_metadata(definition.projection)
            entity = metadata.entity_set(definition.entity_set, f"{definition.projection}.svc")
            expanded = None
            if definition.expand:
                navigation = entity.navigations.get(definition.expand)
                if navigation is None or not navigation.is_collection or not navigation.target_entity_set:
                    raise MetadataError(
                        f"stream '{definition.name}': {definition.entity_set} has no collection navigation "
                        f"'{definition.expand}' bound to an entity set"
                    )
                expanded = metadata.entity_set(navigation.target_entity_set, f"{definition.projection}.svc")
            streams.append(IfsEntityStream(self, definition, entity, expanded))
        return streams


def _setting(name: str) -> str:
    """A setting as a user sets it: its name and the environment variable Meltano and `--config ENV` read it from."""
    return f"{name} (TAP_IFSCLOUD_{name.upper()})"


if __name__ == "__main__":
    TapIfsCloud.cli()
