"""The IFS Cloud stand-in as the tests use it: a real server process on loopback, driven through its admin interface."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests

from support.singer import BIN
from support.tls import SandboxTls

REALM, CLIENT_ID, CLIENT_SECRET = "mlc", "mlc-sandbox-client", "mlc-sandbox-secret"
API = "/main/ifsapplications/projection/v1"


class IfsStandIn:
    """`options` become flags of `mlc-sandbox serve ifs` (`profile="restricted"` → `--profile restricted`); with `tls`
    it serves HTTPS and this handle trusts its CA."""

    def __init__(self, data_dir: Path, *, scale: int = 200, seed: int = 7, tls: SandboxTls | None = None,
                 **options: object) -> None:
        self.tls = tls
        self.http = requests.Session()
        if tls is not None:
            # trust_env off: REQUESTS_CA_BUNDLE, when set, would override the session's verify
            self.http.trust_env, self.http.verify = False, str(tls.ca_file)
        # The stand-in binds a free port itself and names it in its ready file: a port picked here and bound later
        # by the child could be taken meanwhile by a stand-in of another test, which would then answer this one.
        name = uuid.uuid4().hex[:12]
        self._ready_file = data_dir / f"ifs-stand-in-{name}.ready.json"
        args = [str(BIN / "mlc-sandbox"), "serve", "ifs", "--port", "0", "--ready-file", str(self._ready_file),
                "--scale", str(scale), "--seed", str(seed), "--data-dir", str(data_dir),
                *(tls.serve_flags if tls else [])]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one would block it.
        self._log = data_dir / f"ifs-stand-in-{name}.log"
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._log.open("wb"))
        try:
            self._wait_until_healthy()
        except BaseException:  # nobody holds this stand-in yet to stop it later
            self.process.kill()
            raise
        # the tenant profile played, and the root it serves projections under (/main, or /int on an integration host)
        self.profile = self._admin("GET", "/profile")
        self.api = self.profile["api_root"]

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + 120
        while not self._ready_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"the IFS stand-in exited: {self._log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the IFS stand-in did not come up")
            time.sleep(0.05)
        ready = json.loads(self._ready_file.read_text())
        self.port, self.base_url = ready["port"], ready["base_url"]
        self.admin_url = f"{self.base_url}/_admin"
        assert self.http.get(f"{self.admin_url}/health", timeout=10).ok

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def tap_config(self, **overrides: object) -> dict:
        return {"base_url": self.base_url, "realm": REALM, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "requests_per_minute": 100000, **overrides}

    # Admin interface

    def _admin(self, method: str, path: str, **kwargs) -> dict:
        response = self.http.request(method, f"{self.admin_url}{path}", timeout=60, **kwargs)
        assert response.ok, f"admin {method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else {}

    def create(self, entity_set: str, record: dict) -> dict:
        return self._admin("POST", f"/records/{entity_set}", json={"record": record})

    def create_many(self, entity_set: str, records: list[dict]) -> dict:
        return self._admin("POST", f"/records/{entity_set}", json={"records": records})

    def change(self, entity_set: str, key: dict, changes: dict, changed_at: str | None = None) -> dict:
        body = {"key": key, "changes": changes}
        if changed_at:
            body["changed_at"] = changed_at
        return self._admin("PATCH", f"/records/{entity_set}", json=body)

    def delete(self, entity_set: str, key: dict) -> dict:
        return self._admin("DELETE", f"/records/{entity_set}", json={"key": key})

    def fault(self, kind: str, count: int, **details: object) -> None:
        self._admin("POST", "/faults", json={"kind": kind, "count": count, **details})

    def clear_faults(self) -> None:
        self._admin("DELETE", "/faults")

    def settings(self, **values: object) -> None:
        self._admin("POST", "/settings", json=values)

    def requests_log(self) -> list[dict]:
        body = self._admin("GET", "/requests")
        return body["requests"] if isinstance(body, dict) else body

    def clear_requests(self) -> None:
        self._admin("DELETE", "/requests")

    def revoke_tokens(self) -> None:
        self._admin("POST", "/tokens/revoke")

    # Reading as a client would, for the truth to compare the tap with

    def token(self) -> str:
        response = self.http.post(
            f"{self.base_url}/auth/realms/{REALM}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def get(self, projection: str, path: str, query: str = "", *, utc: bool = True, raw: bool = False):
        headers = {"Authorization": f"Bearer {self.token()}"}
        if utc:
            headers["X-Ifs-Time-Zone-Aware-Request"] = "true"
        url = f"{self.base_url}{self.api}/{projection}.svc/{path}" + (f"?{query}" if query else "")
        response = self.http.get(url, headers=headers)
        return response if raw else response.json()

    def all_rows(self, projection: str, entity_set: str, keys: list[str], *, utc: bool = True) -> list[dict]:
        """Every row of a set, paged by $skip on a quiet server."""
        rows, skip = [], 0
        while True:
            query = f"$orderby={','.join(keys)}&$top=500&$skip={skip}"
            page = self.get(projection, entity_set, query, utc=utc)["value"]
            if not page:
                return rows
            rows += page
            skip += len(page)

    def count(self, projection: str, entity_set: str, filter_: str | None = None) -> int:
        query = "$count=true&$top=0" + (f"&$filter={quote(filter_, safe='()$:')}" if filter_ else "")
        return self.get(projection, entity_set, query)["@odata.count"]
