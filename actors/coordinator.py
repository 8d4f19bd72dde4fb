"""The coordinator actor: detached, named, async, and the single writer of run state.

It starts runs (config snapshot, engine identity, run models), reserves each run's live-
container budget as a placement group, spawns one :class:`~actors.lane.ShardLane` per lane,
records case rows idempotently, answers status queries while runs are in flight, retries lanes
under the failure policy, and finalizes (summaries -> ranking -> routing table -> publish).

Only this actor writes run state, so the embedded SQLite default stays correct with 100 lanes.
Detached actors do not survive the cluster going down, so everything needed to resume a run
lives in the database: on (re)start the coordinator reloads every run still marked running and
recreates the lanes that lack rows; lanes then run only the cases without a row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError

from actors import logs, placement
from actors.clients import CoordinatorClient
from actors.lane import LaneReport, SandboxFactory, ShardLane
from actors.metrics import EngineMetrics
from actors.placement import PlacementError
from actors.runstate import LaneTrack, RunState, new_run_id, now, outcome_label
from actors.table_events import notify_table_activated
from autoray.cases import Dataset, load_dataset
from autoray.config import BenchConfig, config_snapshot, parse_config
from autoray.errors import AutorayError, InfrastructureError, SandboxUnavailableError
from autoray.identity import engine_identity
from autoray.lanes import LaneEvent, LaneState, RunStatus, lane_transition, run_transition
from autoray.planning import check_budget, plan_run
from autoray.policy import Action, FailureKind
from autoray.results import CaseResult
from autoray.runs import load_progress, run_summary
from autoray.store import migrate, open_store, repo
from autoray.store.engine import Store, redact_url
from autoray.summaries import summarize
from autoray.table import build_table

logger = logging.getLogger("autoray.coordinator")

_CANCEL_GRACE_S = 20.0


class Coordinator:
    """Plain class; :func:`actors.clients.get_or_create_coordinator` makes it a named actor."""

    def __init__(self, database_url: str, namespace: str) -> None:
        self._database_url = database_url
        self._namespace = namespace
        self._store: Store | None = None
        self._runs: dict[str, RunState] = {}
        self._start_lock = asyncio.Lock()
        self._started = False
        self._sweeper: asyncio.Task[None] | None = None
        self._metrics = EngineMetrics()
        logs.configure()
        _kick_self()

    # ------------------------------------------------------------------ lifecycle
    async def _ensure_started(self) -> Store:
        if self._store is not None and self._started:
            return self._store
        async with self._start_lock:
            if not self._started:
                await migrate.upgrade_async(self._database_url)
                self._store = open_store(self._database_url)
                self._started = True
                await self._resume_all()
                self._sweeper = asyncio.create_task(self._sweep_forever())
        assert self._store is not None
        return self._store

    async def _resume_all(self) -> None:
        async with self._session() as session:
            records = await repo.running_runs(session)
        for record in records:
            if record.run_id in self._runs:
                continue
            try:
                await self._resume_record(record, sim_url=None)
            except AutorayError as err:
                logger.error("run %s cannot resume: %s", record.run_id, err)

    def _session(self) -> Any:
        assert self._store is not None
        return self._store.session()

    async def ping(self) -> dict[str, Any]:
        await self._ensure_started()
        return {
            "database_url": self._database_url,
            "database_url_redacted": redact_url(self._database_url),
            "namespace": self._namespace,
            "runs": sorted(run_id for run_id, run in self._runs.items() if not run.status.terminal),
        }

    # ------------------------------------------------------------------ starting runs
    async def start_run(
        self,
        config: dict[str, Any],
        *,
        run_id: str | None = None,
        sim_url: str | None = None,
        sandbox_factory: SandboxFactory | None = None,
    ) -> str:
        await self._ensure_started()
        cfg = parse_config(config, source="run config")
        check_budget(len(cfg.models), cfg.repetitions, cfg.max_live_containers)
        dataset = await asyncio.to_thread(load_dataset, cfg.dataset)
        run_id = run_id or new_run_id(cfg.name)
        run = self._build_run(run_id, cfg, dataset, sim_url, sandbox_factory)
        async with self._session() as session:
            await repo.create_run(
                session,
                run_id=run_id,
                name=cfg.name,
                config=config_snapshot(cfg),
                engine_identity=run.engine_identity,
                dataset_identity=dataset.identity,
                models=cfg.model_keys,
            )
        self._launch(run)
        return run_id

    async def resume_run(self, run_id: str, *, sim_url: str | None = None) -> str:
        await self._ensure_started()
        live = self._runs.get(run_id)
        if live is not None and not live.status.terminal:
            return run_id
        async with self._session() as session:
            record = await repo.get_run(session, run_id=run_id)
        if record is None:
            raise AutorayError(f"no run with id {run_id!r}; `autoray bench list` shows the runs")
        if record.status != RunStatus.RUNNING.value:
            raise AutorayError(
                f"run {run_id!r} is {record.status}; only a running run can be resumed "
                "(start a new one with `autoray bench run CONFIG`)"
            )
        await self._resume_record(record, sim_url=sim_url)
        return run_id

    async def _resume_record(self, record: Any, *, sim_url: str | None) -> None:
        cfg = parse_config(record.config, source=f"snapshot of run {record.run_id}")
        dataset = await asyncio.to_thread(load_dataset, cfg.dataset)
        run = self._build_run(record.run_id, cfg, dataset, sim_url, None)
        if run.engine_identity != record.engine_identity:
            reason = (
                f"engine identity changed since the run started ({record.engine_identity} -> "
                f"{run.engine_identity}): the dataset or the graders differ, so its rows cannot "
                "be reused; start a new run"
            )
            await self._set_status(run, RunStatus.FAILED, reason)
            raise AutorayError(f"run {record.run_id!r} cannot resume: {reason}")
        run.started_wall = record.created_at.timestamp()
        await self._restore_lanes(run)
        run.resumed_rows = run.cases_done
        logger.info(
            "run %s resumed: %d/%d cases present",
            run.run_id,
            run.cases_done,
            run.cases_total,
        )
        self._launch(run)

    async def _restore_lanes(self, run: RunState) -> None:
        async with self._session() as session:
            failures = {
                f.lane_identity for f in await repo.lane_failures(session, run_id=run.run_id)
            }
            run.cases_done = await repo.count_case_results(session, run_id=run.run_id)
            run.errors = await repo.count_case_errors(session, run_id=run.run_id)
        for lane in run.lanes.values():
            if await self._lane_rows_complete(run, lane):
                lane.state = LaneState.FINISHED
            elif lane.spec.identity in failures:
                lane.state, lane.reason = LaneState.DEAD, "recorded dead before the restart"

    def _build_run(
        self,
        run_id: str,
        cfg: BenchConfig,
        dataset: Dataset,
        sim_url: str | None,
        sandbox_factory: SandboxFactory | None,
    ) -> RunState:
        plan = plan_run(
            run_id=run_id,
            models=cfg.model_keys,
            repetitions=cfg.repetitions,
            case_count=len(dataset.cases),
            chunk_size=cfg.chunk_size,
            budget=cfg.max_live_containers,
        )
        lanes = {spec.identity: LaneTrack(spec, bundle) for bundle, spec in enumerate(plan.lanes)}
        return RunState(
            run_id=run_id,
            config=cfg,
            dataset=dataset,
            plan=plan,
            engine_identity=engine_identity(dataset),
            lanes=lanes,
            sim_url=sim_url,
            sandbox_factory=sandbox_factory,
        )

    def _launch(self, run: RunState) -> None:
        self._runs[run.run_id] = run
        run.task = asyncio.create_task(self._drive(run))

    # ------------------------------------------------------------------ driving a run
    async def _drive(self, run: RunState) -> None:
        try:
            await self._reserve(run)
            await self._start_farm(run)
            run.dataset_ref = ray.put(run.dataset)
            pending = [lane for lane in run.lanes.values() if not lane.state.terminal]
            await asyncio.gather(*(self._lane_loop(run, lane) for lane in pending))
            if not run.cancel_requested:
                await self._finalize(run)
        except PlacementError as err:
            await self._set_status(run, RunStatus.FAILED, str(err))
        except Exception as err:
            logger.exception("run %s failed", run.run_id)
            await self._set_status(run, RunStatus.FAILED, f"{type(err).__name__}: {err}")
        finally:
            self._release(run)

    async def _reserve(self, run: RunState) -> None:
        run.pg = await placement.reserve(run.run_id, len(run.plan.lanes), run.config.engine)
        logger.info(
            "run %s: placement group of %d lane bundles ready", run.run_id, len(run.plan.lanes)
        )

    async def _start_farm(self, run: RunState) -> None:
        simulated = [m for m in run.config.models if m.provider == "simulated"]
        if not simulated or run.sim_url:
            return
        from actors.farm import SimFarm

        run.farm = (
            ray.remote(SimFarm)
            .options(
                name=f"simfarm:{run.run_id}",
                namespace=self._namespace,
                num_cpus=0,
                max_concurrency=4,
            )
            .remote(simulated, run.dataset, run.config.seed)
        )
        run.sim_url = await run.farm.url.remote()
        logger.info("run %s: simulated model farm at %s", run.run_id, run.sim_url)

    def _release(self, run: RunState) -> None:
        placement.release(run.pg)
        run.pg = None
        if run.farm is not None:
            ray.kill(run.farm)
            run.farm = None

    async def _lane_loop(self, run: RunState, lane: LaneTrack) -> None:
        policy = run.policy
        while not lane.state.terminal and not run.cancel_requested:
            if lane.state is LaneState.RETRYING:
                self._transition(run, lane, LaneEvent.RETRY_DUE)
            else:
                self._transition(run, lane, LaneEvent.START)
            lane.attempts += 1
            failure = await self._attempt(run, lane)
            if lane.state.terminal or run.cancel_requested:
                return
            if failure is None or await self._lane_rows_complete(run, lane):
                self._transition(run, lane, LaneEvent.ROWS_COMPLETE)
                return
            kind, detail = failure
            decision = policy.decide(attempt=lane.attempts, kind=kind, detail=detail)
            await self._apply_decision(run, lane, decision)
            if decision.action is Action.RETRY:
                await asyncio.sleep(decision.delay_s)

    async def _attempt(self, run: RunState, lane: LaneTrack) -> tuple[FailureKind, str] | None:
        """Run one attempt of a lane; returns the failure, or None when its rows are complete."""
        try:
            lane.actor = self._spawn_lane(run, lane)
            lane.last_heard = time.monotonic()
            self._transition(run, lane, LaneEvent.STARTED)
            report: LaneReport = await lane.actor.run.remote()
        except SandboxUnavailableError as err:
            return FailureKind.SANDBOX_UNAVAILABLE, str(err)
        except RayActorError as err:
            return FailureKind.LANE_LOST, type(err).__name__
        except InfrastructureError as err:
            return FailureKind.LANE_ERROR, str(err)
        except Exception as err:  # a bug in a lane must not hang the run
            logger.exception("lane %s raised", lane.spec.identity)
            return FailureKind.LANE_ERROR, f"{type(err).__name__}: {err}"
        finally:
            self._kill_actor(lane)
        lane.chunks_run.extend(report.chunks_run)
        if report.stopped or not await self._lane_rows_complete(run, lane):
            return FailureKind.LANE_ERROR, "lane ended with cases still missing"
        return None

    def _spawn_lane(self, run: RunState, lane: LaneTrack) -> Any:
        assert run.pg is not None, "lanes are spawned only after the placement group is ready"
        options = placement.lane_options(run.pg, lane.bundle, run.config.engine)
        me = CoordinatorClient(ray.get_runtime_context().current_actor)
        return (
            ray.remote(ShardLane)
            .options(
                name=lane.spec.actor_name,
                namespace=self._namespace,
                max_restarts=0,
                max_concurrency=2,
                **options,
            )
            .remote(lane.spec, run.lane_work(lane.spec), run.dataset_ref, me)
        )

    def _kill_actor(self, lane: LaneTrack) -> None:
        if lane.actor is not None:
            ray.kill(lane.actor, no_restart=True)
            lane.actor = None

    async def _apply_decision(self, run: RunState, lane: LaneTrack, decision: Any) -> None:
        lane.reason = decision.reason
        if decision.action is Action.RETRY:
            self._metrics.lane_retries.inc(
                1.0, tags={"run": run.run_id, "kind": decision.reason.split(":")[0]}
            )
            self._transition(run, lane, LaneEvent.FAILED_RETRY, decision=decision)
            return
        self._transition(run, lane, LaneEvent.FAILED_GIVE_UP, decision=decision)
        await self._record_dead(run, lane, decision.reason)

    async def _record_dead(self, run: RunState, lane: LaneTrack, reason: str) -> None:
        async with self._session() as session:
            await repo.record_lane_failure(
                session,
                run_id=run.run_id,
                lane_identity=lane.spec.identity,
                reason=reason,
                attempts=lane.attempts,
            )

    async def _lane_rows_complete(self, run: RunState, lane: LaneTrack) -> bool:
        wanted = run.lane_case_ids(lane.spec)
        async with self._session() as session:
            present = await repo.existing_case_ids(
                session,
                run_id=run.run_id,
                model=lane.spec.model,
                rep=lane.spec.rep,
                case_ids=wanted,
            )
        return wanted <= present

    def _transition(self, run: RunState, lane: LaneTrack, event: LaneEvent, **extra: Any) -> None:
        old = lane.state
        lane.state = lane_transition(old, event)
        decision = extra.get("decision")
        logger.info(
            json.dumps(
                {
                    "event": "lane_transition",
                    "run": run.run_id,
                    "lane": lane.spec.identity,
                    "from": old.value,
                    "to": lane.state.value,
                    "on": event.value,
                    "attempt": lane.attempts,
                    "reason": lane.reason if decision is not None else None,
                    "policy": None
                    if decision is None
                    else {
                        "action": decision.action.value,
                        "delay_s": decision.delay_s,
                        "max_attempts": decision.max_attempts,
                    },
                }
            )
        )
        self._metrics.set_lanes(run.run_id, run.lane_counts(), [s.value for s in LaneState])

    # ------------------------------------------------------------------ rows from lanes
    async def remaining_cases(
        self, run_id: str, lane_identity: str, case_ids: list[str]
    ) -> list[str]:
        await self._ensure_started()
        run = self._run_or_raise(run_id)
        lane = run.lanes.get(lane_identity)
        if lane is None:
            raise AutorayError(f"run {run_id!r} has no lane {lane_identity!r}")
        lane.last_heard = time.monotonic()
        async with self._session() as session:
            present = await repo.existing_case_ids(
                session,
                run_id=run_id,
                model=lane.spec.model,
                rep=lane.spec.rep,
                case_ids=set(case_ids),
            )
        return [case_id for case_id in case_ids if case_id not in present]

    async def record_result(self, result: CaseResult, lane_identity: str | None = None) -> bool:
        """Persist one case row; a repeated delivery writes nothing and returns False.

        ``lane_identity`` names the delivering lane, which counts as a sign of life for the
        sweeper (only that lane: a sibling shard's rows say nothing about a silent one).
        """
        await self._ensure_started()
        run = self._run_or_raise(result.run_id)
        async with self._session() as session:
            inserted = await repo.upsert_case_result(session, result=result)
        run.deliveries["inserted" if inserted else "duplicate"] += 1
        lane = run.lanes.get(lane_identity) if lane_identity else None
        if lane is not None:
            lane.last_heard = time.monotonic()
        if inserted:
            run.cases_done += 1
            run.errors += result.outcome.error is not None
            self._metrics.record_case(
                model=result.model.label(),
                route=result.route,
                outcome=outcome_label(result),
                latency_ms=result.outcome.latency_ms,
            )
        return inserted

    def _run_or_raise(self, run_id: str) -> RunState:
        run = self._runs.get(run_id)
        if run is None:
            raise AutorayError(f"run {run_id!r} is not active on this coordinator")
        return run

    # ------------------------------------------------------------------ finalization
    async def _finalize(self, run: RunState) -> None:
        run.status = run_transition(run.status, RunStatus.FINALIZING)
        async with self._session() as session:
            rows = await repo.case_results(session, run_id=run.run_id)
        summaries = summarize(rows)
        table = build_table(
            summaries=summaries,
            run_id=run.run_id,
            models=run.config.model_keys,
            dataset_identity=run.dataset.identity,
            min_accuracy=run.config.min_accuracy,
            switch_cost_factor=run.config.switch_cost_factor,
            best_accuracy_gap=run.config.best_accuracy_gap,
            generated_at=now().isoformat(),
            context_lengths={m.key: m.context_length for m in run.config.models},
        )
        reason = None
        async with self._session() as session:
            await repo.replace_summaries(session, run_id=run.run_id, summaries=summaries)
            if table.is_publishable:
                await repo.save_table(session, table=table)
                await repo.activate_table(session, version=table.version)
                run.table_version = table.version
            else:
                missing = table.missing_routes()
                reason = (
                    f"routing table not published: {len(missing)} route(s) without a candidate "
                    f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                    "the previous table stays active"
                )
        if table.is_publishable:  # after the commit, so a woken replica reads the new version
            notify_table_activated(table.version)
        dead = [lane.spec.identity for lane in run.lanes.values() if lane.state is LaneState.DEAD]
        if dead and reason is None:
            reason = f"{len(dead)} lane(s) dead; finalized with the lanes that finished"
        await self._set_status(run, RunStatus.COMPLETED, reason)

    async def _set_status(self, run: RunState, status: RunStatus, reason: str | None) -> None:
        if run.status is not status:
            run.status = run_transition(run.status, status)
        run.reason = reason
        async with self._session() as session:
            await repo.set_run_status(
                session,
                run_id=run.run_id,
                status=status.value,
                reason=reason,
                table_version=run.table_version,
            )
        logger.info(
            json.dumps(
                {
                    "event": "run_status",
                    "run": run.run_id,
                    "status": status.value,
                    "reason": reason,
                    "table_version": run.table_version,
                }
            )
        )

    # ------------------------------------------------------------------ queries
    async def status(self, run_id: str) -> dict[str, Any]:
        await self._ensure_started()
        run = self._runs.get(run_id)
        if run is not None:
            return run.progress().as_dict()
        async with self._session() as session:
            return (await load_progress(session, run_id)).as_dict()

    async def lanes(self, run_id: str) -> list[dict[str, Any]]:
        await self._ensure_started()
        return [lane.as_dict() for lane in self._run_or_raise(run_id).lanes.values()]

    async def diagnostics(self, run_id: str) -> dict[str, Any]:
        """Counters that show exactly-once delivery at work (tests and operators read them)."""
        await self._ensure_started()
        run = self._run_or_raise(run_id)
        return {
            "deliveries": {
                "inserted": run.deliveries["inserted"],
                "duplicate": run.deliveries["duplicate"],
            },
            "resumed_rows": run.resumed_rows,
            "attempts": {lane.spec.identity: lane.attempts for lane in run.lanes.values()},
        }

    async def list_runs(self) -> list[dict[str, Any]]:
        await self._ensure_started()
        async with self._session() as session:
            records = await repo.list_runs(session)
        return [run_summary(record) for record in records]

    async def active_table(self) -> dict[str, Any] | None:
        await self._ensure_started()
        async with self._session() as session:
            table = await repo.active_table(session)
        return None if table is None else table.as_dict()

    # ------------------------------------------------------------------ cancel and sweep
    async def cancel(self, run_id: str) -> dict[str, Any]:
        await self._ensure_started()
        run = self._runs.get(run_id)
        if run is None or run.status is not RunStatus.RUNNING:
            return await self.status(run_id)  # unknown here, finished, or too late to stop
        run.cancel_requested = True
        stops = [lane.actor.stop.remote() for lane in run.lanes.values() if lane.actor is not None]
        if stops:
            await asyncio.wait(
                [asyncio.ensure_future(ref) for ref in stops], timeout=_CANCEL_GRACE_S
            )
        if run.task is not None:
            await asyncio.wait([run.task], timeout=_CANCEL_GRACE_S)
        for lane in run.lanes.values():
            self._kill_actor(lane)
            if not lane.state.terminal:
                self._transition(run, lane, LaneEvent.CANCEL)
        await self._set_status(run, RunStatus.CANCELLED, "cancelled by request")
        return run.progress().as_dict()

    async def _sweep_forever(self) -> None:
        """Check for silent lanes every ``sweep_after_s / 4`` (0.5 to 5 s). The tick is taken
        again each round, so a run started after the sweeper began is watched at its own pace."""
        while True:
            ticks = [run.config.engine.sweep_after_s / 4 for run in self._runs.values()]
            await asyncio.sleep(min(5.0, max(0.5, min(ticks, default=5.0))))
            for run in list(self._runs.values()):
                if run.status is RunStatus.RUNNING and not run.cancel_requested:
                    await self._sweep(run)

    async def _sweep(self, run: RunState) -> None:
        """Mark lanes dead that have not been heard from for ``sweep_after_s``."""
        limit = run.config.engine.sweep_after_s
        now = time.monotonic()
        for lane in run.lanes.values():
            silent = now - lane.last_heard
            if lane.state in (LaneState.STARTING, LaneState.RUNNING) and silent > limit:
                lane.reason = (
                    f"swept: no word from the lane for {silent:.0f} s (sweep_after_s={limit:g})"
                )
                self._transition(run, lane, LaneEvent.SWEPT)
                self._kill_actor(lane)
                await self._record_dead(run, lane, lane.reason)


# ---------------------------------------------------------------------- helpers
def _kick_self() -> None:
    """Queue a ping to ourselves, so a restarted coordinator resumes runs without waiting for a
    client to call it (Ray runs the call once ``__init__`` has returned)."""
    try:
        ray.get_runtime_context().current_actor.ping.remote()
    except Exception as err:  # outside an actor (unit tests) there is nothing to kick
        logger.debug("no self-kick: %s", err)
