"""Small typed clients that hide ``.remote()`` and ``ray.get`` from callers.

They translate Ray's wrapping of remote exceptions back into autoray's own error types, so a
CLI can print a ``ConfigError`` raised inside the coordinator as the plain message it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from autoray.errors import AutorayError, InfrastructureError
from autoray.planning import LaneSpec
from autoray.progress import RunProgress
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


def get_or_create_coordinator(
    database_url: str, *, namespace: str = DEFAULT_NAMESPACE
) -> CoordinatorClient:
    """Attach to the named coordinator, creating it (detached) when none runs.

    A coordinator is bound to one database; attaching with another URL is refused rather than
    silently writing a run's rows somewhere the user is not looking.
    """
    from actors.coordinator import Coordinator

    handle = (
        ray.remote(Coordinator)
        .options(
            name=COORDINATOR_NAME,
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=-1,
            num_cpus=0,
        )
        .remote(database_url, namespace)
    )
    client = CoordinatorClient(handle)
    info = client.ping()
    if info["database_url"] != database_url:
        raise AutorayError(
            f"a coordinator is already running in namespace {namespace!r} with another database "
            f"({info['database_url_redacted']}); pass that --database-url, or stop it with "
            f"`autoray bench shutdown`"
        )
    return client


def find_coordinator(namespace: str = DEFAULT_NAMESPACE) -> CoordinatorClient | None:
    try:
        return CoordinatorClient(ray.get_actor(COORDINATOR_NAME, namespace=namespace))
    except ValueError:
        return None
