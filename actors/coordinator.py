"""The coordinator actor: detached, named, async, the single writer of run state, and a thin
shell around the run controller (:mod:`autoray.engine.controller`).

Every engine decision (which lane to spawn, retry or record dead, when a lane is silent, when
and what to finalize, which rows to accept) is the controller's. This actor carries its
actions out with Ray (lane actors, the placement group, the simulated farm, cleanup tasks on
every node), runs the asyncio tasks that wait on lanes and timers, writes the database, and
emits metrics and structured logs.

Detached actors do not survive the cluster going down, so everything needed to resume a run
lives in the database: on (re)start the coordinator reloads every run still ``running`` or
``finalizing`` and lets the controller carry on from the rows it finds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import logs, placement
from actors.clients import (
    COORDINATOR_NAME,
    DEFAULT_NAMESPACE,
    CoordinatorClient,
    LaneClient,
    LaneLostError,
)
from actors.lane import ShardLane
from actors.metrics import EngineMetrics
from actors.placement import PlacementError
from actors.table_events import notify_table_activated
from autoray.cases import load_dataset
from autoray.config import SandboxConfig, config_snapshot, parse_config
from autoray.engine import controller as ctl
from autoray.engine.finalize import finalize_run
from autoray.engine.policy import FailureKind, failure_kind
from autoray.engine.run import RunState, build_run, new_run_id, outcome_label
from autoray.engine.states import LaneEvent, LaneState, RunStatus
from autoray.engine.stored import load_progress, run_summary
from autoray.errors import AutorayError
from autoray.identity import engine_identity
from autoray.results import CaseResult
from autoray.sandbox import remove_sandboxes
from autoray.store import migrate, open_store, repo
from autoray.store.engine import Store, redact_url

logger = logging.getLogger("autoray.coordinator")

_CANCEL_GRACE_S = 20.0
_CLEANUP_TIMEOUT_S = 60.0
_DB_WRITE_TRIES = 6
"""A status or dead-lane write is tried this often, 0.5 s, 1 s, 2 s ... apart (about 15 s in
all): a cancelled run whose status never reached a stalled database would resume later."""


@dataclass
class _Live:
    """A run the coordinator drives: its controller, and the handles only Ray can hold."""

    controller: ctl.RunController
    sim_url: str | None = None
    pg: PlacementGroup | None = None
    farm: Any = None
    dataset_ref: Any = None
    actors: dict[str, LaneClient] = field(default_factory=dict)
    watches: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    drive: asyncio.Task[Any] | None = None

    @property
    def run(self) -> RunState:
        return self.controller.run


class Coordinator:
    """Plain class; :func:`get_or_create_coordinator` makes it a named actor."""

    def __init__(self, database_url: str, namespace: str) -> None:
        self._database_url = database_url
        self._namespace = namespace
        self._store: Store | None = None
        self._runs: dict[str, _Live] = {}
        self._start_lock = asyncio.Lock()
        self._started = False
        self._resume_pending = False
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
                self._sweeper = asyncio.create_task(self._sweep_forever())
                await self._resume_all()
        assert self._store is not None
        return self._store

    async def _resume_all(self) -> None:
        """Resume every stored run still in flight; a database error is retried next tick,
        a run that cannot resume is marked failed with the reason (no zombie ``running``)."""
        try:
            async with self._session() as session:
                records = await repo.running_runs(session)
        except Exception:
            logger.exception("cannot list the runs to resume; retrying on the next tick")
            self._resume_pending = True
            return
        self._resume_pending = False
        for record in records:
            if record.run_id in self._runs:
                continue
            try:
                await self._resume_record(record, sim_url=None)
            except AutorayError as err:
                logger.error("run %s cannot resume: %s", record.run_id, err)
                await self._mark_failed(record.run_id, f"cannot resume: {err}")
            except Exception:
                logger.exception("run %s: resume failed; retrying on the next tick", record.run_id)
                self._resume_pending = True

    async def _mark_failed(self, run_id: str, reason: str) -> None:
        try:
            async with self._session() as session:
                await repo.set_run_status(session, run_id=run_id, status="failed", reason=reason)
        except Exception:
            logger.exception("run %s: could not mark it failed", run_id)

    def _session(self) -> Any:
        assert self._store is not None
        return self._store.session()

    async def ping(self) -> dict[str, Any]:
        await self._ensure_started()
        return {
            "database_url": self._database_url,
            "database_url_redacted": redact_url(self._database_url),
            "namespace": self._namespace,
            "runs": sorted(
                run_id for run_id, live in self._runs.items() if not live.run.status.terminal
            ),
        }

    # ------------------------------------------------------------------ starting runs
    async def start_run(
        self, config: dict[str, Any], *, run_id: str | None = None, sim_url: str | None = None
    ) -> str:
        await self._ensure_started()
        cfg = parse_config(config, source="run config")
        dataset = await asyncio.to_thread(load_dataset, cfg.dataset)
        run_id = run_id or new_run_id(cfg.name)
        run = build_run(
            run_id=run_id, config=cfg, dataset=dataset, engine_identity=engine_identity(dataset)
        )  # plans the lanes, which checks the budget
        async with self._session() as session:
            record = await repo.create_run(
                session,
                run_id=run_id,
                name=cfg.name,
                config=config_snapshot(cfg),
                engine_identity=run.engine_identity,
                dataset_identity=dataset.identity,
                models=cfg.model_keys,
            )
        run.started_at = record.created_at
        self._launch(_Live(ctl.RunController(run, time.monotonic), sim_url=sim_url))
        return run_id

    async def resume_run(self, run_id: str, *, sim_url: str | None = None) -> str:
        """Carry on a run in flight, re-finalize a ``finalizing`` one, or reopen a completed
        run with dead lanes to complete its entries."""
        await self._ensure_started()
        live = self._runs.get(run_id)
        if live is not None and not live.run.status.terminal:
            return run_id
        async with self._session() as session:
            record = await repo.get_run(session, run_id=run_id)
            dead = [] if record is None else await repo.lane_failures(session, run_id=run_id)
        if record is None:
            raise AutorayError(f"no run with id {run_id!r}; `autoray bench list` shows the runs")
        error = ctl.resume_error(run_id, RunStatus(record.status), len(dead))
        if error is not None:
            raise AutorayError(error)
        self._runs.pop(run_id, None)
        await self._resume_record(record, sim_url=sim_url)
        return run_id

    async def _resume_record(self, record: Any, *, sim_url: str | None) -> None:
        cfg = parse_config(record.config, source=f"snapshot of run {record.run_id}")
        dataset = await asyncio.to_thread(load_dataset, cfg.dataset)
        identity = engine_identity(dataset)
        if identity != record.engine_identity:
            raise AutorayError(
                f"engine identity changed since the run started ({record.engine_identity} -> "
                f"{identity}): the dataset or the graders differ, so its rows cannot be reused; "
                "start a new run"
            )
        async with self._session() as session:
            present = await repo.case_keys(session, run_id=record.run_id)
            dead = await repo.lane_failures(session, run_id=record.run_id)
            errors = await repo.count_case_errors(session, run_id=record.run_id)
        run = build_run(
            run_id=record.run_id,
            config=cfg,
            dataset=dataset,
            engine_identity=identity,
            present=present,
        )
        run.started_at, run.status = record.created_at, RunStatus(record.status)
        run.table_version, run.reason, run.errors = (
            record.table_version,
            record.status_reason,
            errors,
        )
        controller = ctl.RunController(run, time.monotonic)
        controller.restore({failure.lane_identity: failure.reason for failure in dead})
        live = _Live(controller, sim_url=sim_url)
        if run.status is RunStatus.COMPLETED:
            await self._execute(live, controller.reopen())
        logger.info(
            "run %s resumed: %d/%d cases present", run.run_id, run.cases_done, run.cases_total
        )
        self._launch(live)

    def _launch(self, live: _Live) -> None:
        self._runs[live.run.run_id] = live
        live.drive = self._background(live, self._drive(live))

    def _background(self, live: _Live, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        live.tasks.add(task)
        task.add_done_callback(live.tasks.discard)
        return task

    # ------------------------------------------------------------------ driving a run
    async def _drive(self, live: _Live) -> None:
        controller = live.controller
        try:
            if controller.needs_lanes:
                await self._reserve(live)
                await self._start_farm(live)
                live.dataset_ref = ray.put(live.run.dataset)
            await self._execute(live, controller.begin())
            await live.done.wait()
        except PlacementError as err:
            await self._execute(live, controller.fail(str(err)))
        except Exception as err:
            logger.exception("run %s failed", live.run.run_id)
            await self._execute(live, controller.fail(f"{type(err).__name__}: {err}"))
        finally:
            self._release(live)

    async def _reserve(self, live: _Live) -> None:
        run = live.run

        def waiting(message: str) -> None:
            live.controller.waiting(message)
            logger.info("run %s: %s", run.run_id, message)

        live.pg = await placement.reserve(
            run.run_id, len(run.plan.lanes), run.config.engine, on_wait=waiting
        )
        logger.info(
            "run %s: placement group of %d lane bundles ready", run.run_id, len(run.plan.lanes)
        )

    async def _start_farm(self, live: _Live) -> None:
        simulated = [m for m in live.run.config.models if m.provider == "simulated"]
        if not simulated or live.sim_url:
            return
        from actors.farm import SimFarm

        live.farm = (
            ray.remote(SimFarm)
            .options(
                name=f"simfarm:{live.run.run_id}",
                namespace=self._namespace,
                num_cpus=0,
                max_concurrency=4,
            )
            .remote(simulated, live.run.dataset, live.run.config.seed)
        )
        live.sim_url = await live.farm.url.remote()
        logger.info("run %s: simulated model farm at %s", live.run.run_id, live.sim_url)

    def _release(self, live: _Live) -> None:
        for identity in list(live.actors):
            self._kill(live, identity)
        placement.release(live.pg)
        live.pg = None
        if live.farm is not None:
            ray.kill(live.farm)
            live.farm = None

    # ------------------------------------------------------------------ carrying out actions
    async def _execute(self, live: _Live, actions: list[ctl.EngineAction]) -> None:
        """Carry out the controller's actions, in order."""
        for action in actions:
            await self._carry_out(live, action)

    async def _carry_out(self, live: _Live, action: ctl.EngineAction) -> None:  # noqa: C901
        run_id = live.run.run_id
        match action:
            case ctl.LaneMoved():
                self._log_move(live, action)
            case ctl.SpawnLane(lane, attempt):
                await self._spawn(live, lane, attempt)
            case ctl.KillLane(lane):
                self._kill(live, lane)
            case ctl.StopLanes(lanes):
                await self._stop(live, lanes)
            case ctl.RetryLater(lane, delay_s):
                self._background(live, self._retry_later(live, lane, delay_s))
            case ctl.RemoveSandboxes(lane):
                await self._remove_sandboxes(live.run.config.sandbox, run_id, lane)
            case ctl.RecordDead(lane, reason, attempts):
                await self._write(
                    "record a dead lane",
                    lambda s: repo.record_lane_failure(
                        s, run_id=run_id, lane_identity=lane, reason=reason, attempts=attempts
                    ),
                )
            case ctl.ForgetDead():
                await self._write(
                    "forget dead lanes", lambda s: repo.clear_lane_failures(s, run_id=run_id)
                )
            case ctl.Finalize():
                await self._finalize(live)
            case ctl.SetStatus():
                await self._set_status(live, action)

    async def _spawn(self, live: _Live, identity: str, attempt: int) -> None:
        run = live.run
        lane = run.lanes[identity]
        try:
            assert live.pg is not None, "lanes are spawned only once the placement group is ready"
            options = placement.lane_options(live.pg, lane.bundle, run.config.engine)
            me = CoordinatorClient(ray.get_runtime_context().current_actor)
            handle = (
                ray.remote(ShardLane)
                .options(
                    name=lane.spec.actor_name,
                    namespace=self._namespace,
                    max_restarts=0,
                    max_concurrency=3,
                    **options,
                )
                .remote(lane.spec, run.lane_work(lane, sim_url=live.sim_url), live.dataset_ref, me)
            )
        except Exception as err:  # e.g. the predecessor's name not yet released
            detail = f"spawn failed: {type(err).__name__}: {err}"
            actions = live.controller.lane_failed(identity, attempt, FailureKind.LANE_ERROR, detail)
            self._background(live, self._execute(live, actions))
            return
        client = LaneClient(handle)
        live.actors[identity] = client
        live.watches[identity] = self._background(
            live, self._watch(live, identity, attempt, client)
        )
        await self._execute(live, live.controller.lane_started(identity, attempt))

    async def _watch(self, live: _Live, identity: str, attempt: int, client: LaneClient) -> None:
        """Wait for one attempt of a lane and tell the controller how it ended."""
        controller = live.controller
        try:
            report = await client.run()
        except LaneLostError as err:
            actions = controller.lane_failed(identity, attempt, FailureKind.LANE_LOST, str(err))
        except Exception as err:  # whatever the lane raised, a bug included, is a failure
            detail = f"{type(err).__name__}: {err}"
            actions = controller.lane_failed(identity, attempt, failure_kind(err), detail)
        else:
            actions = controller.lane_ended(identity, attempt, report)
        await self._execute(live, actions)

    def _kill(self, live: _Live, identity: str) -> None:
        client = live.actors.pop(identity, None)
        if client is not None:
            try:
                client.kill()
            except Exception as err:  # already gone
                logger.debug("lane %s: kill: %s", identity, err)

    async def _stop(self, live: _Live, lanes: tuple[str, ...]) -> None:
        """Ask lanes to stop after their case in flight and give them a grace period to end."""
        clients = [live.actors[i] for i in lanes if i in live.actors]
        watches = [live.watches[i] for i in lanes if i in live.watches]
        await asyncio.gather(*(client.stop() for client in clients), return_exceptions=True)
        if watches:
            await asyncio.wait(watches, timeout=_CANCEL_GRACE_S)

    async def _retry_later(self, live: _Live, identity: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self._execute(live, live.controller.retry_due(identity))

    async def _remove_sandboxes(self, config: SandboxConfig, run_id: str, lane: str | None) -> None:
        """Remove sandboxes by label with one task on every alive node (a lane's container
        lives on the node that hosted it); errors are logged, never raised."""
        task: Any = ray.remote(num_cpus=0)(_remove_here)
        refs = [
            task.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(config, run_id, lane)
            for node in ray.nodes()
            if node.get("Alive")
        ]
        try:
            removed = await asyncio.wait_for(asyncio.gather(*refs), _CLEANUP_TIMEOUT_S)
        except Exception as err:
            logger.warning("run %s: sandbox cleanup (lane %s) failed: %s", run_id, lane, err)
            return
        if sum(removed):
            logger.info(
                "run %s: removed %d sandbox(es) of %s", run_id, sum(removed), lane or "the run"
            )

    async def _finalize(self, live: _Live) -> None:
        controller = live.controller
        try:
            async with live.write_lock:  # a row accepted before this point is written first
                outcome = await finalize_run(self._session, live.run)
        except Exception as err:
            logger.exception("run %s: finalization failed; it stays finalizing", live.run.run_id)
            await self._execute(live, controller.finalize_failed(f"{type(err).__name__}: {err}"))
            return
        if outcome.activated and outcome.table_version is not None:
            notify_table_activated(outcome.table_version)  # after the commit
        await self._execute(live, controller.finalized(outcome))

    async def _set_status(self, live: _Live, action: ctl.SetStatus) -> None:
        run_id = live.run.run_id
        await self._write(
            f"set status {action.status.value}",
            lambda s: repo.set_run_status(
                s,
                run_id=run_id,
                status=action.status.value,
                reason=action.reason,
                table_version=action.table_version,
            ),
        )
        logger.info(
            json.dumps(
                {
                    "event": "run_status",
                    "run": run_id,
                    "status": action.status.value,
                    "reason": action.reason,
                    "table_version": action.table_version,
                }
            )
        )
        if action.status.terminal:
            live.done.set()
            if live.pg is None and live.drive not in (None, asyncio.current_task()):
                live.drive.cancel()  # e.g. cancelled while waiting for containers

    async def _write(self, what: str, work: Callable[[Any], Awaitable[Any]]) -> None:
        """A database write, tried a few times: a stalled database must not lose a status."""
        for attempt in range(1, _DB_WRITE_TRIES + 1):
            try:
                async with self._session() as session:
                    await work(session)
                return
            except Exception as err:
                logger.warning("could not %s (try %d): %s", what, attempt, err)
                if attempt < _DB_WRITE_TRIES:
                    await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        logger.error("gave up trying to %s", what)

    def _log_move(self, live: _Live, moved: ctl.LaneMoved) -> None:
        run = live.run
        decision = moved.decision
        logger.info(
            json.dumps(
                {
                    "event": "lane_transition",
                    "run": run.run_id,
                    "lane": moved.lane,
                    "from": moved.old.value,
                    "to": moved.new.value,
                    "on": moved.event.value,
                    "attempt": moved.attempt,
                    "reason": moved.reason,
                    "policy": None
                    if decision is None
                    else {
                        "action": decision.action.value,
                        "delay_s": decision.delay_s,
                        "failures_since_row": decision.attempt,
                        "max_attempts": decision.max_attempts,
                    },
                }
            )
        )
        if moved.event is LaneEvent.FAILED_RETRY and moved.reason:
            kind = moved.reason.split(":")[0]
            self._metrics.lane_retries.inc(1.0, tags={"run": run.run_id, "kind": kind})
        self._metrics.set_lanes(run.run_id, run.lane_counts(), [s.value for s in LaneState])

    # ------------------------------------------------------------------ calls from lanes
    async def remaining_cases(
        self, run_id: str, lane_identity: str, case_ids: list[str]
    ) -> list[str]:
        await self._ensure_started()
        lane = self._live_or_raise(run_id).run.lanes.get(lane_identity)
        if lane is None:
            raise AutorayError(f"run {run_id!r} has no lane {lane_identity!r}")
        return [case_id for case_id in case_ids if case_id in lane.missing]

    async def heartbeat(self, run_id: str, lane_identity: str, attempt: int) -> None:
        live = self._runs.get(run_id)
        if live is not None:
            live.controller.heartbeat(lane_identity, attempt)

    async def record_result(self, result: CaseResult, lane_identity: str | None = None) -> bool:
        """Persist one case row; a repeated delivery writes nothing and returns False, and so
        does a row the controller refuses (the run is finalizing or over: logged)."""
        await self._ensure_started()
        live = self._runs.get(result.run_id)
        if live is None:
            self._refuse(result, lane_identity, None)
            return False
        async with live.write_lock:
            if not live.controller.accepts_rows:
                self._refuse(result, lane_identity, live)
                return False
            async with self._session() as session:
                inserted = await repo.upsert_case_result(session, result=result)
        live.controller.row_recorded(result, inserted=inserted)
        if inserted:
            self._metrics.record_case(
                model=result.model.label(),
                route=result.route,
                outcome=outcome_label(result),
                latency_ms=result.outcome.latency_ms,
            )
        return inserted

    def _refuse(self, result: CaseResult, lane: str | None, live: _Live | None) -> None:
        status = "not active here" if live is None else live.run.status.value
        if live is not None:
            live.run.deliveries["refused"] += 1
        logger.warning(
            json.dumps(
                {
                    "event": "row_refused",
                    "run": result.run_id,
                    "lane": lane,
                    "case": result.case_id,
                    "rep": result.rep,
                    "run_status": status,
                }
            )
        )

    def _live_or_raise(self, run_id: str) -> _Live:
        live = self._runs.get(run_id)
        if live is None:
            raise AutorayError(f"run {run_id!r} is not active on this coordinator")
        return live

    # ------------------------------------------------------------------ queries
    async def status(self, run_id: str) -> dict[str, Any]:
        await self._ensure_started()
        live = self._runs.get(run_id)
        if live is not None:
            elapsed = time.time() - live.run.started_at.timestamp()
            return live.run.progress(elapsed_s=elapsed).as_dict()
        async with self._session() as session:
            return (await load_progress(session, run_id)).as_dict()

    async def lanes(self, run_id: str) -> list[dict[str, Any]]:
        await self._ensure_started()
        return [lane.as_dict() for lane in self._live_or_raise(run_id).run.lanes.values()]

    async def diagnostics(self, run_id: str) -> dict[str, Any]:
        """Counters that show exactly-once delivery at work (tests and operators read them)."""
        await self._ensure_started()
        run = self._live_or_raise(run_id).run
        return {
            "deliveries": {
                "inserted": run.deliveries["inserted"],
                "duplicate": run.deliveries["duplicate"],
            },
            "refused": run.deliveries["refused"],
            "resumed_rows": run.resumed_rows,
            "attempts": {lane.identity: lane.attempts for lane in run.lanes.values()},
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
        live = self._runs.get(run_id)
        if live is not None:
            await self._execute(live, live.controller.cancel())
        return await self.status(run_id)

    async def _sweep_forever(self) -> None:
        """Tick every run (sweep silent lanes, retry a failed finalization) every
        ``heartbeat_s`` at most, 0.5 to 5 s; an error in one tick is logged, and the next tick
        tries again (one database error once ended sweeping for every run)."""
        while True:
            await asyncio.sleep(self._tick_s())
            if self._resume_pending:
                await self._resume_all()
            for live in list(self._runs.values()):
                if live.run.status.terminal:
                    continue
                try:
                    await self._execute(live, live.controller.tick())
                except Exception:
                    logger.exception("run %s: tick failed; the next tick retries", live.run.run_id)

    def _tick_s(self) -> float:
        engines = [live.run.config.engine for live in self._runs.values()]
        ticks = [min(e.heartbeat_s, e.sweep_after_s / 4) for e in engines]
        return min(5.0, max(0.5, min(ticks, default=5.0)))


def get_or_create_coordinator(
    database_url: str, *, namespace: str = DEFAULT_NAMESPACE
) -> CoordinatorClient:
    """Attach to the named coordinator, creating it (detached) when none runs.

    A coordinator is bound to one database; attaching with another URL is refused rather than
    silently writing a run's rows somewhere the user is not looking.
    """
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


def _remove_here(config: SandboxConfig, run_id: str, lane: str | None) -> int:
    """Remove the run's (or one lane's) sandboxes on the node this task runs on."""
    return remove_sandboxes(config, run_id=run_id, lane=lane)


def _kick_self() -> None:
    """Queue a ping to ourselves, so a restarted coordinator resumes runs without waiting for a
    client to call it (Ray runs the call once ``__init__`` has returned)."""
    try:
        ray.get_runtime_context().current_actor.ping.remote()
    except Exception as err:  # outside an actor (unit tests) there is nothing to kick
        logger.debug("no self-kick: %s", err)
