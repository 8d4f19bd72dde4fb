"""Sandboxes carry their run and lane, so a retry and the end of a run find what a killed lane
left behind (issue 9, "Leaked sandboxes"): process directories here, docker labels below."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from autoray.config import SandboxConfig
from autoray.errors import SandboxUnavailableError
from autoray.sandbox import (
    DockerSandbox,
    ProcessSandbox,
    container_name,
    lane_directory,
    preflight_sandbox,
    remove_sandboxes,
)

NO_ENGINE = "unix:///nonexistent.sock"
_LANE_PROCESS = """import sys, time
from autoray.config import SandboxConfig
from autoray.sandbox import create_sandbox
box = create_sandbox(SandboxConfig.model_validate_json(sys.argv[1]))
box.start(sys.argv[2], run_id=sys.argv[3])
box.write_file("work.txt", "in progress")
print("started", flush=True)
time.sleep(600)
"""


def _kill_a_lane_process(config: SandboxConfig, lane: str, run_id: str) -> None:
    """Start a sandbox in a real process, then SIGKILL it: its ``destroy`` never runs."""
    argv = [sys.executable, "-c", _LANE_PROCESS, config.model_dump_json(), lane, run_id]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            if proc.stdout is not None:
                proc.stdout.close()


def _lanes(run_id: str, count: int) -> list[str]:
    return [f"{run_id}:sim/model:v:0:{shard}" for shard in range(count)]


# --- process: deterministic lane directories ------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(root=str(tmp_path / "boxes"))


def _process(config: SandboxConfig, lane: str, run_id: str | None = "run-a") -> ProcessSandbox:
    box = ProcessSandbox(config, isolation="none")
    box.start(lane, run_id=run_id)
    return box


def test_a_runs_lane_lives_in_its_fixed_directory(config: SandboxConfig) -> None:
    (lane,) = _lanes("run-a", 1)
    box = _process(config, lane)
    assert box.root == os.path.realpath(lane_directory(str(config.root), "run-a", lane))
    assert box.exec("pwd", timeout_s=10).stdout == f"{box.root}\n"
    assert box.run_id == "run-a"
    root = box.root
    box.destroy()
    assert not os.path.exists(root)
    assert os.listdir(str(config.root)) == []  # the run's directory went with its last lane


def test_a_retry_clears_what_its_killed_predecessor_left(config: SandboxConfig) -> None:
    (lane,) = _lanes("run-a", 1)
    killed = _process(config, lane)
    killed.write_file("cases/c1/half-done.txt", "a killed lane never destroys its sandbox")
    os.chmod(os.path.join(killed.root, "cases"), 0o000)  # what sandboxed code may leave behind
    retry = _process(config, lane)
    assert retry.root == killed.root
    assert retry.exec("ls -A", timeout_s=10).stdout == "tmp\n"
    retry.destroy()


def test_lanes_and_runs_never_share_a_directory(config: SandboxConfig) -> None:
    boxes = [_process(config, lane) for lane in _lanes("run-a", 2)]
    boxes.append(_process(config, _lanes("run-a", 1)[0], run_id="run-b"))
    assert len({box.root for box in boxes}) == 3
    for box in boxes:
        box.destroy()


def test_without_a_run_a_sandbox_gets_a_fresh_temp_dir(config: SandboxConfig) -> None:
    one, two = _process(config, "cases-check", None), _process(config, "cases-check", None)
    assert one.root != two.root
    assert not one.root.startswith(str(config.root))
    for box in (one, two):
        root = box.root
        assert os.path.isdir(root)
        box.destroy()
        assert not os.path.exists(root)


def test_default_root_is_under_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    box = _process(SandboxConfig(), "run-t:m::0:0", run_id="run-t")
    assert box.root.startswith(str(tmp_path / "autoray-sandboxes" / "run-t") + os.sep)
    box.destroy()


def test_base_dir_overrides_the_root(tmp_path: Path, config: SandboxConfig) -> None:
    box = ProcessSandbox(config, base_dir=str(tmp_path / "mine"), isolation="none")
    box.start("run-a:m::0:0", run_id="run-a")
    assert box.root == lane_directory(str(tmp_path / "mine"), "run-a", "run-a:m::0:0")
    assert remove_sandboxes(config, run_id="run-a") == 0  # not under sandbox.root
    assert remove_sandboxes(config, run_id="run-a", base_dir=str(tmp_path / "mine")) == 1
    box.destroy()


def test_start_refuses_an_empty_or_a_second_run(config: SandboxConfig) -> None:
    with pytest.raises(ValueError, match="run_id is empty"):
        ProcessSandbox(config).start("lane", run_id="")
    box = _process(config, "run-a:m::0:0")
    box.start("run-a:m::0:0", run_id="run-a")  # the same: a no-op
    with pytest.raises(ValueError, match="already started for run 'run-a', not 'run-b'"):
        box.start("run-a:m::0:0", run_id="run-b")
    box.destroy()


def test_preflight_names_an_unusable_root(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(SandboxUnavailableError, match=r"root .* set sandbox.root to a writable"):
        preflight_sandbox(SandboxConfig(root=str(blocker / "boxes")))
    preflight_sandbox(SandboxConfig(root=str(tmp_path / "new")))
    assert (tmp_path / "new").is_dir()


# --- process: cleanup by run and lane -------------------------------------------------------


def test_a_killed_lanes_directory_is_removed_by_the_runs_cleanup(config: SandboxConfig) -> None:
    (lane,) = _lanes("run-a", 1)
    _kill_a_lane_process(config, lane, "run-a")
    left = lane_directory(str(config.root), "run-a", lane)
    assert Path(left, "work.txt").read_text() == "in progress"  # leaked by the kill
    assert remove_sandboxes(config, run_id="run-a") == 1
    assert not os.path.exists(left)


def test_remove_sandboxes_removes_every_lane_of_the_run_only(config: SandboxConfig) -> None:
    ours = [_process(config, lane) for lane in _lanes("run-a", 3)]
    theirs = _process(config, _lanes("run-b", 1)[0], run_id="run-b")
    for box in ours:
        box.exec("mkdir -p locked/deep && chmod 000 locked", timeout_s=10)
    assert remove_sandboxes(config, run_id="run-a") == 3
    assert not any(os.path.exists(box.root) for box in ours)
    assert not os.path.exists(os.path.dirname(ours[0].root))
    assert os.path.isdir(theirs.root)
    assert theirs.exec("echo alive", timeout_s=10).stdout == "alive\n"
    theirs.destroy()


def test_remove_sandboxes_of_one_lane(config: SandboxConfig) -> None:
    first, second = (_process(config, lane) for lane in _lanes("run-a", 2))
    assert remove_sandboxes(config, run_id="run-a", lane=first.identity) == 1
    assert not os.path.exists(first.root) and os.path.isdir(second.root)
    assert remove_sandboxes(config, run_id="run-a", lane=first.identity) == 0
    for box in (first, second):
        box.destroy()


def test_cleanup_is_idempotent_and_a_later_destroy_is_quiet(
    config: SandboxConfig, caplog: pytest.LogCaptureFixture
) -> None:
    box = _process(config, _lanes("run-a", 1)[0])
    assert remove_sandboxes(config, run_id="run-a") == 1
    with caplog.at_level(logging.WARNING):
        assert remove_sandboxes(config, run_id="run-a") == 0
        assert remove_sandboxes(config, run_id="never-ran") == 0
        box.destroy()
        box.destroy()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- docker: labels and cleanup by label ----------------------------------------------------


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def run_id(docker_sandbox_config: SandboxConfig) -> Iterator[str]:
    run = f"test-cleanup-{uuid.uuid4().hex[:8]}"
    yield run
    remove_sandboxes(docker_sandbox_config, run_id=run)


def _docker(config: SandboxConfig, lane: str, run_id: str) -> DockerSandbox:
    box = DockerSandbox(config)
    box.start(lane, run_id=run_id)
    return box


def _of_run(engine: docker.DockerClient, run_id: str) -> list[str]:
    found = engine.containers.list(all=True, filters={"label": f"autoray.run={run_id}"})
    return sorted(c.name for c in found)


@pytest.mark.docker
def test_containers_carry_managed_run_and_lane_labels(
    docker_sandbox_config: SandboxConfig, run_id: str, engine: docker.DockerClient
) -> None:
    (lane,) = _lanes(run_id, 1)
    box = _docker(docker_sandbox_config, lane, run_id)
    labels = engine.containers.get(container_name(lane)).labels
    assert labels == {"autoray.managed": "1", "autoray.run": run_id, "autoray.lane": lane}
    retry = _docker(docker_sandbox_config, lane, run_id)
    assert retry.container_id == box.container_id  # a retry still re-attaches by name
    box.destroy()


@pytest.mark.docker
def test_remove_sandboxes_removes_the_runs_containers_by_label(
    docker_sandbox_config: SandboxConfig, run_id: str, engine: docker.DockerClient
) -> None:
    other_run = f"{run_id}-other"
    ours = [_docker(docker_sandbox_config, lane, run_id) for lane in _lanes(run_id, 2)]
    theirs = _docker(docker_sandbox_config, _lanes(other_run, 1)[0], other_run)
    try:
        engine.containers.get(ours[1].container_id).stop(timeout=1)  # stopped ones go too
        assert remove_sandboxes(docker_sandbox_config, run_id=run_id) == 2
        assert _of_run(engine, run_id) == []
        assert _of_run(engine, other_run) == [container_name(_lanes(other_run, 1)[0])]
        assert remove_sandboxes(docker_sandbox_config, run_id=run_id) == 0
        for box in ours:
            box.destroy()  # after a cleanup: must not fail
    finally:
        theirs.destroy()
    assert _of_run(engine, other_run) == []


@pytest.mark.docker
def test_a_killed_lanes_container_is_removed_by_the_runs_cleanup(
    docker_sandbox_config: SandboxConfig, run_id: str, engine: docker.DockerClient
) -> None:
    (lane,) = _lanes(run_id, 1)
    _kill_a_lane_process(docker_sandbox_config, lane, run_id)
    assert _of_run(engine, run_id) == [container_name(lane)]  # leaked by the kill
    assert remove_sandboxes(docker_sandbox_config, run_id=run_id) == 1
    assert _of_run(engine, run_id) == []


@pytest.mark.docker
def test_remove_sandboxes_of_one_lane_by_label(
    docker_sandbox_config: SandboxConfig, run_id: str, engine: docker.DockerClient
) -> None:
    first, second = (_docker(docker_sandbox_config, lane, run_id) for lane in _lanes(run_id, 2))
    assert first.identity is not None and second.identity is not None
    assert remove_sandboxes(docker_sandbox_config, run_id=run_id, lane=first.identity) == 1
    assert _of_run(engine, run_id) == [container_name(second.identity)]
    assert second.exec("echo alive", timeout_s=10).stdout == "alive\n"
    first.destroy()
    second.destroy()


def test_docker_cleanup_with_no_engine_logs_and_removes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = SandboxConfig(backend="docker")
    with caplog.at_level(logging.WARNING):
        assert remove_sandboxes(config, run_id="run-a", docker_host=NO_ENGINE) == 0
    assert any("cleanup of run 'run-a' skipped" in r.getMessage() for r in caplog.records)
