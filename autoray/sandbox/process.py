"""The ``process`` sandbox: the embedded default, needing no container engine.

Each lane gets a private directory, at a fixed place for a run's lane
(``<sandbox root>/<run>/<lane>``), so a retry clears what its killed predecessor left and
:func:`~autoray.sandbox.remove_sandboxes` finds every lane of a run. Each command runs as
``bash -c`` in its own process group with rlimits, a scrubbed environment and capped output, and
the whole group is killed when the command ends or times out. When bubblewrap (``bwrap``) works on
the machine, commands also run in fresh namespaces: no network, no view of other processes,
read-only system directories and no file outside the sandbox. docs/ARCHITECTURE.md
("Sandboxes") lists what this does not isolate.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from autoray.errors import ConfigError, SandboxUnavailableError
from autoray.sandbox.base import (
    TIMEOUT_EXIT_CODE,
    ExecResult,
    OutputBuffer,
    Sandbox,
    check_timeout,
    is_long_command,
    register_backend,
    safe_join,
    safe_name,
    sourced,
    workdir_path,
)

if TYPE_CHECKING:
    from autoray.config import SandboxConfig

log = logging.getLogger(__name__)

Isolation = Literal["auto", "bwrap", "none"]

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_ROOT_NAME = "autoray-sandboxes"
"""The default sandbox root: this directory under the system temp directory."""
FILE_SIZE_LIMIT_BYTES = 256 << 20
"""RLIMIT_FSIZE: the largest file one command may write, so a runaway writer is stopped."""

_READ_CHUNK = 1 << 16
_POLL_S = 0.05
_EXIT_DRAIN_S = 1.0
"""After the shell exits and its group is killed, how long to wait for the pipes to close: only a
process that left the group (``setsid``) can hold them longer, and it is not waited for."""
_PROBE_TIMEOUT_S = 10.0
_BWRAP_RO_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_BWRAP_ETC = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
)
"""Only what programs need from /etc: never all of it (it holds host secrets such as shadow)."""


@dataclass(frozen=True, slots=True)
class _Limits:
    """rlimits to set in the child between fork and exec; computed in the parent."""

    values: tuple[tuple[int, int, int], ...]

    def apply(self) -> None:
        # Runs in the forked child before exec: keep it to plain setrlimit calls.
        for which, soft, hard in self.values:
            resource.setrlimit(which, (soft, hard))


@register_backend
class ProcessSandbox(Sandbox):
    """A private directory and rlimited process groups (bubblewrap-isolated when available)."""

    backend = "process"
    options = frozenset({"base_dir", "isolation"})

    def __init__(
        self, config: SandboxConfig, *, base_dir: str | None = None, isolation: Isolation = "auto"
    ) -> None:
        super().__init__(config)
        self._isolation = _check_isolation(isolation)
        self._base_dir = base_dir
        self._created_base: str | None = None
        self._root = ""
        self._shell = ""
        self._bwrap: str | None = None

    @property
    def root(self) -> str:
        """Host path of the sandbox root (empty before start)."""
        return self._root

    @property
    def isolated(self) -> bool:
        """True when commands run under bubblewrap."""
        return self._bwrap is not None

    def start(self, identity: str, *, run_id: str | None = None) -> None:
        if self._check_identity(identity, run_id):
            return
        self._shell = _find_shell()
        self._root = self._lane_root(identity, run_id)
        try:
            if run_id is not None and os.path.lexists(self._root):
                log.info("lane %r: clearing its earlier sandbox at %s", identity, self._root)
                _force_rmtree(self._root)
            os.makedirs(os.path.join(self._root, "tmp"), mode=0o700, exist_ok=True)
            self._bwrap = _choose_bwrap(self._isolation, self._root)
        except BaseException:
            self._abandon()
            raise
        self.identity, self.run_id = identity, run_id
        log.info(
            "process sandbox for lane %r at %s: isolation %s%s",
            identity,
            self._root,
            "bwrap (no network, private filesystem and pids)" if self._bwrap else "rlimits only",
            "" if os.geteuid() else "; running as root, so the pids limit is not enforced",
        )

    def _lane_root(self, identity: str, run_id: str | None) -> str:
        """A run's lane: its fixed directory; no run: ``base_dir/<lane>`` or a fresh temp dir."""
        if run_id is not None:
            root = self._base_dir or sandbox_root(self.config)
            return os.path.realpath(lane_directory(root, run_id, identity))
        base = self._base_dir or self._make_base()
        return os.path.realpath(os.path.join(base, safe_name(identity)))

    def _abandon(self) -> None:
        """After a failed start: remove what we made (a run's lane dir or our own temp dir)."""
        target = self._created_base or self._root
        if target:
            with contextlib.suppress(OSError):
                _force_rmtree(target)
        self._root, self._created_base = "", None

    def _make_base(self) -> str:
        self._created_base = tempfile.mkdtemp(prefix="autoray-sandbox-")
        return self._created_base

    def new_workdir(self, name: str) -> str:
        self._check_started()
        relative = workdir_path(name)
        host = self._host_path(relative)
        if os.path.lexists(host):
            _force_rmtree(host)
        os.makedirs(host)
        return relative

    def exec(self, command: str, *, timeout_s: float, cwd: str | None = None) -> ExecResult:
        self._check_started()
        timeout = check_timeout(timeout_s, self.config)
        workdir = self._host_path(cwd or "")
        if not os.path.isdir(workdir):
            return _cwd_missing(cwd or "")
        started = time.monotonic()
        with self._runnable(command) as runnable:
            proc = self._spawn(runnable, workdir)
            out = OutputBuffer(self.config.output_cap_bytes)
            err = OutputBuffer(self.config.output_cap_bytes)
            ending = _collect(proc, {proc.stdout: out, proc.stderr: err}, started + timeout)
            exit_code = _finish(proc)
        return ExecResult(
            exit_code=TIMEOUT_EXIT_CODE if ending == "timeout" else exit_code,
            stdout=out.text(),
            stderr=err.text(),
            timed_out=ending == "timeout",
            truncated=out.truncated or err.truncated,
            duration_ms=(time.monotonic() - started) * 1000,
        )

    @contextlib.contextmanager
    def _runnable(self, command: str) -> Iterator[str]:
        """``command`` itself, or for a long one a command sourcing it from a script file."""
        if not is_long_command(command):
            yield command
            return
        script = os.path.join(self._root, "tmp", f".autoray-cmd-{secrets.token_hex(8)}")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(command)
        try:
            yield sourced(script)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(script)

    def _spawn(self, command: str, workdir: str) -> subprocess.Popen[bytes]:
        argv = [self._shell, "-c", command]
        if self._bwrap:
            argv = _bwrap_argv(self._bwrap, self._root, workdir) + argv
        return subprocess.Popen(
            argv,
            cwd=workdir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limits(self.config).apply,  # rlimits must be set in the child
        )

    def _env(self) -> dict[str, str]:
        """A minimal environment: the parent's variables (API keys) must never leak in."""
        return {
            "PATH": SANDBOX_PATH,
            "HOME": self._root,
            "TMPDIR": os.path.join(self._root, "tmp"),
            "LANG": "C.UTF-8",
        }

    def write_file(self, path: str, content: str) -> None:
        self._check_started()
        host = self._host_path(path)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with os.fdopen(os.open(host, flags, 0o644), "wb") as handle:
            handle.write(content.encode("utf-8"))

    def read_file(self, path: str, *, max_bytes: int = 1_000_000) -> str:
        self._check_started()
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes!r}")
        host = self._host_path(path)
        try:
            with open(host, "rb") as handle:
                data = handle.read(max_bytes)
        except FileNotFoundError:
            raise FileNotFoundError(
                errno.ENOENT, f"no file {path!r} in the sandbox", path
            ) from None
        return data.decode("utf-8", errors="replace")

    def destroy(self) -> None:
        if not self._root:
            return
        target = self._created_base or self._root
        _remove_quietly(target)
        if self.run_id is not None:
            _remove_empty_dir(os.path.dirname(self._root))
        self._root = ""
        self._created_base = None
        self.identity, self.run_id = None, None

    @classmethod
    def remove(
        cls,
        config: SandboxConfig,
        *,
        run_id: str,
        lane: str | None = None,
        base_dir: str | None = None,
        isolation: Isolation = "auto",
    ) -> int:
        """Remove the run's lane directories (or ``lane``'s) under the sandbox root."""
        root = base_dir or sandbox_root(config)
        run_dir = run_directory(root, run_id)
        targets = [lane_directory(root, run_id, lane)] if lane is not None else _entries(run_dir)
        removed = sum(_remove_quietly(target) for target in targets)
        _remove_empty_dir(run_dir)
        log.info("removed %d process sandbox(es) of run %r under %s", removed, run_id, root)
        return removed

    @classmethod
    def preflight(
        cls, config: SandboxConfig, *, base_dir: str | None = None, isolation: Isolation = "auto"
    ) -> None:
        _check_isolation(isolation)
        _find_shell()
        if base_dir is None:  # the sandbox root is ours to create; a caller's base_dir is not
            with contextlib.suppress(OSError):
                os.makedirs(sandbox_root(config), exist_ok=True)
        base = base_dir or sandbox_root(config)
        if not (os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK)):
            raise SandboxUnavailableError(
                f"process sandbox root {base!r} is not a writable directory; "
                "create it, or set sandbox.root to a writable directory"
            )
        if isolation == "bwrap":
            with tempfile.TemporaryDirectory(prefix="autoray-preflight-", dir=base) as probe:
                _choose_bwrap("bwrap", os.path.realpath(probe))

    def _host_path(self, relative: str) -> str:
        """The real host path of ``relative``; refuses escapes, including through symlinks.

        Matters most under bwrap: a command could plant ``link -> /etc`` and ask this (host,
        unconfined) process to write through it.
        """
        real = os.path.realpath(safe_join(self._root, relative))
        if real != self._root and not real.startswith(self._root + os.sep):
            raise ValueError(
                f"sandbox path {relative!r} leads outside the sandbox through a symlink; "
                "give a path inside it"
            )
        return real


def sandbox_root(config: SandboxConfig) -> str:
    """Where a node keeps the process sandboxes of runs: ``sandbox.root`` or a temp default."""
    return config.root or os.path.join(tempfile.gettempdir(), DEFAULT_ROOT_NAME)


def run_directory(root: str, run_id: str) -> str:
    """Where the lanes of ``run_id`` keep their directories under the sandbox ``root``."""
    return os.path.join(root, safe_name(run_id))


def lane_directory(root: str, run_id: str, identity: str) -> str:
    """A run's lane directory: the same for every attempt of the lane, on every node."""
    return os.path.join(run_directory(root, run_id), safe_name(identity))


def _entries(directory: str) -> list[str]:
    try:
        return sorted(entry.path for entry in os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("could not list process sandboxes in %s: %s", directory, exc)
        return []


def _remove_quietly(path: str) -> bool:
    """True when ``path`` was removed; already gone is no error, other failures are logged."""
    try:
        _force_rmtree(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("could not remove process sandbox %s: %s", path, exc)
        return False
    return True


def _remove_empty_dir(path: str) -> None:
    """Remove a run's directory once its last lane is gone (another lane may still be there)."""
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _cwd_missing(cwd: str) -> ExecResult:
    """Like a shell that cannot cd: the command's failure (status 126), not the sandbox's."""
    message = f"sandbox cwd {cwd!r} is not an existing directory; create it first (new_workdir)"
    return ExecResult(126, "", message, timed_out=False, truncated=False, duration_ms=0.0)


def _check_isolation(isolation: str) -> Isolation:
    choices = get_args(Isolation)
    if isolation not in choices:
        raise ConfigError(f"process sandbox isolation {isolation!r} is unknown; choose {choices}")
    return isolation  # type: ignore[return-value]


def _find_shell() -> str:
    shell = shutil.which("bash", path=SANDBOX_PATH) or shutil.which("sh", path=SANDBOX_PATH)
    if shell is None:
        raise SandboxUnavailableError(
            f"neither bash nor sh found on {SANDBOX_PATH!r}; install bash for the process sandbox"
        )
    return shell


def _choose_bwrap(isolation: Isolation, root: str) -> str | None:
    """The bwrap to use, after checking it really works here (user namespaces may be off)."""
    if isolation == "none":
        return None
    bwrap = shutil.which("bwrap")
    problem = "bwrap is not installed" if bwrap is None else _probe_bwrap(bwrap, root)
    if problem is None:
        return bwrap
    if isolation == "bwrap":
        raise SandboxUnavailableError(
            f"process sandbox isolation 'bwrap' requested but {problem}; install bubblewrap "
            "(apt-get install bubblewrap) and allow user namespaces, or use isolation 'auto'"
        )
    if bwrap is not None:
        log.warning("bwrap found but unusable (%s); process sandbox falls back to rlimits", problem)
    return None


def _probe_bwrap(bwrap: str, root: str) -> str | None:
    argv = [*_bwrap_argv(bwrap, root, root), "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=_PROBE_TIMEOUT_S, env={"PATH": SANDBOX_PATH}
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"running it failed ({exc})"
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", errors="replace").strip()[:200]
        return f"it exited {done.returncode}: {reason!r}"
    return None


def _bwrap_argv(bwrap: str, root: str, workdir: str) -> list[str]:
    argv = [bwrap, "--unshare-all", "--die-with-parent"]
    for path in (*_BWRAP_RO_DIRS, *_BWRAP_ETC, *sorted(glob.glob("/etc/python3*"))):
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    return argv + ["--bind", root, root, "--chdir", workdir]


def _limits(config: SandboxConfig) -> _Limits:
    wanted = [
        (resource.RLIMIT_AS, config.memory_mb << 20),
        (resource.RLIMIT_CPU, config.cpu_time_s),
        (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT_BYTES),
        (resource.RLIMIT_CORE, 0),
    ]
    if os.geteuid() != 0:
        # RLIMIT_NPROC counts every task of the user (Ray workers included), so allow
        # pids_limit more than the user has now. Root ignores it altogether.
        wanted.append((resource.RLIMIT_NPROC, _user_task_count(os.getuid()) + config.pids_limit))
    return _Limits(tuple(_bounded(which, value) for which, value in wanted))


def _bounded(which: int, value: int) -> tuple[int, int, int]:
    """(resource, soft, hard) never above the current hard limit (raising it would fail)."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    if which == resource.RLIMIT_CPU:
        # SIGXCPU at the soft limit lets the process see why; SIGKILL one second later.
        hard_cpu = value + 1 if hard == resource.RLIM_INFINITY else min(value + 1, hard)
        return which, value, hard_cpu
    return which, value, value


def _user_task_count(uid: int) -> int:
    """Tasks (threads) whose real uid is ``uid``: what RLIMIT_NPROC is checked against."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            count += _tasks_of(entry.path, uid)
    return count


def _tasks_of(proc_dir: str, uid: int) -> int:
    try:
        with open(os.path.join(proc_dir, "status"), encoding="ascii", errors="replace") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return 0
    real_uid = fields.get("Uid", "").split()[:1]
    if real_uid != [str(uid)]:
        return 0
    return int(fields.get("Threads", "1").strip() or 1)


def _collect(
    proc: subprocess.Popen[bytes], buffers: dict[Any, OutputBuffer], deadline: float
) -> Literal["exited", "timeout", "overflow"]:
    """Read both pipes into their buffers until they close, the deadline, or an overflow."""
    selector = selectors.DefaultSelector()
    for pipe, buffer in buffers.items():
        selector.register(pipe, selectors.EVENT_READ, buffer)
    exited_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                return "timeout"
            if exited_at is None and proc.poll() is not None:
                exited_at = now
                _kill_group(proc.pid)  # leftover background jobs would hold the pipes open
            if exited_at is not None and now - exited_at > _EXIT_DRAIN_S:
                return "exited"
            if _read_ready(selector, min(_POLL_S, deadline - now)):
                return "overflow"
        return "exited"
    finally:
        selector.close()


def _read_ready(selector: selectors.BaseSelector, wait_s: float) -> bool:
    """Read what is ready; True when a stream overflowed (the command must be stopped)."""
    for key, _ in selector.select(wait_s):
        data = os.read(key.fd, _READ_CHUNK)
        if not data:
            selector.unregister(key.fileobj)
            continue
        buffer: OutputBuffer = key.data
        buffer.feed(data)
        if buffer.overflowing:
            return True
    return False


def _finish(proc: subprocess.Popen[bytes]) -> int:
    """Kill what is left of the group, reap the shell, close pipes; the shell's exit status."""
    _kill_group(proc.pid)
    returncode = proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _force_rmtree(path: str) -> None:
    """rmtree that also removes what sandboxed code made unreadable (chmod 000)."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    shutil.rmtree(path, onerror=_make_writable_and_retry)


def _make_writable_and_retry(func: Callable[..., Any], path: str, _exc: object) -> None:
    parent = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.chmod(parent, 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
    func(path)
