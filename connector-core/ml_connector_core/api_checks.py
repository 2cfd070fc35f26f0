"""The read-only connection checks the REST plugins share: Jira (site, credentials), Salesforce (token, API version,
limits) and JAGGAER (token). Each builds the plugin's client from its settings exactly as a run does, so what passes
here is what the run will use; the plugin's own checks (projects, objects, endpoints) go on with the client returned.

Each function returns ``(client, results)``; the client is None when nothing further can be checked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml_connector_core.check import CheckResult, failed, passed, setting_ref, warned
from ml_connector_core.oauth import TokenRequestError
from ml_connector_core.secrets import KEY_ENV, KEY_FILE_ENV, SecretKeyError

SECRET_KEY_FIX = f"{KEY_ENV} or {KEY_FILE_ENV}: the key the sealed settings were sealed with"


def _token_lifetime(auth: Any) -> str:
    lifetime = getattr(auth, "token_lifetime", None)
    return f"valid {lifetime:.0f} s" if lifetime else "no lifetime announced: kept until refused"


# --- Jira ---

JIRA = "Jira"
_JIRA_OAUTH_KEYS = ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")


def jira_uses_oauth(config: Mapping[str, Any]) -> bool:
    return any(config.get(k) for k in _JIRA_OAUTH_KEYS)


def _unwritable_refresh_token_file(config: Mapping[str, Any]) -> str | None:
    """Why the rotated refresh token could not be kept, or None. A check that rotates the token without keeping the
    new one would leave the configured one to expire: then it must not ask for a token at all."""
    if not config.get("oauth_refresh_token_file"):
        return ("not checked: asking for an access token rotates the OAuth refresh token (Atlassian refuses the old one "
                "after a short reuse interval), and without oauth_refresh_token_file the new one would be lost, so "
                "the check asked for none; a run would keep working only until the configured token expires")
    path = Path(str(config["oauth_refresh_token_file"])).expanduser()
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not os.access(directory, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return (f"not checked: oauth_refresh_token_file {path} cannot be written, so the refresh token rotated by "
                "asking for an access token would be lost; the check asked for none")
    return None


def _jira_config_fix(plugin: str, message: str) -> str:
    if message.startswith("Jira credentials are missing"):  # neither way configured: Basic is the usual one
        return (setting_ref(plugin, "api_token") + " with " + setting_ref(plugin, "email")
                + ": the Atlassian account and its API token (or the three oauth_* settings for OAuth 2.0)")
    for name in ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token"):
        if name in message:
            return setting_ref(plugin, name)
    if "api_token" in message:
        return setting_ref(plugin, "api_token") + " with email: the Atlassian account and its API token"
    return setting_ref(plugin, "base_url") + ": the Jira Cloud site (with OAuth: one the app may use)"


def _jira_auth_fix(plugin: str, config: Mapping[str, Any], message: str, status: int | None) -> str:
    if jira_uses_oauth(config):
        if "invalid_grant" in message:
            return (setting_ref(plugin, "oauth_refresh_token") + ": a new refresh token (authorize the app again); "
                    "keep oauth_refresh_token_file")
        if "token endpoint" in message and "cannot reach" in message:
            return setting_ref(plugin, "oauth_token_url")
        if "token endpoint" in message:
            return setting_ref(plugin, "oauth_client_secret") + f" of OAuth app '{config.get('oauth_client_id')}'"
    if status == 403:
        return (f"give the Atlassian account {config.get('email') or 'of the OAuth app'} access to Jira on this site "
                "(product access and the Browse projects permission)")
    return setting_ref(plugin, "api_token") + f": an API token of {config.get('email')}"


def jira_connection(plugin: str, config: Mapping[str, Any]) -> tuple[Any, list[CheckResult]]:
    """Site reachable and the credentials accepted (GET /myself). With OAuth the refresh token is used, and rotated,
    only when the newest one can be kept in oauth_refresh_token_file, exactly as a run keeps it."""
    from ml_connector_core.jira import JiraAuthError, JiraConfigError, JiraError, client_from_config

    oauth = jira_uses_oauth(config)
    if oauth:
        problem = _unwritable_refresh_token_file(config)
        if problem:
            return None, [failed(JIRA, "credentials", problem,
                                 setting_ref(plugin, "oauth_refresh_token_file") + ": a file the plugin may write")]
    site = str(config.get("base_url") or "").rstrip("/")
    try:
        client = client_from_config(config)  # with OAuth, the first token and the cloud id are fetched here
        me = client.myself()
    except JiraConfigError as exc:
        return None, [failed(JIRA, "configuration", str(exc), _jira_config_fix(plugin, str(exc)))]
    except SecretKeyError as exc:
        return None, [failed(JIRA, "sealed settings", str(exc), SECRET_KEY_FIX)]
    except JiraAuthError as exc:
        results = []
        if exc.status in (401, 403) and "token endpoint" not in str(exc):  # the site answered; it refused who asked
            results.append(passed(JIRA, "site", f"{site} answers"))
        results.append(failed(JIRA, "credentials", str(exc), _jira_auth_fix(plugin, config, str(exc), exc.status)))
        return None, results
    except JiraError as exc:
        if exc.status is None or exc.status == 404:
            return None, [failed(JIRA, "site", str(exc),
                                 setting_ref(plugin, "base_url") + ": the Jira Cloud site, https://<site>.atlassian.net")]
        return None, [failed(JIRA, "site", str(exc), setting_ref(plugin, "base_url"))]
    who = f"{me.get('displayName') or me.get('accountId')}" + (f" <{me['emailAddress']}>" if me.get("emailAddress") else "")
    if oauth:
        kept = Path(str(config["oauth_refresh_token_file"])).expanduser()
        how = (f"OAuth 2.0 as {who}: access token obtained ({_token_lifetime(client.auth)}); the rotated refresh token "
               f"is kept in {kept}, as a run keeps it")
    else:
        how = f"Basic auth as {who}"
    return client, [passed(JIRA, "site", f"{client.site_url} answers ({client.api_root})"),
                    passed(JIRA, "credentials", how)]


# --- Salesforce ---

SALESFORCE = "Salesforce"


def _salesforce_config_fix(plugin: str, message: str) -> str:
    for name in ("api_version", "client_id", "client_secret", "api_usage_slowdown_share"):
        if message.startswith(name) or f"{name} " in message:
            return setting_ref(plugin, name)
    return setting_ref(plugin, "base_url") + ": the org's My Domain URL"


def salesforce_connection(plugin: str, config: Mapping[str, Any]) -> tuple[Any, list[CheckResult]]:
    """Token (client credentials at the My Domain), the API version served, and the org's API usage."""
    from ml_connector_core.salesforce import (
        ApiUsage,
        SalesforceConfigError,
        SalesforceError,
        client_from_config,
    )

    try:
        client = client_from_config(config)
    except SalesforceConfigError as exc:
        return None, [failed(SALESFORCE, "configuration", str(exc), _salesforce_config_fix(plugin, str(exc)))]
    except SecretKeyError as exc:
        return None, [failed(SALESFORCE, "sealed settings", str(exc), SECRET_KEY_FIX)]
    try:
        client.auth.access_token()
    except TokenRequestError as exc:
        message = str(exc)
        if "invalid_client_id" in message:
            fix = setting_ref(plugin, "client_id") + ": the connected app's consumer key"
        elif "cannot reach" in message:
            fix = setting_ref(plugin, "token_url" if config.get("token_url") else "base_url") + ": the org's My Domain"
        elif "unsupported_grant_type" in message or "no client credentials user" in message:
            fix = "enable the client credentials flow on the connected app and set its run-as user"
        else:
            fix = setting_ref(plugin, "client_secret") + f": the consumer secret of connected app '{config.get('client_id')}'"
        return None, [failed(SALESFORCE, "token", message, fix)]
    results = [passed(SALESFORCE, "token", f"client credentials token from {client.auth.token_url} "
                                           f"({_token_lifetime(client.auth)})")]
    try:
        served = [str(v.get("version")) for v in client.get("/services/data") or []]
    except SalesforceError as exc:
        return None, results + [failed(SALESFORCE, "API version", str(exc), setting_ref(plugin, "base_url"))]
    wanted = client.api_version.lstrip("v")
    if wanted not in served:
        newest = max(served, key=lambda v: float(v)) if served else "none"
        return None, results + [failed(SALESFORCE, "API version", f"{client.api_version} is not served by this org "
                                                                  f"(newest: v{newest})",
                                       setting_ref(plugin, "api_version") + f": v{newest} or older")]
    results.append(passed(SALESFORCE, "API version", f"{client.api_version} served"))
    try:
        daily = (client.get("limits") or {}).get("DailyApiRequests") or {}
        usage = ApiUsage(int(daily["Max"]) - int(daily["Remaining"]), int(daily["Max"]))
    except (SalesforceError, KeyError, TypeError, ValueError) as exc:
        usage = client.usage  # every answer's Sforce-Limit-Info header says it too
        if usage is None:
            results.append(warned(SALESFORCE, "API usage", f"limits not readable: {exc}",
                                  "give the run-as user the View Setup and Configuration permission"))
            return client, results
    if usage.share >= client.stop_share:
        results.append(failed(SALESFORCE, "API usage", f"{usage}: at or above api_usage_stop_share "
                                                       f"({client.stop_share:.0%}), so a run would start no work",
                              "wait until the org's 24-hour usage falls, or raise "
                              + setting_ref(plugin, "api_usage_stop_share")))
        return None, results  # the client refuses every further call, as it would in a run
    elif usage.share >= client.slowdown_share:
        results.append(warned(SALESFORCE, "API usage", f"{usage}: above api_usage_slowdown_share "
                                                       f"({client.slowdown_share:.0%}), so a run paces its calls",
                              setting_ref(plugin, "api_usage_slowdown_share")))
    else:
        results.append(passed(SALESFORCE, "API usage", str(usage)))
    return client, results


# --- JAGGAER ---

JAGGAER = "JAGGAER"


def jaggaer_connection(plugin: str, config: Mapping[str, Any]) -> tuple[Any, list[CheckResult]]:
    """Token from the instance's token endpoint (client credentials)."""
    from ml_connector_core.jaggaer import JaggaerConfigError, client_from_config

    try:
        client = client_from_config(config)
    except JaggaerConfigError as exc:
        message = str(exc)
        name = next((n for n in ("client_id", "client_secret", "requests_per_minute") if n in message), "base_url")
        return None, [failed(JAGGAER, "configuration", message, setting_ref(plugin, name))]
    except SecretKeyError as exc:
        return None, [failed(JAGGAER, "sealed settings", str(exc), SECRET_KEY_FIX)]
    try:
        client.auth.access_token()
    except TokenRequestError as exc:
        message = str(exc)
        if "cannot reach" in message or "HTTP 404" in message:
            fix = setting_ref(plugin, "token_url" if config.get("token_url") else "base_url")
        elif "invalid_scope" in message:
            fix = setting_ref(plugin, "scope")
        else:
            fix = setting_ref(plugin, "client_secret") + f": the secret issued for API client '{config.get('client_id')}'"
        return None, [failed(JAGGAER, "token", message, fix)]
    return client, [passed(JAGGAER, "token", f"client credentials token from {client.auth.token_url} "
                                             f"({_token_lifetime(client.auth)})")]


def jaggaer_endpoint_fix(plugin: str, config: Mapping[str, Any], collection: str, status: int | None) -> str:
    """The one thing to change when a JAGGAER listing or lookup is refused."""
    if status in (401, 403):
        return f"give API client '{config.get('client_id')}' read access to {collection} on the JAGGAER instance"
    return setting_ref(plugin, "base_url") + ": the instance URL (the API is under /api/v1)"
