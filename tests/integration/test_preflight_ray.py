"""The preflight for real: probes on the nodes of a local Ray, endpoints over HTTP on 127.0.0.1,
and `autoray bench run` / `python -m actors.job run` as subprocesses with their own database.

What the probes see is the environment of the node's workers (the environment Ray was started
with), not the driver's: a variable exported in the driver after Ray started is missing where
the lanes run, and the preflight says so. ``RAY_USAGE_STATS_ENABLED`` stands in for a key that
*is* set on the node: the session fixture sets it before it starts Ray.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from autoray.config import BenchConfig
from autoray.errors import PreflightError
from autoray.store import open_store, repo, upgrade_async
from tests.integration.http_apps import serve_app

REPO = Path(__file__).resolve().parents[2]
NODE_KEY = "RAY_USAGE_STATS_ENABLED"
DRIVER_ONLY_KEY = "AUTORAY_TEST_PREFLIGHT_DRIVER_ONLY_KEY"
UNSET_KEY = "AUTORAY_TEST_PREFLIGHT_UNSET_KEY"
SECRET = "sk-preflight-4f1c9a0b7e2d-SECRET"
SUBPROCESS_TIMEOUT_S = 240


@dataclass
class Endpoint:
    """An OpenAI-compatible endpoint on 127.0.0.1 that records each request's credentials."""

    models_status: int = 200
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def models(request: Request) -> JSONResponse:
            self.seen.append((request.url.path, request.headers.get("authorization")))
            body = {"object": "list", "data": [{"id": "gpt-test", "object": "model"}]}
            if self.models_status != 200:
                body = {"error": {"message": "invalid api key", "type": "auth"}}
            return JSONResponse(body, status_code=self.models_status)

        return Starlette(routes=[Route("/v1/models", models, methods=["GET"])])


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    served = Endpoint(models_status=getattr(request, "param", 200))
    with serve_app(served.app()) as url:
        served.url = url + "/v1"
        yield served


def _openai(base_url: str, key: str, model_id: str = "gpt-test") -> dict[str, Any]:
    return {
        "id": model_id,
        "provider": "openai",
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "base_url": base_url,
        "api_key_env": key,
        "max_retries": 0,
    }


def _config(*models: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "preflight",
        "max_live_containers": 2,
        "sandbox": {"backend": "process", "timeout_s": 30},
        "models": list(models),
    }


def _check(config: dict[str, Any]) -> None:
    from actors.preflight import check_run

    check_run(BenchConfig.model_validate(config))


def test_a_key_exported_only_in_the_driver_is_missing_where_lanes_run(
    ray_cluster: None, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    monkeypatch.setenv(DRIVER_ONLY_KEY, SECRET)  # after Ray started: its workers never see it
    node = ray.nodes()[0]["NodeManagerAddress"]
    with pytest.raises(PreflightError) as info:
        _check(_config(_openai(endpoint.url, DRIVER_ONLY_KEY)))
    message = str(info.value)
    assert f"model 'gpt-test' needs the key variable {DRIVER_ONLY_KEY!r}" in message
    assert node in message and SECRET not in message
    assert endpoint.seen == []


def test_a_key_set_on_the_node_passes_and_the_one_call_carries_it(
    ray_cluster: None, endpoint: Endpoint
) -> None:
    _check(_config(_openai(endpoint.url, NODE_KEY)))
    assert endpoint.seen == [("/v1/models", f"Bearer {os.environ[NODE_KEY]}")]


@pytest.mark.parametrize("endpoint", [401], indirect=True)
def test_an_endpoint_that_refuses_the_key_fails_naming_endpoint_and_status(
    ray_cluster: None, endpoint: Endpoint
) -> None:
    with pytest.raises(PreflightError) as info:
        _check(_config(_openai(endpoint.url, NODE_KEY)))
    assert f"{endpoint.url}/models: HTTP 401" in str(info.value)
    assert "model 'gpt-test'" in str(info.value)


def test_simulated_models_are_not_probed(ray_cluster: None) -> None:
    sim = {
        "id": "sim/a",
        "provider": "simulated",
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "skill": {"default": 1.0},
    }
    _check(_config(sim))  # no key, no farm, no call: nothing to fail on


# The real commands, each in a subprocess that starts its own local Ray (under a short private
# temporary directory, so that its session files can be searched afterwards).


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="arpf-"))  # short: Ray's socket paths must stay short
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    asyncio.run(upgrade_async(url))
    return url


def _runs(url: str) -> list[Any]:
    async def _list() -> list[Any]:
        store = open_store(url)
        try:
            async with store.session() as session:
                return list(await repo.list_runs(session))
        finally:
            await store.close()

    return asyncio.run(_list())


def _run(argv: list[str], ray_tmpdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if name not in {UNSET_KEY, "RAY_ADDRESS", "AUTORAY_DATABASE_URL", "AUTORAY_SIM_URL"}
    }
    clean.update(RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmpdir), **env)
    return subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=False,
    )


def _write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def test_bench_run_with_an_unset_key_exits_2_before_anything_starts(
    tmp_path: Path, endpoint: Endpoint, ray_tmpdir: Path
) -> None:
    """Issue 9, done when: the run is refused, naming the variable, and leaves no run row."""
    url = _database(tmp_path)
    config = _write(tmp_path, _config(_openai(endpoint.url, UNSET_KEY)))
    result = _run(["-m", "autoray.cli", "bench", "run", config, "--database-url", url], ray_tmpdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"the key variable {UNSET_KEY!r}" in result.stderr
    assert "nothing was started" in result.stderr
    assert _runs(url) == [] and endpoint.seen == []


@pytest.mark.parametrize("endpoint", [401], indirect=True)
def test_job_entry_point_uses_the_nodes_key_and_stores_it_nowhere(
    tmp_path: Path, endpoint: Endpoint, ray_tmpdir: Path
) -> None:
    """The job's key comes from the environment Ray was started with, not a ``runtime_env``;
    the endpoint refusing it stops the run before it starts, and the key is in no output, no
    run row and no file of the Ray session. A key passed in a ``runtime_env`` would be there:
    Ray's runtime-env agent logs every ``runtime_env`` it sets up, ``env_vars`` included."""
    key = "AUTORAY_TEST_PREFLIGHT_JOB_KEY"
    url = _database(tmp_path)
    config = _write(tmp_path, _config(_openai(endpoint.url, key)))
    argv = ["-m", "actors.job", "run", config, "--database-url", url]
    result = _run(argv, ray_tmpdir, **{key: SECRET})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{endpoint.url}/models: HTTP 401" in result.stderr
    assert endpoint.seen == [("/v1/models", f"Bearer {SECRET}")]
    assert SECRET not in result.stdout + result.stderr
    assert _runs(url) == []
    sessions = list(ray_tmpdir.rglob("session_*"))
    assert sessions, "the job started no Ray of its own"
    assert _files_holding(ray_tmpdir, SECRET) == []


def _files_holding(root: Path, text: str) -> list[str]:
    needle = text.encode()
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(str(path.relative_to(root)))
            except OSError:
                continue
    return found
