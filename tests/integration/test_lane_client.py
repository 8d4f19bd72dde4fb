"""The coordinator's client of a lane: what a lane raised reaches the failure policy as itself.

A dead lane is stored with the message of the error that killed it. Through Ray's wrapper that
message was the whole remote traceback with terminal colour codes; the client unwraps it.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
import ray
from ray import cloudpickle

from actors.clients import LaneClient, LaneLostError
from autoray.errors import SandboxUnavailableError

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests


class _FailingLane:
    def run(self) -> None:
        raise SandboxUnavailableError("docker engine not reachable at unix:///x.sock")


class _DyingLane:
    def run(self) -> None:
        import os

        os._exit(1)


@pytest.mark.usefixtures("ray_cluster")
def test_an_error_the_lane_raised_comes_back_as_itself_without_the_remote_traceback() -> None:
    client = LaneClient(ray.remote(_FailingLane).options(num_cpus=0).remote())
    with pytest.raises(SandboxUnavailableError) as caught:
        asyncio.run(client.run())
    assert str(caught.value) == "docker engine not reachable at unix:///x.sock"
    assert "Traceback" not in str(caught.value) and "\x1b[" not in str(caught.value)


@pytest.mark.usefixtures("ray_cluster")
def test_a_lane_process_that_dies_is_a_lost_lane() -> None:
    client = LaneClient(ray.remote(_DyingLane).options(num_cpus=0, max_restarts=0).remote())
    with pytest.raises(LaneLostError, match="lane actor lost"):
        asyncio.run(client.run())
