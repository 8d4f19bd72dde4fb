"""``autoray serve`` as a real process: it starts its own local Ray, serves decisions over HTTP,
and stops cleanly (exit 0, Serve and Ray shut down) on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.serve_support import free_port, seed, table_of, wait_until

pytestmark = pytest.mark.ray

TABLE = table_of()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).json().get("table_version") is not None
    except (httpx.HTTPError, ValueError):
        return False


def test_autoray_serve_runs_in_the_foreground_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    seed(db_url, [TABLE], activate=TABLE)
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "AUTORAY_API_KEYS": ""}
    env.pop("RAY_ADDRESS", None)
    command = [
        sys.executable, "-m", "autoray.cli", "serve", "--port", str(port), "--database-url",
        db_url, "--address", "local", "--name", "autoray-cli-test",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is None and _up(url), timeout=240, every=1)
        decided = httpx.post(f"{url}/v1/decide", json={"prompt": "fix this failing test"})
        assert decided.status_code == 200 and decided.json()["decision"] is not None
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"POST {url}/v1/decide" in out and TABLE.version in out
    assert "stopped" in err and "Traceback" not in err
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", timeout=5)
