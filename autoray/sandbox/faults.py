"""The ``fault`` sandbox backend: TEST FAULTS, for engine tests and the chaos soak only.

Never configure it for a real run: its whole purpose is to make sandbox starts fail or hang on
purpose, so tests can prove that such infrastructure trouble is retried by the lane policy and
never becomes a score-0 row. It is the process backend with faults in front of ``start``, set by
``SandboxConfig(backend="fault", faults=SandboxFaults(...))``:

- ``fail_first``: the first N starts of every lane fail (a flaky engine that recovers);
- ``always``: every start of these lane identities fails (a lane that must end dead);
- ``hang``: a start of these lanes never returns (a lane gone silent, for the sweeper);
- :func:`fail_starts_for`: every start fails until a moment (the soak's outage switch).

Start counts and the switch are files under ``faults.state_dir``, shared by every lane process
on the machine, so they survive a lane being killed and recreated in a new process. It replaces
the test-only ``sandbox_factory`` seam, which had to be pickled into lane actors by value.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from autoray.config import SandboxFaults
from autoray.errors import ConfigError, SandboxUnavailableError
from autoray.sandbox.base import register_backend
from autoray.sandbox.process import Isolation, ProcessSandbox

if TYPE_CHECKING:
    from autoray.config import SandboxConfig

__all__ = ["FaultSandbox", "SandboxFaults", "fail_starts_for", "start_count"]

log = logging.getLogger(__name__)

HANG_S = 3600.0
"""How long a start in ``hang`` blocks: longer than any sweep, so the lane is lost, not slow."""
_SWITCH_FILE = "fail-starts-until"
_COUNTS_DIR = "starts"


def fail_starts_for(state_dir: str, seconds: float) -> None:
    """From now, every start of a ``fault`` sandbox using ``state_dir`` fails for ``seconds``.

    ``seconds <= 0`` turns the switch off. The moment is wall-clock time in a file, so lane
    processes on this machine see it without being told.
    """
    path = Path(state_dir) / _SWITCH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    until = time.time() + seconds if seconds > 0 else 0.0
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(until))
    tmp.replace(path)  # atomic: a lane never reads a half-written moment


def start_count(state_dir: str, identity: str) -> int:
    """How many starts (failed, hung or successful) lane ``identity`` has attempted so far."""
    path = _count_path(state_dir, identity)
    return int(path.read_text() or 0) if path.exists() else 0


@register_backend
class FaultSandbox(ProcessSandbox):
    """TEST FAULTS: the process sandbox whose starts fail or hang as ``config.faults`` says."""

    backend = "fault"

    def __init__(
        self, config: SandboxConfig, *, base_dir: str | None = None, isolation: Isolation = "auto"
    ) -> None:
        super().__init__(config, base_dir=base_dir, isolation=isolation)
        self.faults = _faults_of(config)

    def start(self, identity: str, *, run_id: str | None = None) -> None:
        if self._check_identity(identity, run_id):
            return
        count = _bump(self.faults.state_dir, identity)
        if identity in self.faults.hang:
            log.warning("test fault: start #%d of lane %r hangs", count, identity)
            _hang()
        problem = self._injected_failure(identity, count)
        if problem is not None:
            log.warning("test fault: start #%d of lane %r fails (%s)", count, identity, problem)
            raise SandboxUnavailableError(
                f"injected test fault: start #{count} of lane {identity!r} fails ({problem})"
            )
        super().start(identity, run_id=run_id)

    def _injected_failure(self, identity: str, count: int) -> str | None:
        """Why this start must fail, or None when it may go ahead."""
        if _switch_on(self.faults.state_dir):
            return "fail_starts_for is on"
        if identity in self.faults.always:
            return "lane listed in always"
        if count <= self.faults.fail_first:
            return f"fail_first is {self.faults.fail_first}"
        return None

    @classmethod
    def preflight(
        cls, config: SandboxConfig, *, base_dir: str | None = None, isolation: Isolation = "auto"
    ) -> None:
        state_dir = Path(_faults_of(config).state_dir)
        try:
            (state_dir / _COUNTS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SandboxUnavailableError(
                f"fault sandbox faults.state_dir {str(state_dir)!r} cannot be created ({exc}); "
                "point faults.state_dir at a writable directory"
            ) from exc
        super().preflight(config, base_dir=base_dir, isolation=isolation)


def _faults_of(config: SandboxConfig) -> SandboxFaults:
    if config.faults is None:  # SandboxConfig refuses this; a hand-built copy might not
        raise ConfigError(
            "sandbox backend 'fault' (test faults) needs sandbox.faults; set faults.state_dir"
        )
    return config.faults


def _count_path(state_dir: str, identity: str) -> Path:
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return Path(state_dir) / _COUNTS_DIR / digest


def _bump(state_dir: str, identity: str) -> int:
    """Count one more start of ``identity``, under a file lock (lanes start concurrently)."""
    path = _count_path(state_dir, identity)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    with path.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        count = int(handle.read() or 0) + 1
        handle.seek(0)
        handle.write(str(count))
        handle.truncate()
    return count


def _switch_on(state_dir: str) -> bool:
    try:
        until = float((Path(state_dir) / _SWITCH_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return False
    return time.time() < until


def _hang() -> None:
    """Block like a start that never answers; only killing the lane process ends it early."""
    time.sleep(HANG_S)
