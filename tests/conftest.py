"""Shared pytest setup: the ``docker`` marker.

Tests marked ``docker`` need a reachable Docker engine holding the sandbox image. Locally they
skip, saying what is missing; with ``AUTORAY_REQUIRE_DOCKER=1`` (CI, which starts an engine with
``scripts/docker-engine.sh up``) they fail instead, so CI cannot pass while testing less.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from autoray.config import SandboxConfig
from autoray.errors import SandboxUnavailableError
from autoray.settings import Settings


@functools.cache
def _docker_problem() -> str | None:
    """Why docker tests cannot run here (None when they can); asked once per session."""
    from autoray.sandbox import DockerSandbox

    try:
        DockerSandbox.preflight(SandboxConfig(backend="docker"))
    except SandboxUnavailableError as exc:
        return str(exc)
    return None


def _require_docker() -> None:
    problem = _docker_problem()
    if problem is None:
        return
    if Settings.from_env().require_docker:
        pytest.fail(f"AUTORAY_REQUIRE_DOCKER=1 but Docker is unusable: {problem}", pytrace=False)
    pytest.skip(f"Docker unavailable: {problem}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        _require_docker()


@pytest.fixture(scope="session")
def docker_sandbox_config() -> Iterator[SandboxConfig]:
    """A docker SandboxConfig whose engine and image passed the preflight."""
    _require_docker()
    yield SandboxConfig(backend="docker")
