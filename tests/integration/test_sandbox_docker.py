"""The docker sandbox against a real engine (``docker`` marker), and its failure modes.

Tests without the marker need no engine: they check that an unreachable engine is reported
as a SandboxUnavailableError that says what to do.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import docker
import pytest
from docker.errors import NotFound

from autoray.config import SandboxConfig
from autoray.errors import SandboxUnavailableError
from autoray.sandbox import DockerSandbox, container_name, create_sandbox, preflight_sandbox
from autoray.sandbox.base import TIMEOUT_EXIT_CODE

CAP = 4096
NO_ENGINE = "unix:///nonexistent.sock"


def _lane() -> str:
    return f"test:{uuid.uuid4().hex[:8]}:model:v:0:1"


def _token() -> str:
    return f"{random.randint(100, 999)}.{random.randint(100000, 999999)}"


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture
def config(docker_sandbox_config: SandboxConfig) -> SandboxConfig:
    return docker_sandbox_config.model_copy(
        update={"output_cap_bytes": CAP, "memory_mb": 256, "pids_limit": 64, "timeout_s": 60}
    )


@pytest.fixture
def sandbox(config: SandboxConfig) -> Iterator[DockerSandbox]:
    box = DockerSandbox(config)
    box.start(_lane())
    yield box
    box.destroy()


def _processes(box: DockerSandbox) -> str:
    listing = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done"
    return box.exec(listing, timeout_s=10).stdout


# --- no engine needed -----------------------------------------------------------------------


def test_unreachable_engine_fails_start_with_what_to_do() -> None:
    box = create_sandbox(SandboxConfig(backend="docker"), docker_host=NO_ENGINE)
    with pytest.raises(SandboxUnavailableError) as info:
        box.start(_lane())
    message = str(info.value)
    assert NO_ENGINE in message
    assert "scripts/docker-engine.sh up" in message and "'process'" in message
    with pytest.raises(SandboxUnavailableError, match="before start"):
        box.exec("true", timeout_s=1)
    box.destroy()


def test_unreachable_engine_fails_preflight() -> None:
    with pytest.raises(SandboxUnavailableError, match="not reachable at 'unix:///nonexistent"):
        DockerSandbox.preflight(SandboxConfig(backend="docker"), docker_host=NO_ENGINE)
    with pytest.raises(SandboxUnavailableError, match="docker-engine.sh up"):
        preflight_sandbox(SandboxConfig(backend="docker"), docker_host=NO_ENGINE)


# --- with an engine -------------------------------------------------------------------------


@pytest.mark.docker
def test_container_is_named_labelled_and_limited(
    sandbox: DockerSandbox, config: SandboxConfig, engine: docker.DockerClient
) -> None:
    assert sandbox.identity is not None
    container = engine.containers.get(container_name(sandbox.identity))
    assert container.id == sandbox.container_id
    assert container.labels["autoray.lane"] == sandbox.identity
    host = container.attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == config.memory_mb << 20
    assert host["PidsLimit"] == config.pids_limit
    assert host["Init"] is True
    assert container.attrs["Config"]["WorkingDir"] == "/sandbox"


@pytest.mark.docker
def test_exec_write_read_destroy(sandbox: DockerSandbox, engine: docker.DockerClient) -> None:
    result = sandbox.exec('echo "out $BASH_VERSION"; echo err >&2; pwd; exit 3', timeout_s=10)
    assert result.exit_code == 3
    assert result.stdout.startswith("out ") and result.stdout.endswith("\n/sandbox\n")
    assert result.stdout.split("\n")[0] != "out "  # bash, not sh
    assert (result.stderr, result.timed_out, result.truncated) == ("err\n", False, False)
    text = "héllo 'quotes' \"double\" $HOME `x` \\ \t\r\n\x00nul\n\n"
    sandbox.write_file("deep/er/file.txt", text)
    assert sandbox.read_file("deep/er/file.txt") == text
    assert sandbox.exec("cat deep/er/file.txt", timeout_s=10).stdout == text
    sandbox.exec("printf 'from bash' > made.txt", timeout_s=10)
    assert sandbox.read_file("made.txt") == "from bash"
    container_id = sandbox.container_id
    sandbox.destroy()
    with pytest.raises(NotFound):
        engine.containers.get(container_id)
    with pytest.raises(SandboxUnavailableError, match="before start"):
        sandbox.exec("true", timeout_s=1)


@pytest.mark.docker
def test_read_file_limits_links_and_errors(sandbox: DockerSandbox) -> None:
    sandbox.write_file("big.txt", "a" * 100)
    assert sandbox.read_file("big.txt", max_bytes=10) == "a" * 10
    sandbox.exec("ln -s big.txt link.txt && ln -s /etc/hostname host", timeout_s=10)
    assert sandbox.read_file("link.txt") == "a" * 100
    assert (
        sandbox.read_file("host").strip() == sandbox.exec("hostname", timeout_s=10).stdout.strip()
    )
    with pytest.raises(FileNotFoundError, match="no file 'missing.txt' in the sandbox"):
        sandbox.read_file("missing.txt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        sandbox.read_file("cases")
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        sandbox.read_file("big.txt", max_bytes=0)


@pytest.mark.docker
def test_new_workdir_is_clean(sandbox: DockerSandbox) -> None:
    workdir = sandbox.new_workdir("case-1")
    assert workdir == "cases/case-1"
    sandbox.write_file(f"{workdir}/left.txt", "old")
    sandbox.exec("mkdir -p sub/deeper && chmod 000 sub", timeout_s=10, cwd=workdir)
    assert sandbox.new_workdir("case-1") == workdir
    listing = sandbox.exec("ls -A", timeout_s=10, cwd=workdir)
    assert (listing.exit_code, listing.stdout) == (0, "")
    odd = sandbox.new_workdir("../../escape me")
    assert odd.startswith("cases/") and odd.count("/") == 1
    assert sandbox.exec("pwd", timeout_s=10, cwd=odd).stdout == f"/sandbox/{odd}\n"


@pytest.mark.docker
def test_timeout_kills_the_command_and_its_children(sandbox: DockerSandbox) -> None:
    token = _token()
    started = time.monotonic()
    result = sandbox.exec(f"sleep {token} & sleep 1000", timeout_s=1)
    assert result.timed_out
    assert result.exit_code == TIMEOUT_EXIT_CODE
    assert time.monotonic() - started < 5
    assert token not in _processes(sandbox)


@pytest.mark.docker
def test_background_jobs_do_not_outlive_their_command(sandbox: DockerSandbox) -> None:
    token = _token()
    result = sandbox.exec(f"sleep {token} & echo started", timeout_s=30)
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "started\n", False)
    assert result.duration_ms < 5000
    assert token not in _processes(sandbox)


@pytest.mark.docker
@pytest.mark.parametrize("command", ["head -c 3G /dev/zero", "yes", "yes >&2"])
def test_a_flood_of_output_is_cut_at_the_cap_quickly(sandbox: DockerSandbox, command: str) -> None:
    started = time.monotonic()
    result = sandbox.exec(command, timeout_s=60)
    assert time.monotonic() - started < 10
    assert result.truncated and not result.timed_out
    assert result.exit_code == 137
    assert len(result.stdout.encode()) + len(result.stderr.encode()) == CAP
    assert "yes" not in _processes(sandbox).split()  # killed, not left writing
    assert sandbox.exec("echo still usable", timeout_s=10).stdout == "still usable\n"


@pytest.mark.docker
def test_the_container_has_no_network(sandbox: DockerSandbox) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)'"
        result = sandbox.exec(probe, timeout_s=20)
    assert result.exit_code != 0
    assert "ConnectionRefusedError" in result.stderr
    devices = sandbox.exec("tail -n +3 /proc/net/dev | cut -d: -f1", timeout_s=10).stdout.split()
    assert devices == ["lo"]


@pytest.mark.docker
def test_environment_is_the_containers_own(
    sandbox: DockerSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    env = sandbox.exec("env", timeout_s=10).stdout
    assert "OPENAI_API_KEY" not in env and "sk-test" not in env
    assert "HOME=/sandbox\n" in env and "TMPDIR=/sandbox/tmp\n" in env


@pytest.mark.docker
def test_memory_limit_stops_a_large_allocation(sandbox: DockerSandbox) -> None:
    result = sandbox.exec(
        "python3 -c 'x = bytearray(600 * 1024 * 1024); print(len(x))'", timeout_s=20
    )
    assert result.exit_code != 0 and not result.timed_out


@pytest.mark.docker
def test_restart_reattaches_to_the_same_container(
    sandbox: DockerSandbox, config: SandboxConfig, engine: docker.DockerClient
) -> None:
    assert sandbox.identity is not None
    sandbox.write_file("kept.txt", "from the first attempt")
    retry = DockerSandbox(config)
    retry.start(sandbox.identity)
    assert retry.container_id == sandbox.container_id
    assert retry.read_file("kept.txt") == "from the first attempt"
    engine.containers.get(sandbox.container_id).stop(timeout=1)
    again = DockerSandbox(config)
    again.start(sandbox.identity)
    assert again.container_id == sandbox.container_id  # restarted, files kept
    assert again.read_file("kept.txt") == "from the first attempt"
    lane_containers = engine.containers.list(
        all=True, filters={"label": f"autoray.lane={sandbox.identity}"}
    )
    assert [c.id for c in lane_containers] == [sandbox.container_id]


@pytest.mark.docker
def test_start_is_idempotent_and_refuses_a_second_lane(sandbox: DockerSandbox) -> None:
    assert sandbox.identity is not None
    container_id = sandbox.container_id
    sandbox.start(sandbox.identity)
    assert sandbox.container_id == container_id
    with pytest.raises(ValueError, match="already started for lane"):
        sandbox.start("another:lane")


@pytest.mark.docker
def test_a_vanished_container_is_an_infrastructure_error(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    engine.containers.get(sandbox.container_id).remove(force=True)
    with pytest.raises(SandboxUnavailableError, match="stopped or vanished.*retrying the lane"):
        sandbox.exec("true", timeout_s=5)
    with pytest.raises(SandboxUnavailableError, match="stopped or vanished"):
        sandbox.write_file("x.txt", "x")
    sandbox.destroy()  # already removed: must not raise
    sandbox.destroy()


@pytest.mark.docker
def test_a_container_killed_mid_command_is_an_infrastructure_error(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    container = engine.containers.get(sandbox.container_id)
    remover = threading.Timer(0.5, container.remove, kwargs={"force": True})
    remover.start()
    try:
        with pytest.raises(SandboxUnavailableError, match="stopped or vanished"):
            sandbox.exec("sleep 30", timeout_s=20)
    finally:
        remover.join()


@pytest.mark.docker
def test_a_command_killing_itself_is_only_the_commands_failure(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("kill -9 $$", timeout_s=10)
    assert (result.exit_code, result.timed_out) == (137, False)
    assert sandbox.exec("echo alive", timeout_s=10).stdout == "alive\n"


@pytest.mark.docker
def test_start_again_after_the_container_vanished_creates_a_fresh_one(
    sandbox: DockerSandbox, engine: docker.DockerClient
) -> None:
    assert sandbox.identity is not None
    old_id = sandbox.container_id
    engine.containers.get(old_id).remove(force=True)
    sandbox.start(sandbox.identity)
    assert sandbox.container_id != old_id
    assert sandbox.exec("echo back", timeout_s=10).stdout == "back\n"


@pytest.mark.docker
def test_missing_image_says_how_to_build_it(docker_sandbox_config: SandboxConfig) -> None:
    config = docker_sandbox_config.model_copy(update={"image": "autoray-no-such-image:never"})
    with pytest.raises(SandboxUnavailableError, match=r"scripts/docker-engine.sh image"):
        DockerSandbox.preflight(config)
    box = DockerSandbox(config)
    with pytest.raises(SandboxUnavailableError, match=r"'autoray-no-such-image:never' not found"):
        box.start(_lane())
    box.destroy()


@pytest.mark.docker
def test_paths_escaping_the_sandbox_are_rejected(sandbox: DockerSandbox) -> None:
    for bad in ("../outside.txt", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError, match="sandbox path"):
            sandbox.write_file(bad, "x")
        with pytest.raises(ValueError, match="sandbox path"):
            sandbox.read_file(bad)
        with pytest.raises(ValueError, match="sandbox path"):
            sandbox.exec("true", timeout_s=5, cwd=bad)


@pytest.mark.docker
def test_missing_cwd_is_the_commands_failure(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("true", timeout_s=5, cwd="cases/never-made")
    assert result.exit_code == 126
    assert "never-made" in result.stderr and result.stdout == ""


@pytest.mark.docker
def test_a_command_longer_than_one_exec_argument_runs(sandbox: DockerSandbox) -> None:
    payload = "y" * 200_000
    result = sandbox.exec(
        f"cat > big.txt <<'EOF'\n{payload}\nEOF\necho \"$((40 + 2))\"", timeout_s=20
    )
    assert (result.exit_code, result.stdout) == (0, "42\n")
    assert sandbox.read_file("big.txt") == payload + "\n"
    assert sandbox.exec("echo xxxxxxxxxx | wc -c", timeout_s=10).stdout == "11\n"
    leftovers = sandbox.exec("ls -A /tmp", timeout_s=10).stdout
    assert ".autoray-cmd-" not in leftovers  # the script file is removed afterwards
