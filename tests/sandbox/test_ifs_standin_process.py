import subprocess
import sys

import requests

from mlc_sandbox.ifs import IfsSandboxProcess
from mlc_sandbox.ifs.generate import DATA_VERSION


def test_subprocess_reports_its_port_and_serves(data_dir):
    with IfsSandboxProcess(scale=60, seed=3, port=0, data_dir=data_dir, token_ttl=30) as ifs:
        assert ifs.port > 0 and ifs.base_url == f"http://127.0.0.1:{ifs.port}"
        assert requests.get(f"{ifs.base_url}/_admin/health").json() == {"status": "ok"}
        token = requests.post(ifs.token_url, data={"grant_type": "client_credentials",
                                                   "client_id": "mlc-sandbox-client",
                                                   "client_secret": "mlc-sandbox-secret"}).json()
        assert token["expires_in"] == 30
        info = ifs.admin("GET", "info")
        assert info["counts"]["PurchaseOrderSet"] == 60
    assert ifs.process.returncode is not None


def test_cli_help_and_generate(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mlc_sandbox", "serve", "ifs", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "--token-ttl" in result.stdout and "--fault-rate-5xx" in result.stdout
    result = subprocess.run([sys.executable, "-m", "mlc_sandbox", "generate", "ifs", "--scale", "40",
                             "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0 and (tmp_path / f"ifs-v{DATA_VERSION}-seed42-scale40.sqlite").exists()
