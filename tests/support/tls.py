"""HTTPS for the stand-ins in tests: a local certificate authority (trustme) and a server certificate it signed for
127.0.0.1 and localhost, as PEM files.

    with JiraSandbox(port=0, **tls.server_options) as jira:      # serves https://127.0.0.1:<port>
        requests.get(jira.base_url + "/status", verify=str(tls.ca_file))
        config = {..., "ca_bundle": str(tls.ca_file)}              # what the plugins trust

The `sandbox_tls` fixture (tests/conftest.py) makes one per test session; `make_tls` makes another (e.g. a CA the
clients do not trust).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class SandboxTls:
    ca_file: Path  # the CA certificate (PEM) clients trust: a plugin's ca_bundle, or REQUESTS_CA_BUNDLE
    cert_file: Path  # the server certificate chain (PEM) a stand-in serves
    key_file: Path  # its private key (PEM)

    @property
    def server_options(self) -> dict[str, Path]:
        """The keyword options of any stand-in handle (IfsSandbox, JiraSandboxProcess, ...) that make it serve HTTPS."""
        return {"tls_cert": self.cert_file, "tls_key": self.key_file}

    @property
    def serve_flags(self) -> list[str]:
        """The same for `mlc-sandbox serve <name>`."""
        return ["--tls-cert", str(self.cert_file), "--tls-key", str(self.key_file)]

    @property
    def serve_environment(self) -> dict[str, str]:
        """The same as environment variables (every `mlc-sandbox serve`, and `mlc-sandbox env` prints https URLs)."""
        return {"MLC_SANDBOX_TLS_CERT": str(self.cert_file), "MLC_SANDBOX_TLS_KEY": str(self.key_file)}


def make_tls(folder: Path, organization: str = "ml-connector test CA") -> SandboxTls:
    """A new CA and a certificate for 127.0.0.1 and localhost signed by it, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name=organization)
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server-chain.pem", folder / "server-key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    return SandboxTls(ca_file=ca_file, cert_file=cert_file, key_file=key_file)
