"""The settings that name a Databricks workspace and its credentials, and opening sealed ones (the REST calls
themselves: workspace_api)."""

from __future__ import annotations

from collections.abc import Mapping

from singer_sdk.exceptions import ConfigValidationError

from ml_connector_core.secrets import SecretKeyError, unseal


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
