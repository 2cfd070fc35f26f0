"""Where the stand-ins listen by default: one setting, MLC_SANDBOX_PORT_BASE (default 8600), plus a fixed offset each.

`mlc-sandbox serve <name>` without --port listens on base + offset, and `mlc-sandbox env` prints the stand-ins' URLs
(MLC_SANDBOX_IFS_URL, ...) from the same base for meltano.yml's sandbox environment, so one setting moves them all.
Likewise MLC_SANDBOX_TLS_CERT and MLC_SANDBOX_TLS_KEY (PEM files): every `serve` then speaks HTTPS with them (unless
--tls-cert/--tls-key say otherwise) and `env` prints https:// URLs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PORT_BASE_ENV = "MLC_SANDBOX_PORT_BASE"
DEFAULT_PORT_BASE = 8600
OFFSETS = {"ifs": 0, "databricks": 100, "teams": 200, "jira": 300, "salesforce": 400, "jaggaer": 500}
HOST = "127.0.0.1"
TLS_CERT_ENV = "MLC_SANDBOX_TLS_CERT"
TLS_KEY_ENV = "MLC_SANDBOX_TLS_KEY"


class PortBaseError(ValueError):
    pass


def port_base(env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(PORT_BASE_ENV, "").strip()
    if not raw:
        return DEFAULT_PORT_BASE
    highest = 65535 - max(OFFSETS.values())
    try:
        base = int(raw)
    except ValueError:
        base = -1
    if not 1 <= base <= highest:
        raise PortBaseError(f"{PORT_BASE_ENV} must be a port number from 1 to {highest} (the stand-ins use it up to "
                            f"+{max(OFFSETS.values())}), not {raw!r}")
    return base


def default_port(name: str, env: Mapping[str, str] | None = None) -> int:
    return port_base(env) + OFFSETS[name]


def url_variable(name: str) -> str:
    return f"MLC_SANDBOX_{name.upper()}_URL"


def tls_files(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(certificate, key) the stand-ins serve HTTPS with by default, from MLC_SANDBOX_TLS_CERT/_KEY (None: HTTP)."""
    env = os.environ if env is None else env
    return (env.get(TLS_CERT_ENV, "").strip() or None), (env.get(TLS_KEY_ENV, "").strip() or None)


def scheme(env: Mapping[str, str] | None = None) -> str:
    return "https" if tls_files(env)[0] else "http"


def urls(env: Mapping[str, str] | None = None, host: str = HOST) -> dict[str, str]:
    """MLC_SANDBOX_<NAME>_URL → http(s)://host:<base + offset> for every stand-in."""
    base = port_base(env)
    return {url_variable(name): f"{scheme(env)}://{host}:{base + offset}" for name, offset in OFFSETS.items()}


def layout(base: int) -> str:
    """'ifs 8600, databricks 8700, ...' for messages."""
    return ", ".join(f"{name} {base + offset}" for name, offset in OFFSETS.items())
