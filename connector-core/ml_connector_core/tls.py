"""Which certificate authorities the plugins trust, in one place: every HTTP session of every plugin comes from
:func:`new_session`.

``ca_bundle`` (every plugin that makes HTTP requests declares it, see :func:`ca_bundle_property`) is a PEM file of CA
certificates trusted **in addition to** the ones requests trusts anyway (certifi's public CAs, or the bundle that
``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` names). In addition, not instead: on a company network a TLS-inspecting
proxy re-signs some hosts with the company's CA and leaves others alone (Microsoft, for one, recommends leaving
Microsoft 365 traffic uninspected: "Using third-party network devices or solutions with Microsoft 365", KB 2690045), so
one run may meet both kinds of certificate, and the file IT hands out usually holds the company's root only.
``REQUESTS_CA_BUNDLE`` itself keeps its requests meaning (it replaces certifi) and keeps working whether ``ca_bundle``
is set or not; the session honours it also where singer-sdk sends prepared requests (``Session.send``, which on its
own ignores the environment).

Certificates are always verified: nothing here, or anywhere in ml-connector, turns verification off. A certificate that
nothing trusted signed ends the call with :class:`UntrustedCertificateError`, naming the host and the setting, instead
of being retried like a lost connection (another try cannot help).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

CA_BUNDLE = "ca_bundle"
#: What requests itself reads (in this order) when a session trusts its environment.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_DESCRIPTION = (
    "Path to a PEM file of CA certificates to trust in addition to the public ones (certifi, or REQUESTS_CA_BUNDLE's "
    "bundle when that is set), e.g. the company CA of a TLS-inspecting proxy or a private CA of a self-hosted service. "
    "Certificates are always verified.")


def ca_bundle_property():
    """The ``ca_bundle`` setting as every HTTP plugin declares it (a singer-sdk ``th.Property``)."""
    from singer_sdk import typing as th

    return th.Property(CA_BUNDLE, th.StringType, title="Extra trusted CAs (PEM file)", description=_DESCRIPTION)


def ca_bundle_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a ``ca_bundle`` (None when it can): no such file, a folder, unreadable, or no CA
    certificate in it. The caller names the setting."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        return f"must be the path of a PEM file, not {value!r}"
    path = Path(value).expanduser()
    if not path.exists():
        return f"no file at {str(path)!r}"
    if path.is_dir():
        return f"{str(path)!r} is a folder: give one PEM file (the CA certificates concatenated)"
    try:
        _verifying_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError:  # before OSError, which it is
        return f"{str(path)!r} holds no PEM CA certificate (-----BEGIN CERTIFICATE----- blocks expected)"
    except OSError as exc:
        return f"cannot read {str(path)!r}: {exc.strerror or exc}"
    return None


class CaBundleError(ValueError):
    """A ``ca_bundle`` that cannot be used; the message names the setting. (A plugin's configuration check says the
    same before any session is made: :func:`ml_connector_core.config_validation.config_problems`.)"""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(self.message_for(None))

    def message_for(self, plugin_name: str | None) -> str:
        from ml_connector_core.check import setting_ref

        return f"{setting_ref(plugin_name, CA_BUNDLE) if plugin_name else CA_BUNDLE}: {self.problem}"


class UntrustedCertificateError(RuntimeError):
    """A server's certificate was signed by no CA the plugin trusts. Not a ``requests.ConnectionError``: no retry loop
    takes it for a lost connection, it ends the call (and the run) with its message."""

    def __init__(self, url: str, reason: str, *, ca_bundle: str | None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or url
        self.origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else url
        self.reason = reason
        self.ca_bundle = ca_bundle
        super().__init__(self.message_for(None))

    def message_for(self, plugin_name: str | None) -> str:
        """The message, naming the setting with its variable when the plugin is known: ``ca_bundle
        (TAP_X_CA_BUNDLE)``."""
        from ml_connector_core.check import setting_ref

        setting = setting_ref(plugin_name, CA_BUNDLE) if plugin_name else f"the plugin's {CA_BUNDLE} setting"
        variable = _environment_bundle_variable()
        trusted = f"the CAs in {variable} ({os.environ[variable]})" if variable else "the public CAs (certifi)"
        if self.ca_bundle:
            trusted += f" and those in {CA_BUNDLE} ({self.ca_bundle})"
        return (f"TLS: the certificate of {self.host} ({self.origin}) is not trusted ({self.reason}); trusted are "
                f"{trusted}. If a company proxy or a private CA signs it, set {setting} to a PEM file with that CA "
                "(or REQUESTS_CA_BUNDLE to a bundle that holds it); otherwise something may be intercepting the "
                "connection")


def new_session(config: Mapping[str, Any] | None = None) -> requests.Session:
    """A requests session of a plugin: trusting ``config``'s ``ca_bundle`` as well, when set (:class:`CaBundleError`
    for one that cannot be used)."""
    ca_bundle = (config or {}).get(CA_BUNDLE) or None
    problem = ca_bundle_problem(ca_bundle)
    if problem:
        raise CaBundleError(problem)
    return TrustingSession(str(Path(ca_bundle).expanduser()) if ca_bundle else None)


class TrustingSession(requests.Session):
    """A session that also trusts ``ca_bundle`` (over direct connections and HTTPS proxies alike) and says which
    certificate it could not trust, and why, instead of a bare ``SSLError``."""

    def __init__(self, ca_bundle: str | None = None) -> None:
        super().__init__()
        self.ca_bundle = ca_bundle
        if ca_bundle:
            context = _verifying_context()
            context.load_verify_locations(cafile=ca_bundle)
            self.mount("https://", _TrustingAdapter(context))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.trust_env and kwargs.get("verify") in (None, True) and self.verify is True:
            # Session.request merges REQUESTS_CA_BUNDLE in; Session.send (singer-sdk's streams call it) does not
            kwargs["verify"] = _environment_bundle() or True
        try:
            return super().send(request, **kwargs)
        except requests.exceptions.SSLError as exc:
            reason = _verification_failure(exc)
            if reason is None:  # a handshake that failed for another reason: a transport error like any other
                raise
            raise UntrustedCertificateError(request.url or "", reason, ca_bundle=self.ca_bundle) from None


class _TrustingAdapter(HTTPAdapter):
    """Verifies with ``context`` (which holds the ca_bundle); requests adds its own bundle to it per connection
    (certifi or REQUESTS_CA_BUNDLE, as ``ca_certs``), so both are trusted."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        proxy_kwargs.setdefault("ssl_context", self._context)  # the tunnelled connection verifies the same way
        return super().proxy_manager_for(proxy, **proxy_kwargs)


def _verifying_context() -> ssl.SSLContext:
    """Certificates and host names verified, TLS 1.2 or later, no CA yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _environment_bundle_variable() -> str | None:
    """The variable requests takes its bundle from in place of certifi's, if one is set."""
    return next((name for name in CA_BUNDLE_VARIABLES if os.environ.get(name)), None)


def _environment_bundle() -> str | None:
    variable = _environment_bundle_variable()
    return os.environ[variable] if variable else None


def _verification_failure(exc: BaseException) -> str | None:
    """The verification error inside a requests ``SSLError`` ("unable to get local issuer certificate", "Hostname
    mismatch, certificate is not valid for 'x'", "certificate has expired"), or None for other TLS failures."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or current.reason or str(current)
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None
