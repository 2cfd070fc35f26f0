"""databricks-sdk's workspace client, authenticated with a personal access token or a service principal (M2M OAuth),
for target-databricks-check's read-only lookups (the current user, warehouses, jobs); loads and job runs go through
workspace_api. And opening sealed settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.redaction import register_secret
from ml_connector_core.secrets import SecretKeyError, unseal

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


def workspace_client(config: Mapping, **sdk_options) -> WorkspaceClient:
    """``sdk_options`` go to the SDK's Config as they are, e.g. ``retry_timeout_seconds`` for a quicker answer."""
    from databricks.sdk import WorkspaceClient  # the SDK takes seconds to import: only when needed
    from databricks.sdk.config import Config

    host = workspace_host(config)
    if config.get("token"):
        token = unsealed_setting(config["token"], "token")
        register_secret(token)
        return WorkspaceClient(config=Config(host=host, token=token, auth_type="pat", **sdk_options))
    if config.get("client_id") and config.get("client_secret"):
        secret = unsealed_setting(config["client_secret"], "client_secret")
        register_secret(secret)
        # The SDK's M2M flow fetches and refreshes tokens itself.
        return WorkspaceClient(config=Config(host=host, client_id=config["client_id"], client_secret=secret,
                                             auth_type="oauth-m2m", **sdk_options))
    raise missing_credentials()


def workspace_host(config: Mapping) -> str:
    host = config.get("workspace_host")
    if not host:
        raise ConfigValidationError("workspace_host is needed for the warehouse load path and for job runs",
                                    errors=["workspace_host"])
    return host


def missing_credentials() -> ConfigValidationError:
    return ConfigValidationError("set token, or client_id and client_secret, to reach the Databricks workspace",
                                 errors=["token", "client_id", "client_secret"])


def unsealed_setting(value: str, setting_name: str, *, warn_if_plain: bool = True) -> str:
    """The plaintext of a setting that may be sealed; a key that does not open it is a configuration error, which
    singer-sdk reports in one line, not an exception with a traceback."""
    try:
        return unseal(value, setting_name=setting_name, warn_if_plain=warn_if_plain)
    except SecretKeyError as exc:
        raise ConfigValidationError(str(exc), errors=[str(exc)]) from None
