"""tap-sfdc: Salesforce objects through the REST query API (SOQL), incremental on SystemModstamp, with OAuth 2.0
client credentials (the registry's tap-salesforce needs a refresh token and the Bulk API)."""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from functools import cached_property

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.singerlib import StateMessage

from ml_connector_core.salesforce import (
    SalesforceClient,
    SalesforceConfigError,
    SalesforceError,
    client_from_config,
    connection_properties,
)
from ml_connector_core.secrets import SecretKeyError
from ml_connector_core.tap_cli import ConfigErrorsInOneLine, state_interval_property
from tap_sfdc.streams import REPLICATION_KEY, FieldError, SObjectStream, object_schema

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

OBJECT_SPEC = th.ObjectType(
    th.Property("fields", th.ArrayType(th.StringType), required=True,
                description="Fields to read, e.g. [\"Id\", \"Name\", \"IFS_Customer_Id__c\", \"BillingCountry\"]; Id and "
                            "SystemModstamp are always read."),
    th.Property("where", th.StringType,
                description="SOQL condition choosing the rows, e.g. \"IFS_Customer_Id__c != null\"."),
    th.Property("stream_name", th.StringType, description="Stream name (default: the object name in lower case)."),
)


class TapSfdc(ConfigErrorsInOneLine, Tap):
    """Reads Salesforce objects changed since the last run, with the fields named in the settings."""

    name = "tap-sfdc"

    config_jsonschema = th.PropertiesList(
        state_interval_property("target-ifscloud writes one record at a time"),
        *connection_properties("reads as"),
        th.Property("objects", th.ObjectType(additional_properties=OBJECT_SPEC), required=True,
                    description="Object → {fields, where, stream_name}, e.g. {\"Account\": {\"fields\": [\"Id\", \"Name\", "
                                "\"IFS_Customer_Id__c\"], \"where\": \"IFS_Customer_Id__c != null\"}}."),
        th.Property("start_date", th.DateTimeType,
                    description="Earliest SystemModstamp read on the first run (UTC); empty reads every row."),
    ).to_dict()

    @cached_property
    def client(self) -> SalesforceClient:
        try:
            return client_from_config(self.config)
        except (SalesforceConfigError, SecretKeyError) as exc:
            raise ConfigValidationError(str(exc), errors=[str(exc)]) from None

    def discover_streams(self) -> list[SObjectStream]:
        streams = []
        for read in object_reads(self.config):
            try:
                schema = object_schema(read.sobject, self.client.describe(read.sobject), read.fields)
            except (FieldError, SalesforceError) as exc:
                _refuse(str(exc))
            streams.append(SObjectStream(self, read.stream_name, read.sobject, read.fields, read.where, schema))
        return streams

    def sync_all(self) -> None:
        super().sync_all()
        # End on STATE even when every row read was one already emitted at the bookmark.
        self.write_message(StateMessage(value=self.state))


@dataclass(frozen=True)
class ObjectRead:
    """One object of the objects setting, as its stream reads it."""

    sobject: str
    stream_name: str
    fields: list[str]  # Id and SystemModstamp included
    where: str | None


def object_reads(config: t.Mapping[str, t.Any]) -> list[ObjectRead]:
    """The objects setting, checked: object and field names, a where without ORDER BY or LIMIT, one object per
    stream name."""
    objects = config.get("objects") or {}
    if not objects:
        _refuse("objects is empty: name the Salesforce objects to read and their fields")
    reads, names = [], set()
    for sobject, spec in objects.items():
        if not _NAME.match(sobject):
            _refuse(f"objects: '{sobject}' is not a Salesforce object name")
        fields = list(dict.fromkeys(["Id", *(spec.get("fields") or []), REPLICATION_KEY]))
        bad = [f for f in fields if not _NAME.match(f)]
        if bad:
            _refuse(f"objects.{sobject}.fields: {', '.join(bad)} are not field names of {sobject} (parent fields "
                    "such as Account.Name are not read)")
        if re.search(r"\border\s+by\b|\blimit\b", spec.get("where") or "", re.IGNORECASE):
            _refuse(f"objects.{sobject}.where must be a condition only (no ORDER BY or LIMIT): the tap orders by "
                    "SystemModstamp itself")
        name = spec.get("stream_name") or sobject.lower()
        if name in names:
            _refuse(f"objects: two objects are read into the stream '{name}'")
        names.add(name)
        reads.append(ObjectRead(sobject, name, fields, spec.get("where")))
    return reads


def _refuse(message: str) -> t.NoReturn:
    raise ConfigValidationError(message, errors=[message])


if __name__ == "__main__":
    TapSfdc.cli()
