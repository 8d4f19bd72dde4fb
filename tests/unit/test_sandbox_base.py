"""The sandbox interface's pure parts: path joining, names, output capping, the registry."""

from __future__ import annotations

import re

import pytest

from autoray.config import SandboxConfig
from autoray.errors import ConfigError, SandboxUnavailableError
from autoray.sandbox import (
    BACKENDS,
    DockerSandbox,
    FaultSandbox,
    OutputBuffer,
    ProcessSandbox,
    container_name,
    create_sandbox,
    safe_join,
    safe_name,
)
from autoray.sandbox.base import check_timeout, workdir_path


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("", "/sandbox"),
        (".", "/sandbox"),
        ("a/b.txt", "/sandbox/a/b.txt"),
        ("a/../b", "/sandbox/b"),
        ("./a//b/", "/sandbox/a/b"),
    ],
)
def test_safe_join_keeps_paths_inside_the_root(relative: str, expected: str) -> None:
    assert safe_join("/sandbox", relative) == expected


@pytest.mark.parametrize("relative", ["..", "../x", "a/../../x", "a/b/../../../etc/passwd"])
def test_safe_join_rejects_dotdot_escapes(relative: str) -> None:
    with pytest.raises(ValueError, match=r"escapes the sandbox root.*stays inside") as info:
        safe_join("/sandbox", relative)
    assert repr(relative) in str(info.value)


def test_safe_join_rejects_absolute_paths_and_nul() -> None:
    with pytest.raises(ValueError, match=r"'/etc/passwd' is absolute; give a path relative"):
        safe_join("/sandbox", "/etc/passwd")
    with pytest.raises(ValueError, match="NUL byte"):
        safe_join("/sandbox", "a\0b")


def test_safe_join_does_not_confuse_a_sibling_prefix() -> None:
    with pytest.raises(ValueError, match="escapes"):
        safe_join("/sandbox", "../sandbox2/x")


def test_safe_name_keeps_safe_names_and_hashes_the_rest() -> None:
    assert safe_name("impl-fd-001") == "impl-fd-001"
    slashed, underscored = safe_name("a/b"), safe_name("a_b")
    assert underscored == "a_b"
    assert slashed != underscored
    assert re.fullmatch(r"a_b-[0-9a-f]{10}", slashed)
    assert safe_name("..") != ".." and "/" not in safe_name("..")
    assert re.fullmatch(r"x-[0-9a-f]{10}", safe_name("///"))


def test_safe_name_is_deterministic_and_bounded() -> None:
    raw = "run-1:" + "m" * 300 + ":v:0:1"
    assert safe_name(raw) == safe_name(raw)
    assert len(safe_name(raw)) <= 40 + 11


def test_workdir_path_is_relative_under_cases() -> None:
    assert workdir_path("c1") == "cases/c1"
    assert workdir_path("../../etc").startswith("cases/")
    assert "/" not in workdir_path("../../etc").removeprefix("cases/")
    with pytest.raises(ValueError, match="empty"):
        workdir_path("")


def test_container_name_uses_docker_charset_and_is_unique_per_identity() -> None:
    names = {container_name(f"run:model:{v}:0:1") for v in ("", "a", "a/b", "a_b", "a:b")}
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name)
        assert name.startswith("autoray-")
    # Even an identity already in docker's charset gets the hash, so names never collide.
    assert re.fullmatch(r"autoray-plain-[0-9a-f]{10}", container_name("plain"))


def test_output_buffer_keeps_up_to_the_cap() -> None:
    buffer = OutputBuffer(5)
    buffer.feed(b"abc")
    assert (buffer.text(), buffer.truncated) == ("abc", False)
    buffer.feed(b"de")
    assert (buffer.text(), buffer.truncated) == ("abcde", False)
    buffer.feed(b"f")
    assert (buffer.text(), buffer.truncated, buffer.received) == ("abcde", True, 6)


def test_output_buffer_overflow_threshold() -> None:
    buffer = OutputBuffer(10)
    buffer.feed(b"x" * (1 << 20))
    assert not buffer.overflowing  # 1 MiB is always allowed to drain
    buffer.feed(b"x")
    assert buffer.overflowing
    big = OutputBuffer(1 << 20)
    big.feed(b"x" * (4 << 20))
    assert not big.overflowing
    big.feed(b"x")
    assert big.overflowing


def test_output_buffer_replaces_a_utf8_sequence_cut_at_the_cap() -> None:
    buffer = OutputBuffer(2)
    buffer.feed("é!".encode())  # 3 bytes: the cap splits nothing, "é" is 2 bytes
    assert buffer.text() == "é"
    cut = OutputBuffer(1)
    cut.feed("é".encode())
    assert cut.text() == "\ufffd"


def test_check_timeout_is_bounded_by_the_config() -> None:
    config = SandboxConfig(timeout_s=10)
    assert check_timeout(3, config) == 3.0
    assert check_timeout(60, config) == 10.0
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="timeout_s must be > 0"):
            check_timeout(bad, config)


def test_registry_names_every_backend() -> None:
    assert dict(BACKENDS) == {
        "process": ProcessSandbox,
        "docker": DockerSandbox,
        "fault": FaultSandbox,
    }
    assert isinstance(create_sandbox(SandboxConfig()), ProcessSandbox)
    docker_box = create_sandbox(SandboxConfig(backend="docker"), docker_host="unix:///x.sock")
    assert isinstance(docker_box, DockerSandbox)
    assert docker_box.image == "autoray-sandbox:latest"


def test_create_sandbox_rejects_unknown_options_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"\['docker_host'\].*'process'.*valid: \['base_dir'"):
        create_sandbox(SandboxConfig(), docker_host="unix:///x.sock")


def test_use_before_start_is_an_infrastructure_error() -> None:
    for box in (ProcessSandbox(SandboxConfig()), DockerSandbox(SandboxConfig(backend="docker"))):
        with pytest.raises(SandboxUnavailableError, match=r"before start\(\)"):
            box.exec("true", timeout_s=1)
        with pytest.raises(SandboxUnavailableError):
            box.read_file("x")
        box.destroy()  # nothing started: a no-op, never an error
