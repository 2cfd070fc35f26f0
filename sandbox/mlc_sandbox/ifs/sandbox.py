"""Running the IFS stand-in: in-process (a background thread) or as a subprocess that reports its port."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ..runner import AdminClient, InProcessStandIn, StandInProcess, option_flags, serve_command, terminate, tls_flags
from .app import IfsApp, IfsSettings
from .guards import FaultRates
from .cache import open_store
from .profile import Profile
from .profile import load as load_profile


def default_data_dir() -> Path:
    return Path(os.environ.get("MLC_SANDBOX_DATA_DIR", ".sandbox-data"))


class _AdminClient(AdminClient):
    """The IFS admin interface (records, faults, settings, the request log, tokens) over HTTP."""

    admin_error_chars = 500

    def create(self, entity_set: str, record: dict) -> dict:
        return self.admin("POST", f"records/{entity_set}", {"record": record})

    def create_many(self, entity_set: str, records: list[dict]) -> dict:
        return self.admin("POST", f"records/{entity_set}", {"records": records})

    def change(self, entity_set: str, key: dict, changes: dict, changed_at: str | None = None) -> dict:
        body = {"key": key, "changes": changes, **({"changed_at": changed_at} if changed_at else {})}
        return self.admin("PATCH", f"records/{entity_set}", body)

    def delete(self, entity_set: str, key: dict) -> dict:
        return self.admin("DELETE", f"records/{entity_set}", {"key": key})

    def clear_requests(self) -> None:
        self.admin("DELETE", "requests")

    def revoke_tokens(self) -> dict:
        return self.admin("POST", "tokens/revoke")

    # where things are

    @property
    def api_root(self) -> str:
        """Where this tenant serves projections: /main, or /int where its profile serves only that."""
        return self.profile.api_root

    def service_url(self, projection: str) -> str:
        return f"{self.base_url}{self.api_root}/{projection}.svc"

    def active_profile(self) -> dict:
        """GET /_admin/profile: the tenant profile the stand-in plays (name, file, JSON given, keys in effect)."""
        return self.admin("GET", "profile")

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/realms/{self.realm}/protocol/openid-connect/token"


class IfsSandbox(_AdminClient, InProcessStandIn):
    """The IFS stand-in in this process, serving from a background thread.

        with IfsSandbox(scale=200, seed=7, port=0, token_ttl=180) as ifs:
            requests.get(ifs.service_url("PurchaseOrderHandling") + "/PurchaseOrderSet", ...)
    """

    def __init__(self, *, scale: int = 1000, seed: int = 42, port: int = 0, host: str = "127.0.0.1",
                 token_ttl: int = 180, rate_limit: int = 1000, page_size: int | None = None,
                 time_zone: str = "Europe/Stockholm", realm: str = "mlc", client_id: str = "mlc-sandbox-client",
                 client_secret: str = "mlc-sandbox-secret", data_dir: str | Path | None = None,
                 fault_rates: FaultRates | None = None, fault_seed: int | None = None,
                 profile: str | Path | dict | Profile = "default", tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None):
        self.profile = load_profile(profile)  # ProfileError (one line) for a bad profile
        self.settings = IfsSettings(scale=scale, seed=seed, token_ttl=token_ttl, rate_limit=rate_limit,
                                    page_size=page_size_for(page_size, self.profile), time_zone=time_zone,
                                    realm=realm, client_id=client_id, client_secret=client_secret,
                                    fault_rates=fault_rates or FaultRates(), fault_seed=fault_seed,
                                    profile=self.profile)
        self._init_server(host, port, tls_cert, tls_key)
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.realm, self.client_id, self.client_secret = realm, client_id, client_secret
        self.app: IfsApp | None = None

    def start(self) -> "IfsSandbox":
        store = open_store(self.data_dir, self.settings.seed, self.settings.scale)
        self.app = IfsApp(self.settings, store)
        self._serve(self.app)
        return self

    def stop(self) -> None:
        self._stop_server()
        if self.app is not None:
            self.app.store.close()
            self.app = None


class IfsSandboxProcess(_AdminClient, StandInProcess):
    """The IFS stand-in as a child process (`mlc-sandbox serve ifs ...`), started and stopped from Python.

    `port=0` lets the server pick a free port; it writes a ready file with its base URL once it serves.
    Its stderr is a pipe, read only if it exits before serving. `profile` (a built-in name or a JSON file) becomes
    `--profile`; without it the child follows MLC_SANDBOX_IFS_PROFILE or plays `default`.
    """

    label = "IFS"

    def __init__(self, *, scale: int = 1000, seed: int = 42, port: int = 0, data_dir: str | Path | None = None,
                 realm: str = "mlc", timeout: float = 600, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None, **options):
        self.realm = realm
        self._ready_file = Path(tempfile.mkdtemp(prefix="mlc-sandbox-")) / "ready.json"
        args = serve_command("ifs", "--port", str(port), "--scale", str(scale), "--seed", str(seed),
                             "--realm", realm, "--ready-file", str(self._ready_file))
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        args += option_flags(options) + tls_flags(self, tls_cert, tls_key)
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(timeout)
        self._api_root: str | None = None

    @property
    def api_root(self) -> str:
        """Asked of the child once: the profile it plays may come from its environment."""
        if self._api_root is None:
            self._api_root = self.active_profile()["api_root"]
        return self._api_root

    def _exit_message(self) -> str:
        return self.process.stderr.read().decode()[-3000:]

    def stop(self) -> None:
        terminate(self.process)
        if self.process.stderr:
            self.process.stderr.close()
        self._ready_file.unlink(missing_ok=True)
        self._ready_file.with_name(self._ready_file.name + ".tmp").unlink(missing_ok=True)
        self._ready_file.parent.rmdir()


def page_size_for(explicit: int | None, profile: Profile) -> int:
    """An explicit page size (option, flag or environment) wins; else the profile's; else 1000."""
    if explicit is not None:
        return explicit
    return profile.page_size if profile.page_size is not None else 1000
