"""The shard lane actor: one per lane, one sandbox for the lane's whole life.

A lane works through its chunks in plan order (the plan's chunk -> case layout arrives in its
:class:`~autoray.engine.run.LaneWork`). For each chunk it asks the coordinator which cases have
no row yet and runs only those, one at a time, in its own sandbox; every finished row goes to
the coordinator, which alone writes the database. After its last chunk the lane destroys its
sandbox, best-effort.

Once its sandbox is up, a thread sends a heartbeat every ``heartbeat_s``, also while a case
runs (a 300 s case is not silence). A lane whose process freezes or whose sandbox start hangs
goes quiet, and the coordinator's sweep treats that as a failure for the policy.

Every infrastructure failure (any :class:`~autoray.errors.InfrastructureError`: a sandbox that
will not start, a provider or grader that is unavailable) propagates out of :meth:`ShardLane.run`
with no row written, so the failure policy retries the lane; model failures are score-0 rows
the runner already produced.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from actors import logs
from autoray.cases import Dataset
from autoray.engine.run import LaneReport, LaneWork
from autoray.planning import LaneSpec
from autoray.providers import create_provider
from autoray.results import CaseResult
from autoray.runner import run_case
from autoray.sandbox import Sandbox, create_sandbox

if TYPE_CHECKING:
    from actors.clients import CoordinatorClient

logger = logging.getLogger("autoray.lane")


class ShardLane:
    """Plain class; made a Ray actor where the coordinator spawns it (``max_concurrency=3`` so
    that :meth:`stop` and :meth:`pid` are answered while :meth:`run` works)."""

    def __init__(
        self, spec: LaneSpec, work: LaneWork, dataset: Dataset, coordinator: CoordinatorClient
    ) -> None:
        self._spec = spec
        self._work = work
        self._dataset = dataset
        self._coordinator = coordinator
        self._stop = threading.Event()
        self._current_case: str | None = None
        logs.configure()

    def ready(self) -> str:
        return self._spec.identity

    def pid(self) -> int:
        """The lane's process id (fault tests freeze or kill it)."""
        return os.getpid()

    def stop(self) -> None:
        """Ask the lane to stop after the case in flight (used by cancel)."""
        self._stop.set()

    def current_case(self) -> str | None:
        return self._current_case

    def run(self) -> LaneReport:
        report = LaneReport(self._spec.identity)
        sandbox = self._open_sandbox()
        heartbeat = _Heartbeat(self._coordinator, self._spec, self._work)
        heartbeat.start()
        try:
            self._run_chunks(sandbox, report)
        except BaseException:
            _destroy(sandbox, self._spec.identity)  # the next attempt starts a clean one
            raise
        finally:
            heartbeat.stop()
        report.destroy_failed = not _destroy(sandbox, self._spec.identity)
        return report

    def _run_chunks(self, sandbox: Sandbox, report: LaneReport) -> None:
        provider = create_provider(self._work.model, sim_url=self._work.sim_url)
        try:
            for chunk in self._spec.chunks:
                if self._stop.is_set():
                    report.stopped = True
                    return
                report.cases_run += self._run_chunk(chunk, sandbox, provider)
                report.chunks_run.append(chunk)
        finally:
            provider.close()

    def _open_sandbox(self) -> Sandbox:
        sandbox = create_sandbox(self._work.sandbox)
        sandbox.start(self._spec.identity, run_id=self._spec.run_id)
        return sandbox

    def _run_chunk(self, chunk: int, sandbox: Sandbox, provider: Any) -> int:
        case_ids = self._work.chunk_cases[chunk]
        remaining = self._coordinator.remaining_cases(self._spec, case_ids)
        ran = 0
        for case_id in remaining:
            if self._stop.is_set():
                break
            self._current_case = case_id
            self._coordinator.record_result(self._run_one(case_id, sandbox, provider), self._spec)
            ran += 1
        self._current_case = None
        return ran

    def _run_one(self, case_id: str, sandbox: Sandbox, provider: Any) -> CaseResult:
        case = self._dataset.by_id(case_id)
        spec = self._spec
        outcome = run_case(
            case,
            provider=provider,
            sandbox=sandbox,
            config=self._work.runner,
            metadata={"rep": str(spec.rep)},
        )
        return CaseResult(
            run_id=spec.run_id,
            model_id=spec.model_id,
            variant=spec.variant,
            case_id=case_id,
            rep=spec.rep,
            route=case.route,
            outcome=outcome,
        )


class _Heartbeat:
    """A daemon thread that tells the coordinator the lane is alive every ``heartbeat_s``."""

    def __init__(self, coordinator: CoordinatorClient, spec: LaneSpec, work: LaneWork) -> None:
        self._coordinator = coordinator
        self._spec = spec
        self._work = work
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat {spec.identity}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _beat(self) -> None:
        while True:
            try:
                self._coordinator.heartbeat(self._spec, self._work.attempt)
            except Exception as err:  # a missed beat is what the sweep is for
                logger.debug("lane %s: heartbeat not sent: %s", self._spec.identity, err)
            if self._done.wait(self._work.heartbeat_s):
                return


def _destroy(sandbox: Sandbox, identity: str) -> bool:
    """Best-effort destroy: a failure is logged and never blocks finalization."""
    started = time.monotonic()
    try:
        sandbox.destroy()
    except Exception as exc:  # destroy must never take the lane down
        logger.warning("lane %s: sandbox destroy failed: %s", identity, exc)
        return False
    logger.debug(
        "lane %s: sandbox destroyed in %.0f ms", identity, 1e3 * (time.monotonic() - started)
    )
    return True
