"""Fault injection for engine tests: a sandbox factory whose starts fail on purpose.

The factory is pickled by value into the lane actors (see ``ship_by_value``), and it counts
starts in files, so the count survives the lane being recreated in a new process.
"""

from __future__ import annotations

import fcntl
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoray.config import SandboxConfig
from autoray.errors import SandboxUnavailableError
from autoray.sandbox import Sandbox, create_sandbox


def ship_by_value() -> None:
    """Let Ray workers unpickle this module's objects without importing ``tests``."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _bump(state_dir: str, identity: str) -> int:
    path = Path(state_dir) / hashlib.sha256(identity.encode()).hexdigest()[:16]
    path.touch()
    with path.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        count = int(handle.read() or 0) + 1
        handle.seek(0)
        handle.write(str(count))
        handle.truncate()
    return count


def start_count(state_dir: str, identity: str) -> int:
    path = Path(state_dir) / hashlib.sha256(identity.encode()).hexdigest()[:16]
    return int(path.read_text() or 0) if path.exists() else 0


@dataclass(frozen=True)
class FlakyStarts:
    """Fail the first ``fail_first`` starts of every lane and every start of ``always``; lanes in
    ``hang`` never finish starting (a lane gone silent)."""

    state_dir: str
    fail_first: int = 0
    always: frozenset[str] = field(default_factory=frozenset)
    hang: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, config: SandboxConfig) -> Sandbox:
        return _FlakySandbox(create_sandbox(config), self)  # type: ignore[return-value]


class _FlakySandbox:
    def __init__(self, inner: Sandbox, faults: FlakyStarts) -> None:
        self._inner = inner
        self._faults = faults

    def start(self, identity: str) -> None:
        count = _bump(self._faults.state_dir, identity)
        if identity in self._faults.hang:
            time.sleep(3600)
        if identity in self._faults.always or count <= self._faults.fail_first:
            raise SandboxUnavailableError(f"injected start failure #{count} for {identity}")
        self._inner.start(identity)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
