"""The process sandbox against real processes: limits, timeouts, caps, isolation, files.

Every behaviour runs twice: with isolation ``none`` (rlimits only) and ``auto`` (bubblewrap
when it works on this machine, else the same as ``none``). Isolation-dependent tests assert
the isolated behaviour under bwrap and the documented non-isolation without it.
"""

from __future__ import annotations

import os
import random
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoray.config import SandboxConfig
from autoray.errors import ConfigError, SandboxUnavailableError
from autoray.sandbox import ProcessSandbox, create_sandbox, preflight_sandbox
from autoray.sandbox import process as process_module
from autoray.sandbox.base import TIMEOUT_EXIT_CODE

CAP = 4096


@pytest.fixture(params=["none", "auto"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProcessSandbox]:
    config = SandboxConfig(output_cap_bytes=CAP, memory_mb=256, timeout_s=60)
    box = ProcessSandbox(config, base_dir=str(tmp_path), isolation=request.param)
    box.start("test:process:model:v:0:1")
    yield box
    box.destroy()


def _token() -> str:
    """A sleep duration unique to this test, to find its processes in /proc."""
    return f"{random.randint(100, 999)}.{random.randint(100000, 999999)}"


def _live_processes_with(token: str) -> list[int]:
    """Pids whose command line contains ``token``; zombies (already dead) do not count."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_exec_runs_bash_in_the_root_and_separates_streams(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec('echo "out $BASH_VERSION"; echo err >&2; pwd; exit 3', timeout_s=10)
    assert result.exit_code == 3
    lines = result.stdout.splitlines()
    assert lines[0].startswith("out ") and lines[0] != "out "
    assert lines[1] == sandbox.root
    assert result.stderr == "err\n"
    assert not result.timed_out and not result.truncated
    assert 0 < result.duration_ms < 10_000


def test_files_round_trip_between_the_host_and_commands(sandbox: ProcessSandbox) -> None:
    text = 'héllo "wörld"\r\n$HOME `x` \\ \t\n\n'
    sandbox.write_file("deep/er/file.txt", text)
    assert sandbox.read_file("deep/er/file.txt") == text
    assert sandbox.exec("cat deep/er/file.txt", timeout_s=10).stdout == text
    sandbox.exec("printf 'from bash' > made.txt", timeout_s=10)
    assert sandbox.read_file("made.txt") == "from bash"
    sandbox.write_file("empty.txt", "")
    assert sandbox.read_file("empty.txt") == ""


def test_read_file_limits_and_errors(sandbox: ProcessSandbox) -> None:
    sandbox.write_file("big.txt", "a" * 100)
    assert sandbox.read_file("big.txt", max_bytes=10) == "a" * 10
    with pytest.raises(FileNotFoundError, match="no file 'missing.txt' in the sandbox"):
        sandbox.read_file("missing.txt")
    with pytest.raises(ValueError, match="max_bytes must be >= 1"):
        sandbox.read_file("big.txt", max_bytes=0)
    sandbox.exec("printf '\\xff\\xfeok' > bin.dat", timeout_s=10)
    assert sandbox.read_file("bin.dat") == "\ufffd\ufffdok"


def test_new_workdir_is_clean_and_relative(sandbox: ProcessSandbox) -> None:
    workdir = sandbox.new_workdir("case-1")
    assert workdir == "cases/case-1"
    sandbox.write_file(f"{workdir}/left.txt", "old")
    sandbox.exec("mkdir -p sub && chmod 000 sub", timeout_s=10, cwd=workdir)
    assert sandbox.new_workdir("case-1") == workdir
    assert sandbox.exec("ls -A", timeout_s=10, cwd=workdir).stdout == ""
    odd = sandbox.new_workdir("../../escape me")
    assert odd.startswith("cases/") and odd.count("/") == 1
    assert os.path.isdir(os.path.join(sandbox.root, odd))


def test_timeout_kills_the_command_and_its_background_children(sandbox: ProcessSandbox) -> None:
    token = _token()
    started = time.monotonic()
    result = sandbox.exec(f"sleep {token} & sleep 1000", timeout_s=1)
    assert result.timed_out
    assert result.exit_code == TIMEOUT_EXIT_CODE
    assert time.monotonic() - started < 10
    assert _live_processes_with(token) == []


def test_background_jobs_do_not_outlive_their_command(sandbox: ProcessSandbox) -> None:
    token = _token()
    started = time.monotonic()
    result = sandbox.exec(f"sleep {token} & echo started", timeout_s=30)
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "started\n", False)
    assert time.monotonic() - started < 5
    assert _live_processes_with(token) == []


@pytest.mark.parametrize("command", ["head -c 3G /dev/zero", "yes", "yes >&2"])
def test_a_flood_of_output_is_cut_at_the_cap_quickly(sandbox: ProcessSandbox, command: str) -> None:
    started = time.monotonic()
    result = sandbox.exec(command, timeout_s=30)
    assert time.monotonic() - started < 10
    assert result.truncated and not result.timed_out
    assert result.exit_code == 137  # killed once far past the cap
    assert len(result.stdout.encode()) + len(result.stderr.encode()) == CAP


def test_output_at_the_cap_is_not_truncated(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec(f"head -c {CAP} /dev/zero | tr '\\0' x", timeout_s=10)
    assert (result.stdout, result.truncated, result.exit_code) == ("x" * CAP, False, 0)
    over = sandbox.exec(f"head -c {CAP + 1} /dev/zero | tr '\\0' x", timeout_s=10)
    assert (over.stdout, over.truncated, over.exit_code) == ("x" * CAP, True, 0)


def test_environment_is_scrubbed(sandbox: ProcessSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    result = sandbox.exec("env", timeout_s=10)
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "OPENAI_API_KEY" not in env
    assert "sk-test-must-not-leak" not in result.stdout
    assert env["HOME"] == sandbox.root
    assert env["TMPDIR"] == os.path.join(sandbox.root, "tmp")
    assert env["LANG"] == "C.UTF-8"
    assert env["PATH"] == process_module.SANDBOX_PATH
    assert sandbox.exec('touch "$TMPDIR/t" && echo ok', timeout_s=10).stdout == "ok\n"


def test_network_is_cut_only_under_bwrap(sandbox: ProcessSandbox) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 3)'"
        result = sandbox.exec(probe, timeout_s=20)
    interfaces = sandbox.exec("tail -n +3 /proc/net/dev | cut -d: -f1", timeout_s=10).stdout.split()
    if sandbox.isolated:
        assert result.exit_code != 0 and "Error" in result.stderr
        assert interfaces == ["lo"]
    else:  # documented: without bwrap the host's network is reachable
        assert result.exit_code == 0, result.stderr


def test_host_filesystem_is_hidden_only_under_bwrap(
    sandbox: ProcessSandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("host secret")
    result = sandbox.exec(f"cat {outside}", timeout_s=10)
    if sandbox.isolated:
        assert result.exit_code != 0 and "host secret" not in result.stdout
        write = sandbox.exec("touch /usr/autoray-sandbox-probe", timeout_s=10)
        assert write.exit_code != 0 and "Read-only file system" in write.stderr
        visible = sandbox.exec("ls /proc | grep -c '^[0-9]'", timeout_s=10).stdout
        assert int(visible) < 10  # its own pid namespace: only the command's processes
    else:  # documented: without bwrap the user's files are reachable
        assert result.stdout == "host secret"


def test_memory_limit_stops_a_large_allocation(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec("python3 -c 'x = bytearray(600 * 1024 * 1024)'", timeout_s=20)
    assert result.exit_code != 0
    assert "MemoryError" in result.stderr


def test_file_size_limit_stops_a_runaway_writer(
    sandbox: ProcessSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_module, "FILE_SIZE_LIMIT_BYTES", 1 << 20)
    result = sandbox.exec("head -c 5M /dev/zero > big.bin", timeout_s=20)
    assert result.exit_code == 128 + 25  # SIGXFSZ
    assert os.path.getsize(os.path.join(sandbox.root, "big.bin")) == 1 << 20


def test_cpu_time_limit_stops_a_busy_loop(tmp_path: Path) -> None:
    box = ProcessSandbox(SandboxConfig(cpu_time_s=1), base_dir=str(tmp_path), isolation="none")
    box.start("cpu")
    try:
        result = box.exec("python3 -c 'while True: pass'", timeout_s=30)
    finally:
        box.destroy()
    assert not result.timed_out
    assert result.exit_code in (128 + 24, 137)  # SIGXCPU, or SIGKILL at the hard limit


def test_pids_limit_is_set_only_where_the_kernel_enforces_it() -> None:
    limits = {which: soft for which, soft, _ in process_module._limits(SandboxConfig()).values}
    if os.geteuid() == 0:  # documented: root is exempt from RLIMIT_NPROC
        assert resource.RLIMIT_NPROC not in limits
    else:
        assert limits[resource.RLIMIT_NPROC] >= SandboxConfig().pids_limit
    assert limits[resource.RLIMIT_AS] == 512 << 20
    assert limits[resource.RLIMIT_CORE] == 0


def test_paths_escaping_the_sandbox_are_rejected(sandbox: ProcessSandbox) -> None:
    for bad in ("../outside.txt", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError, match="sandbox path"):
            sandbox.write_file(bad, "x")
        with pytest.raises(ValueError, match="sandbox path"):
            sandbox.read_file(bad)
        with pytest.raises(ValueError, match="sandbox path"):
            sandbox.exec("true", timeout_s=5, cwd=bad)


def test_symlinks_cannot_lead_host_file_access_outside(
    sandbox: ProcessSandbox, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("target")
    os.symlink(outside, os.path.join(sandbox.root, "link"))
    with pytest.raises(ValueError, match="leads outside the sandbox through a symlink"):
        sandbox.write_file("link/planted.txt", "x")
    with pytest.raises(ValueError, match="through a symlink"):
        sandbox.read_file("link/anything")
    assert list(outside.iterdir()) == []


def test_missing_cwd_is_the_commands_failure(sandbox: ProcessSandbox) -> None:
    result = sandbox.exec("true", timeout_s=5, cwd="cases/never-made")
    assert result.exit_code == 126
    assert "'cases/never-made' is not an existing directory" in result.stderr


def test_start_is_idempotent_and_refuses_a_second_lane(sandbox: ProcessSandbox) -> None:
    root = sandbox.root
    sandbox.start("test:process:model:v:0:1")
    assert sandbox.root == root
    with pytest.raises(ValueError, match="already started for lane"):
        sandbox.start("another:lane")
    with pytest.raises(ValueError, match="identity is empty"):
        ProcessSandbox(SandboxConfig()).start("")


def test_lane_directory_is_reused_with_the_same_base_dir(tmp_path: Path) -> None:
    first = ProcessSandbox(SandboxConfig(), base_dir=str(tmp_path))
    first.start("run:m:v:0:2")
    first.write_file("kept.txt", "still here")
    second = ProcessSandbox(SandboxConfig(), base_dir=str(tmp_path))
    second.start("run:m:v:0:2")
    assert second.root == first.root
    assert second.read_file("kept.txt") == "still here"
    second.destroy()
    assert not os.path.exists(first.root) and tmp_path.is_dir()  # base_dir is the caller's
    first.destroy()  # already gone: logs, never raises


def test_destroy_removes_its_own_temp_dir_and_is_idempotent() -> None:
    box = create_sandbox(SandboxConfig())
    assert isinstance(box, ProcessSandbox)
    box.start("run:m::0:0")
    base = os.path.dirname(box.root)
    assert os.path.basename(base).startswith("autoray-sandbox-")
    assert os.stat(base).st_mode & 0o077 == 0  # private to this user
    box.exec("mkdir -p locked/in && touch locked/in/f && chmod 000 locked", timeout_s=10)
    box.destroy()
    assert not os.path.exists(base)
    box.destroy()
    with pytest.raises(SandboxUnavailableError, match="before start"):
        box.exec("true", timeout_s=1)


def test_unknown_isolation_and_missing_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"isolation 'chroot' is unknown; choose"):
        ProcessSandbox(SandboxConfig(), isolation="chroot")  # type: ignore[arg-type]
    real_which = process_module.shutil.which
    monkeypatch.setattr(
        process_module.shutil,
        "which",
        lambda name, **kw: None if name == "bwrap" else real_which(name, **kw),
    )
    made: list[str] = []
    real_mkdtemp = process_module.tempfile.mkdtemp

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(process_module.tempfile, "mkdtemp", recording_mkdtemp)
    box = ProcessSandbox(SandboxConfig(), isolation="bwrap")
    with pytest.raises(SandboxUnavailableError, match=r"bwrap is not installed; install bubble"):
        box.start("needs-bwrap")
    assert len(made) == 1 and not os.path.exists(made[0])  # a failed start cleans up
    assert box.identity is None and box.root == ""
    with pytest.raises(SandboxUnavailableError, match="install bubblewrap"):
        preflight_sandbox(SandboxConfig(), isolation="bwrap")
    auto = ProcessSandbox(SandboxConfig(), isolation="auto")
    auto.start("falls-back")
    try:
        assert not auto.isolated
        assert auto.exec("echo fine", timeout_s=5).stdout == "fine\n"
    finally:
        auto.destroy()


def test_preflight_checks_the_base_directory(tmp_path: Path) -> None:
    preflight_sandbox(SandboxConfig())
    preflight_sandbox(SandboxConfig(), base_dir=str(tmp_path))
    missing = tmp_path / "nope"
    with pytest.raises(SandboxUnavailableError, match=r"'.*nope' is not a writable directory"):
        preflight_sandbox(SandboxConfig(), base_dir=str(missing))


def test_a_command_longer_than_one_exec_argument_runs(sandbox: ProcessSandbox) -> None:
    payload = "y" * 200_000
    result = sandbox.exec(
        f"cat > big.txt <<'EOF'\n{payload}\nEOF\necho \"$((40 + 2))\"", timeout_s=20
    )
    assert (result.exit_code, result.stdout) == (0, "42\n")
    assert sandbox.read_file("big.txt") == payload + "\n"
    assert sandbox.exec("echo xxxxxxxxxx | wc -c", timeout_s=10).stdout == "11\n"
    leftovers = sandbox.exec('ls -A "$TMPDIR"', timeout_s=10).stdout
    assert ".autoray-cmd-" not in leftovers  # the script file is removed afterwards
