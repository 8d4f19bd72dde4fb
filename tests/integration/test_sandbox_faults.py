"""The ``fault`` sandbox backend (test faults): each switch, against real files and processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from autoray.config import SandboxConfig
from autoray.errors import SandboxUnavailableError
from autoray.sandbox import (
    FaultSandbox,
    create_sandbox,
    fail_starts_for,
    preflight_sandbox,
    remove_sandboxes,
    start_count,
)
from autoray.sandbox import faults as faults_module

RUN = "fault-run"
LANE = f"{RUN}:sim/a::0:0"
OTHER = f"{RUN}:sim/a::0:1"


def _config(tmp_path: Path, **faults: Any) -> SandboxConfig:
    return SandboxConfig(
        backend="fault",
        root=str(tmp_path / "boxes"),
        faults={"state_dir": str(tmp_path / "state"), **faults},
    )


def _start(config: SandboxConfig, lane: str = LANE) -> FaultSandbox:
    box = create_sandbox(config, isolation="none")
    assert isinstance(box, FaultSandbox)
    box.start(lane, run_id=RUN)
    return box


def _fails(config: SandboxConfig, lane: str = LANE) -> str:
    with pytest.raises(SandboxUnavailableError) as info:
        _start(config, lane)
    return str(info.value)


def test_fail_first_fails_every_lanes_first_starts_then_runs(tmp_path: Path) -> None:
    config = _config(tmp_path, fail_first=2)
    state = str(tmp_path / "state")
    assert "injected test fault: start #1 of lane" in _fails(config)
    assert "start #2" in _fails(config) and "fail_first is 2" in _fails(config, OTHER)
    box = _start(config)
    assert (start_count(state, LANE), start_count(state, OTHER)) == (3, 1)
    result = box.exec("echo ran in $PWD", timeout_s=10)
    assert (result.exit_code, result.stdout) == (0, f"ran in {box.root}\n")
    box.destroy()


def test_start_counts_survive_the_lane_process(tmp_path: Path) -> None:
    """A lane killed and recreated in a new process must see the starts of its predecessor."""
    config = _config(tmp_path, fail_first=2)
    script = (
        "import sys\n"
        "from autoray.config import SandboxConfig\n"
        "from autoray.sandbox import create_sandbox\n"
        "config = SandboxConfig.model_validate_json(sys.argv[1])\n"
        "create_sandbox(config, isolation='none').start(sys.argv[2], run_id=sys.argv[3])\n"
    )
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script, config.model_dump_json(), LANE, RUN],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and "injected test fault" in done.stderr, done.stderr
    assert start_count(str(tmp_path / "state"), LANE) == 2
    _start(config).destroy()  # the third start, in this process, goes through


def test_always_fails_every_start_of_its_lanes_only(tmp_path: Path) -> None:
    config = _config(tmp_path, always=[LANE])
    for _ in range(3):
        assert "lane listed in always" in _fails(config)
    _start(config, OTHER).destroy()
    assert start_count(str(tmp_path / "state"), LANE) == 3


def test_hang_never_returns_from_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults_module, "HANG_S", 3.0)
    config = _config(tmp_path, hang=[LANE])
    box = create_sandbox(config, isolation="none")
    starter = threading.Thread(target=box.start, args=(LANE,), kwargs={"run_id": RUN})
    starter.start()
    starter.join(timeout=1.0)
    assert starter.is_alive()  # blocked well past any real start
    assert box.identity is None and start_count(str(tmp_path / "state"), LANE) == 1
    _start(config, OTHER).destroy()  # other lanes are not held up
    starter.join(timeout=30)
    assert not starter.is_alive()
    box.destroy()


def test_fail_starts_for_fails_every_start_until_the_moment(tmp_path: Path) -> None:
    config = _config(tmp_path)
    state = str(tmp_path / "state")
    fail_starts_for(state, 60)
    assert "fail_starts_for is on" in _fails(config)
    assert "fail_starts_for is on" in _fails(config, OTHER)
    fail_starts_for(state, 0)  # off
    _start(config).destroy()
    fail_starts_for(state, 0.5)
    assert "fail_starts_for is on" in _fails(config)
    time.sleep(0.6)
    _start(config).destroy()
    assert start_count(state, LANE) == 4


def test_concurrent_starts_are_each_counted_once(tmp_path: Path) -> None:
    config = _config(tmp_path, fail_first=1000)
    with ThreadPoolExecutor(max_workers=8) as pool:
        errors = list(pool.map(lambda _: _fails(config), range(24)))
    assert len(errors) == 24
    assert start_count(str(tmp_path / "state"), LANE) == 24
    numbers = sorted(int(e.split("start #")[1].split()[0]) for e in errors)
    assert numbers == list(range(1, 25))


def test_a_fault_sandbox_is_cleaned_up_like_a_process_sandbox(tmp_path: Path) -> None:
    config = _config(tmp_path)
    box = _start(config)
    box.write_file("left.txt", "by a lane that was then killed")
    assert remove_sandboxes(config, run_id=RUN) == 1
    assert not Path(box.root).exists()
    box.destroy()


def test_preflight_names_an_unusable_state_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    config = SandboxConfig(backend="fault", faults={"state_dir": str(blocker / "state")})
    with pytest.raises(SandboxUnavailableError, match=r"faults.state_dir .* cannot be created"):
        preflight_sandbox(config)
    preflight_sandbox(_config(tmp_path))
    assert (tmp_path / "state").is_dir()
