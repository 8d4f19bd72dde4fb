"""The sandbox interface every backend implements, and what backends share.

A sandbox is where a model's tool calls and a case's grader run: one per shard lane, started
once and reused by every case of the lane. Two outcomes must never be confused by callers:
an infrastructure failure (the sandbox could not start, the engine is down, the container
vanished) raises :class:`~autoray.errors.SandboxUnavailableError` and is retried, whereas a
command that fails or times out is an :class:`ExecResult` -- the model's problem, scored 0.
"""

from __future__ import annotations

import abc
import hashlib
import posixpath
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from autoray.errors import ConfigError, SandboxUnavailableError

if TYPE_CHECKING:
    from types import TracebackType

    from autoray.config import SandboxConfig

WORKDIRS_DIR = "cases"
"""Where :meth:`Sandbox.new_workdir` puts each case's directory, relative to the sandbox root."""

TIMEOUT_EXIT_CODE = 124
"""``exit_code`` of a command killed at its timeout (the status coreutils ``timeout`` uses)."""

OVERFLOW_MIN_BYTES = 1 << 20
OVERFLOW_FACTOR = 4
"""A command whose stream passes ``max(4 x cap, 1 MiB)`` bytes is killed: output past the cap is
discarded anyway, and a runaway writer (``yes``) must not burn CPU until its timeout."""

LONG_COMMAND_BYTES = 64 << 10
"""Longer commands are run from a script file: one exec argument is capped by the kernel
(MAX_ARG_STRLEN, 128 KiB), and a big heredoc from a model must not fail with E2BIG."""

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SLUG_MAX = 40


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one command did. A non-zero ``exit_code`` or ``timed_out`` is the command's failure."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool
    duration_ms: float


class OutputBuffer:
    """One output stream, kept up to ``cap`` bytes; past it, bytes are counted and dropped."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._chunks: list[bytes] = []
        self._kept = 0
        self.received = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        room = self._cap - self._kept
        if room > 0 and data:
            piece = data[:room]
            self._chunks.append(piece)
            self._kept += len(piece)

    @property
    def truncated(self) -> bool:
        return self.received > self._cap

    @property
    def overflowing(self) -> bool:
        """True once so much was dropped that the command should be stopped."""
        return self.received > max(OVERFLOW_FACTOR * self._cap, OVERFLOW_MIN_BYTES)

    def text(self) -> str:
        # A cut can split a UTF-8 sequence; replacing it beats failing the whole result.
        return b"".join(self._chunks).decode("utf-8", errors="replace")


def safe_join(root: str, relative: str) -> str:
    """Join ``relative`` under ``root``, refusing anything that would land outside it.

    Lexical only: a backend whose host process touches the files must also check symlinks.
    """
    if "\0" in relative:
        raise ValueError(f"sandbox path {relative!r} contains a NUL byte; remove it")
    if posixpath.isabs(relative):
        raise ValueError(
            f"sandbox path {relative!r} is absolute; give a path relative to the sandbox root"
        )
    root = posixpath.normpath(root)
    joined = posixpath.normpath(posixpath.join(root, relative))
    if joined != root and not joined.startswith(root.rstrip("/") + "/"):
        raise ValueError(
            f"sandbox path {relative!r} escapes the sandbox root with '..'; "
            "give a path that stays inside it"
        )
    return joined


def safe_name(raw: str) -> str:
    """A file- and container-name-safe form of ``raw``, unique per distinct ``raw``.

    Already-safe names are kept as they are; others are slugged and suffixed with a short hash
    of the raw value, so ``a/b`` and ``a_b`` never share a directory.
    """
    if _SAFE_NAME.match(raw) and raw not in (".", ".."):
        return raw
    slug = _UNSAFE_CHARS.sub("_", raw).strip("_.-")[:_SLUG_MAX] or "x"
    return f"{slug}-{short_hash(raw)}"


def short_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:10]


def workdir_path(name: str) -> str:
    """The relative directory of a case's workdir: ``cases/<safe name>``."""
    if not name:
        raise ValueError("workdir name is empty; pass the case id")
    return f"{WORKDIRS_DIR}/{safe_name(name)}"


def is_long_command(command: str) -> bool:
    return len(command.encode("utf-8")) > LONG_COMMAND_BYTES


def sourced(script_path: str) -> str:
    """The short command that runs a long one saved at ``script_path`` in the same shell."""
    return f". {shlex.quote(script_path)}"


def check_timeout(timeout_s: float, config: SandboxConfig) -> float:
    """The timeout a command really gets: the caller's, bounded by ``sandbox.timeout_s``."""
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    return min(float(timeout_s), config.timeout_s)


class Sandbox(abc.ABC):
    """One lane's isolated place to run commands and keep files (see the module docstring)."""

    backend: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset()
    """Names of the keyword options the backend's constructor accepts (for create_sandbox)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.identity: str | None = None
        self.run_id: str | None = None

    @abc.abstractmethod
    def start(self, identity: str, *, run_id: str | None = None) -> None:
        """Create or re-attach the lane's sandbox; calling it again is a no-op.

        ``run_id`` labels the sandbox with its run, so :func:`remove_sandboxes` can find it after
        the lane process died without destroying it (killed, swept, cancelled). Without it
        (``autoray cases check``, one-off runs) the sandbox belongs to no run.
        """

    @abc.abstractmethod
    def new_workdir(self, name: str) -> str:
        """Give a clean directory for one case; returns its path relative to the sandbox root."""

    @abc.abstractmethod
    def exec(self, command: str, *, timeout_s: float, cwd: str | None = None) -> ExecResult:
        """Run ``command`` with bash (or sh) in ``cwd`` (relative to the root)."""

    @abc.abstractmethod
    def write_file(self, path: str, content: str) -> None:
        """Write UTF-8 text at ``path`` (relative to the root), creating parent directories."""

    @abc.abstractmethod
    def read_file(self, path: str, *, max_bytes: int = 1_000_000) -> str:
        """Read at most ``max_bytes`` of the file at ``path``; FileNotFoundError if missing."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the sandbox; best-effort: logs a warning instead of raising."""

    @classmethod
    @abc.abstractmethod
    def preflight(cls, config: SandboxConfig) -> None:
        """Fail before any case runs, naming what to install or start."""

    @classmethod
    @abc.abstractmethod
    def remove(cls, config: SandboxConfig, *, run_id: str, lane: str | None = None) -> int:
        """Remove this node's sandboxes of ``run_id`` (or of its ``lane``); how many went.

        Idempotent and best-effort: what is already gone is no error, other failures are logged.
        """

    def _check_started(self) -> str:
        if self.identity is None:
            raise SandboxUnavailableError(
                f"{self.backend} sandbox used before start(); call start(<lane identity>) first"
            )
        return self.identity

    def _check_identity(self, identity: str, run_id: str | None = None) -> bool:
        """True when already started for ``identity``; refuses a second, different lane."""
        if not identity:
            raise ValueError("sandbox identity is empty; pass the lane identity")
        if run_id == "":
            raise ValueError("sandbox run_id is empty; pass the run id, or None for no run")
        if self.identity is None:
            return False
        if self.identity != identity:
            raise ValueError(
                f"sandbox already started for lane {self.identity!r}, not {identity!r}; "
                "create one sandbox per lane"
            )
        if self.run_id != run_id:
            raise ValueError(
                f"sandbox of lane {identity!r} already started for run {self.run_id!r}, "
                f"not {run_id!r}; create one sandbox per run's lane"
            )
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


BACKENDS: dict[str, type[Sandbox]] = {}
"""Sandbox backends by name; filled by :func:`register_backend` when the package is imported."""

_SandboxT = TypeVar("_SandboxT", bound=type[Sandbox])


def register_backend(cls: _SandboxT) -> _SandboxT:
    """Class decorator: make a backend reachable by its ``backend`` name."""
    BACKENDS[cls.backend] = cls
    return cls


def backend_class(config: SandboxConfig, backend_options: dict[str, Any]) -> type[Sandbox]:
    """The backend class for ``config.backend``, after checking the option names it takes."""
    cls = BACKENDS.get(config.backend)
    if cls is None:
        raise ConfigError(
            f"sandbox.backend {config.backend!r} is unknown; choose one of {sorted(BACKENDS)}"
        )
    unknown = sorted(set(backend_options) - cls.options)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for sandbox backend {cls.backend!r}; "
            f"valid: {sorted(cls.options) or 'none'}"
        )
    return cls


def create_sandbox(config: SandboxConfig, **backend_options: Any) -> Sandbox:
    """Build (not start) the sandbox ``config.backend`` names."""
    return backend_class(config, backend_options)(config, **backend_options)


def preflight_sandbox(config: SandboxConfig, **backend_options: Any) -> None:
    """Run the preflight of ``config.backend`` with the same options ``create_sandbox`` takes."""
    cls = backend_class(config, backend_options)
    cls.preflight(config, **backend_options)


def remove_sandboxes(
    config: SandboxConfig, *, run_id: str, lane: str | None = None, **backend_options: Any
) -> int:
    """Remove every sandbox of ``run_id`` (or of one ``lane``) on this node; how many went.

    The end of a run and ``autoray bench cancel`` call it on every node: a lane that was killed,
    swept or cancelled never ran its own ``destroy`` (issue 9, "Leaked sandboxes"). Idempotent;
    a ``destroy`` of a sandbox removed here is still a quiet no-op.
    """
    if not run_id:
        raise ValueError("run_id is empty; pass the run whose sandboxes to remove")
    if lane == "":
        raise ValueError("lane is empty; pass a lane identity, or None for the whole run")
    cls = backend_class(config, backend_options)
    return cls.remove(config, run_id=run_id, lane=lane, **backend_options)
