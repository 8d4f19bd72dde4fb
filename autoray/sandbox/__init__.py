"""Sandboxes: where tool calls and graders run, one per shard lane.

``create_sandbox(config)`` builds the backend ``config.backend`` names (``process``, the embedded
default, or ``docker``); ``preflight_sandbox(config)`` fails early with what to install or start.
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
    safe_join,
    safe_name,
)
from autoray.sandbox.docker import DockerSandbox, container_name
from autoray.sandbox.process import ProcessSandbox

__all__ = [
    "BACKENDS",
    "TIMEOUT_EXIT_CODE",
    "DockerSandbox",
    "ExecResult",
    "OutputBuffer",
    "ProcessSandbox",
    "Sandbox",
    "container_name",
    "create_sandbox",
    "preflight_sandbox",
    "register_backend",
    "safe_join",
    "safe_name",
]
