"""Sandboxes: where tool calls and graders run, one per shard lane.

``create_sandbox(config)`` builds the backend ``config.backend`` names (``process``, the embedded
default, or ``docker``); ``preflight_sandbox(config)`` fails early with what to install or start;
``remove_sandboxes(config, run_id=...)`` removes a run's sandboxes on this node by their labels.
The ``fault`` backend (:mod:`autoray.sandbox.faults`) is for tests only: it injects start faults.
"""

from autoray.sandbox.base import (
    BACKENDS,
    TIMEOUT_EXIT_CODE,
    ExecResult,
    OutputBuffer,
    Sandbox,
    create_sandbox,
    preflight_sandbox,
    register_backend,
    remove_sandboxes,
    safe_join,
    safe_name,
)
from autoray.sandbox.docker import DockerSandbox, container_name
from autoray.sandbox.faults import FaultSandbox, fail_starts_for, start_count
from autoray.sandbox.process import ProcessSandbox, lane_directory, sandbox_root

__all__ = [
    "BACKENDS",
    "TIMEOUT_EXIT_CODE",
    "DockerSandbox",
    "ExecResult",
    "FaultSandbox",
    "OutputBuffer",
    "ProcessSandbox",
    "Sandbox",
    "container_name",
    "create_sandbox",
    "fail_starts_for",
    "lane_directory",
    "preflight_sandbox",
    "register_backend",
    "remove_sandboxes",
    "safe_join",
    "safe_name",
    "sandbox_root",
    "start_count",
]
