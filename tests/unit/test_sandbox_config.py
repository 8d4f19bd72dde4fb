"""``sandbox`` in the benchmark config: the sandbox root and the fault backend's test faults."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from autoray.config import SandboxConfig, SandboxFaults, parse_config
from autoray.errors import ConfigError
from autoray.sandbox import lane_directory, remove_sandboxes, sandbox_root


def _config(sandbox: dict[str, Any]) -> dict[str, Any]:
    model = {
        "id": "sim/a",
        "provider": "simulated",
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "skill": {"default": 0.5},
    }
    return {"name": "t", "models": [model], "sandbox": sandbox}


def _error(sandbox: dict[str, Any]) -> str:
    """The one problem the config has (the rest of it is valid)."""
    with pytest.raises(ConfigError) as info:
        parse_config(_config(sandbox), "bench.yaml")
    message = str(info.value)
    assert "(1 problem)" in message, message
    return message


def test_fault_backend_takes_its_test_faults_from_the_config() -> None:
    sandbox = {"backend": "fault", "faults": {"state_dir": "s", "fail_first": 2, "hang": ["l"]}}
    cfg = parse_config(_config(sandbox), "bench.yaml")
    assert cfg.sandbox.faults == SandboxFaults(state_dir="s", fail_first=2, hang=["l"])
    assert cfg.sandbox.faults.always == []


def test_faults_are_refused_on_a_real_backend_naming_the_fix() -> None:
    for backend in ("process", "docker"):
        message = _error({"backend": backend, "faults": {"state_dir": "s"}})
        assert "sandbox" in message and "faults is set but backend is" in message
        assert f"{backend!r}" in message
        assert "remove faults, or set backend to 'fault'" in message


def test_fault_backend_without_faults_is_refused_naming_the_fix() -> None:
    message = _error({"backend": "fault"})
    assert "backend 'fault' (test faults) needs faults" in message
    assert "state_dir" in message


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({}, "sandbox.faults.state_dir: required field is missing"),
        ({"state_dir": ""}, "sandbox.faults.state_dir: String should have at least 1"),
        ({"state_dir": "s", "fail_first": -1}, "sandbox.faults.fail_first: Input should be"),
        (
            {"state_dir": "s", "fail_frist": 1},
            "sandbox.faults.fail_frist: unknown field 'fail_frist'; valid fields: state_dir,",
        ),
    ],
)
def test_faults_fields_are_checked(faults: dict[str, Any], expected: str) -> None:
    assert expected in _error({"backend": "fault", "faults": faults})


def test_root_must_not_be_empty() -> None:
    assert "sandbox.root: String should have at least 1" in _error({"root": ""})


def test_sandbox_root_defaults_under_the_temp_dir_and_follows_the_config() -> None:
    assert sandbox_root(SandboxConfig()) == os.path.join(tempfile.gettempdir(), "autoray-sandboxes")
    assert sandbox_root(SandboxConfig(root="/srv/boxes")) == "/srv/boxes"


def test_lane_directory_is_deterministic_and_names_run_then_lane() -> None:
    first = lane_directory("/srv/boxes", "run-1", "run-1:sim/a::0:1")
    assert first == lane_directory("/srv/boxes", "run-1", "run-1:sim/a::0:1")
    assert os.path.dirname(first) == "/srv/boxes/run-1"
    assert "/" not in os.path.basename(first)
    assert first != lane_directory("/srv/boxes", "run-1", "run-1:sim/a::0:2")
    assert lane_directory("/srv/boxes", "../up", "x").startswith("/srv/boxes/")


def test_remove_sandboxes_needs_a_run_and_a_non_empty_lane() -> None:
    with pytest.raises(ValueError, match="run_id is empty"):
        remove_sandboxes(SandboxConfig(), run_id="")
    with pytest.raises(ValueError, match="lane is empty"):
        remove_sandboxes(SandboxConfig(), run_id="r", lane="")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['docker_host'\]"):
        remove_sandboxes(SandboxConfig(), run_id="r", docker_host="unix:///x.sock")
