"""Small typed clients that hide ``.remote()`` and ``ray.get`` from callers.

They translate Ray's wrapping of remote exceptions back into autoray's own error types, so a
CLI can print a ``ConfigError`` raised inside the coordinator as the plain message it is, and
the coordinator can tell a lost lane (:class:`LaneLostError`) from a failure the lane raised.
This module imports no other ``actors`` module: the coordinator and the lane import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from autoray.engine.progress import RunProgress
from autoray.engine.run import LaneReport
from autoray.errors import AutorayError, InfrastructureError
from autoray.planning import LaneSpec
from autoray.results import CaseResult

T = TypeVar("T")

COORDINATOR_NAME = "coordinator"
DEFAULT_NAMESPACE = "autoray"


def _get(ref: Any, timeout: float | None = None) -> Any:
    try:
        return ray.get(ref, timeout=timeout)
    except RayTaskError as err:
        cause = err.cause
        if isinstance(cause, AutorayError):
            raise cause from None
        raise
    except RayActorError as err:
        raise InfrastructureError(
            f"the autoray coordinator is unavailable ({type(err).__name__}); "
            "check `ray status` and retry, or `autoray bench resume RUN_ID`"
        ) from err
    except GetTimeoutError as err:
        raise InfrastructureError(f"no answer from the coordinator within {timeout} s") from err


class CoordinatorClient:
    """Client of the detached, named coordinator actor."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @property
    def handle(self) -> Any:
        return self._handle

    # -- used by lanes ---------------------------------------------------------------------
    def remaining_cases(self, spec: LaneSpec, case_ids: Sequence[str]) -> list[str]:
        return list(
            _get(self._handle.remaining_cases.remote(spec.run_id, spec.identity, list(case_ids)))
        )

    def record_result(self, result: CaseResult, lane: LaneSpec | None = None) -> bool:
        identity = None if lane is None else lane.identity
        return bool(_get(self._handle.record_result.remote(result, identity)))

    def heartbeat(self, spec: LaneSpec, attempt: int) -> None:
        """Fire and forget: a beat that never arrives is exactly what the sweep looks for."""
        self._handle.heartbeat.remote(spec.run_id, spec.identity, attempt)

    # -- used by the driver and the CLI ------------------------------------------------------
    def ping(self, timeout: float | None = 60) -> dict[str, Any]:
        return dict(_get(self._handle.ping.remote(), timeout))

    def start_run(self, config: dict[str, Any], **options: Any) -> str:
        return str(_get(self._handle.start_run.remote(config, **options)))

    def resume_run(self, run_id: str, **options: Any) -> str:
        return str(_get(self._handle.resume_run.remote(run_id, **options)))

    def status(self, run_id: str, timeout: float | None = 60) -> RunProgress:
        return RunProgress.from_dict(_get(self._handle.status.remote(run_id), timeout))

    def list_runs(self) -> list[dict[str, Any]]:
        return list(_get(self._handle.list_runs.remote()))

    def lanes(self, run_id: str) -> list[dict[str, Any]]:
        return list(_get(self._handle.lanes.remote(run_id)))

    def diagnostics(self, run_id: str) -> dict[str, Any]:
        return dict(_get(self._handle.diagnostics.remote(run_id)))

    def cancel(self, run_id: str) -> RunProgress:
        return RunProgress.from_dict(_get(self._handle.cancel.remote(run_id)))

    def shutdown(self) -> None:
        """Stop the coordinator for good; runs still marked running resume on its next start."""
        ray.kill(self._handle, no_restart=True)

    def active_table(self) -> dict[str, Any] | None:
        table: dict[str, Any] | None = _get(self._handle.active_table.remote())
        return table


class LaneLostError(InfrastructureError):
    """A lane actor died (killed, its node lost, its process crashed) before it answered."""


class LaneClient:
    """Client of one shard lane actor, for the coordinator's async code."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def run(self) -> LaneReport:
        """Run the lane to its end; a lost actor is :class:`LaneLostError`, and an error the
        lane raised comes back as the lane's own exception, without Ray's wrapper (whose text
        is the whole remote traceback, colour codes included, and would become the reason a
        dead lane is stored with)."""
        try:
            report: LaneReport = await self._handle.run.remote()
        except RayActorError as err:
            raise LaneLostError(f"lane actor lost ({type(err).__name__})") from err
        except RayTaskError as err:
            cause = err.cause
            if isinstance(cause, Exception):
                raise cause from None
            raise
        return report

    async def stop(self) -> None:
        try:
            await self._handle.stop.remote()
        except RayActorError:
            return  # already gone: nothing to stop

    def kill(self) -> None:
        ray.kill(self._handle, no_restart=True)
