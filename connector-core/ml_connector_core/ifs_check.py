"""What both IFS plugins' fit checks (tap-ifscloud-check, target-ifscloud-check) ask first: a token from IFS IAM."""

from __future__ import annotations

from collections.abc import Callable

from ml_connector_core.check import CheckResult, failed, passed
from ml_connector_core.http import shown_url
from ml_connector_core.oauth import ClientCredentialsAuth, TokenRequestError

SYSTEM = "IFS Cloud"


def setting_namer(plugin_name: str) -> Callable[[str], str]:
    """``name`` → ``name (TAP_IFSCLOUD_NAME)``: a setting as the plugin's users set it, in a file or the environment.
    A path into a setting (``stream_overrides.vouchers.projection``) names the variable of the setting it is in."""
    return lambda name: f"{name} ({env_var(plugin_name, name)})"


def env_var(plugin_name: str, name: str) -> str:
    top = name.split(".", 1)[0].split("[", 1)[0]
    return f"{plugin_name.upper().replace('-', '_')}_{top.upper()}"


def token_result(auth: ClientCredentialsAuth, setting: Callable[[str], str]) -> CheckResult:
    """A token for the configured client, with its lifetime; or why IFS IAM gave none and the setting to change.
    ``setting(name)`` names a setting as its plugin's users set it (with its environment variable)."""
    try:
        auth.access_token()
    except TokenRequestError as exc:
        return failed(SYSTEM, "token", str(exc), _token_fix(exc, setting))
    lifetime = f", valid for {auth.token_lifetime:.0f} s" if auth.token_lifetime else ""
    return passed(SYSTEM, "token", f"obtained for client '{auth.client_id}' from {shown_url(auth.token_url)}{lifetime}")


def _token_fix(exc: TokenRequestError, setting: Callable[[str], str]) -> str:
    text = str(exc)
    if exc.status == 404:  # Keycloak: "Realm does not exist"
        return f"set {setting('realm')} to the tenant's IAM realm (or {setting('token_url')})"
    if exc.status == 401 or "invalid_client" in text:
        return (f"set {setting('client_secret')} to the secret of the IFS service user's IAM client "
                f"(and {setting('client_id')} to its client id)")
    if "invalid_scope" in text:
        return f"set {setting('scope')} to scopes the IAM client may ask for (IFS: openid microprofile-jwt)"
    if exc.status == 400:
        return "let the IAM client use the client credentials grant (a service account client in IFS IAM)"
    if exc.status is None:
        return f"set {setting('base_url')} (or {setting('token_url')}) to a host that answers"
    return "IFS IAM kept failing: run the check again later; if it persists, ask the tenant's administrator"
