"""Test-only glue for engine tests that still pass a ``sandbox_factory``.

The faults themselves live in the ``fault`` sandbox backend (``autoray.sandbox.faults``, test
faults configured by ``SandboxConfig(backend="fault", faults=...)``); ``FlakyStarts`` only builds
that backend for the old factory seam. Delete this module once no test passes a factory.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from autoray.config import SandboxConfig
from autoray.sandbox import Sandbox, create_sandbox, start_count

__all__ = ["FlakyStarts", "ship_by_value", "start_count"]


def ship_by_value() -> None:
    """Let Ray workers unpickle this module's objects without importing ``tests``."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class FlakyStarts:
    """A factory of ``fault`` sandboxes: see :mod:`autoray.sandbox.faults` for each switch."""

    state_dir: str
    fail_first: int = 0
    always: frozenset[str] = field(default_factory=frozenset)
    hang: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, config: SandboxConfig) -> Sandbox:
        faults = {
            "state_dir": self.state_dir,
            "fail_first": self.fail_first,
            "always": sorted(self.always),
            "hang": sorted(self.hang),
        }
        data = {**config.model_dump(), "backend": "fault", "faults": faults}
        return create_sandbox(SandboxConfig.model_validate(data))
