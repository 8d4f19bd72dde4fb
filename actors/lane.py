"""The shard-lane actor: one per lane, owning one sandbox for its whole life.

A lane works through its chunks ``s, s+S, s+2S, ...`` strictly in order. For each chunk it asks
the coordinator which cases have no row yet and runs only those, one at a time, in its own
sandbox; every finished row goes to the coordinator, which alone writes the database. After its
last chunk the lane destroys its sandbox, best-effort.

Infrastructure failures (``SandboxUnavailableError``) propagate out of :meth:`ShardLane.run` so
that the coordinator's failure policy can retry the lane; model failures are score-0 rows the
runner already produced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actors import logs
from autoray.cases import Dataset
from autoray.config import ModelEntry, RunnerConfig, SandboxConfig
from autoray.planning import LaneSpec
from autoray.providers import create_provider
from autoray.results import CaseResult
from autoray.runner import run_case
from autoray.sandbox import Sandbox, create_sandbox

if TYPE_CHECKING:
    from actors.clients import CoordinatorClient

logger = logging.getLogger("autoray.lane")

SandboxFactory = Callable[[SandboxConfig], Sandbox]


@dataclass(frozen=True)
class LaneWork:
    """Everything a lane needs besides its spec and the dataset."""

    model: ModelEntry
    sandbox: SandboxConfig
    runner: RunnerConfig
    chunk_cases: Mapping[int, tuple[str, ...]]
    sim_url: str | None = None
    sandbox_factory: SandboxFactory | None = None


@dataclass
class LaneReport:
    identity: str
    chunks_run: list[int] = field(default_factory=list)
    cases_run: int = 0
    stopped: bool = False
    destroy_failed: bool = False


class ShardLane:
    """Plain class; made a Ray actor where the coordinator spawns it (``max_concurrency=2`` so
    that :meth:`stop` is answered while :meth:`run` works)."""

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

    def stop(self) -> None:
        """Ask the lane to stop after the case in flight (used by cancel)."""
        self._stop.set()

    def current_case(self) -> str | None:
        return self._current_case

    def run(self) -> LaneReport:
        report = LaneReport(self._spec.identity)
        sandbox = self._open_sandbox()
        try:
            self._run_chunks(sandbox, report)
        except BaseException:
            _destroy(sandbox, self._spec.identity)  # the next attempt starts a clean one
            raise
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
        factory = self._work.sandbox_factory or create_sandbox
        sandbox = factory(self._work.sandbox)
        sandbox.start(self._spec.identity)
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
