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
from autoray.config import SandboxConfig, parse_config
from autoray.engine import controller as ctl
from autoray.engine.finalize import finalize_run
from autoray.engine.policy import FailureKind, failure_kind
from autoray.engine.run import RunState, new_run_id, outcome_label
from autoray.engine.states import LaneEvent, LaneState, RunStatus
from autoray.engine.stored import (
    create_stored_run,
    load_progress,
    load_stored_run,
    run_summary,
)
from autoray.errors import AutorayError
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


class RunShell:
    """One run on this coordinator: its controller, the handles only Ray can hold (placement
    group, lane actors, the farm), the tasks that wait on them, and the carrying out of the
    controller's actions. It decides nothing: every choice comes back from the controller."""

    def __init__(
        self,
        controller: ctl.RunController,
        *,
        sim_url: str | None,
        session: Callable[[], Any],
        namespace: str,
        metrics: EngineMetrics,
    ) -> None:
        self.controller = controller
        self.sim_url = sim_url
        self._session = session
        self._namespace = namespace
        self._metrics = metrics
        self.pg: PlacementGroup | None = None
        self.farm: Any = None
        self.dataset_ref: Any = None
        self.actors: dict[str, LaneClient] = {}
        self.watches: dict[str, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.write_lock = asyncio.Lock()
        self.done = asyncio.Event()
        self.drive: asyncio.Task[Any] | None = None

    @property
    def run(self) -> RunState:
        return self.controller.run

    def launch(self) -> None:
        self.drive = self._background(self._drive())

    async def record(self, result: CaseResult) -> bool | None:
        """Persist a row the controller accepts; None when it refuses it (the run is no longer
        running), else whether the row was new."""
        async with self.write_lock:
            if not self.controller.accepts_rows:
                return None
            async with self._session() as session:
                inserted = await repo.upsert_case_result(session, result=result)
        self.controller.row_recorded(result, inserted=inserted)
        if inserted:
            self._metrics.record_case(
                model=result.model.label(),
                route=result.route,
                outcome=outcome_label(result),
                latency_ms=result.outcome.latency_ms,
            )
        return inserted

    def _background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _drive(self) -> None:
        controller = self.controller
        try:
            if controller.needs_lanes:
                await self._reserve()
                await self._start_farm()
                self.dataset_ref = ray.put(self.run.dataset)
            await self.execute(controller.begin())
            await self.done.wait()
        except PlacementError as err:
            await self.execute(controller.fail(str(err)))
        except Exception as err:
            logger.exception("run %s failed", self.run.run_id)
            await self.execute(controller.fail(f"{type(err).__name__}: {err}"))
        finally:
            self._release()

    async def _reserve(self) -> None:
        run = self.run
        self.pg = await placement.reserve(  # placement logs each wait note it passes on
            run.run_id, len(run.plan.lanes), run.config.engine, on_wait=self.controller.waiting
        )
        logger.info(
            "run %s: placement group of %d lane bundles ready", run.run_id, len(run.plan.lanes)
        )

    async def _start_farm(self) -> None:
        simulated = [m for m in self.run.config.models if m.provider == "simulated"]
        if not simulated or self.sim_url:
            return
        from actors.farm import SimFarm

        self.farm = (
            ray.remote(SimFarm)
            .options(
                name=f"simfarm:{self.run.run_id}",
                namespace=self._namespace,
                num_cpus=0,
                max_concurrency=4,
            )
            .remote(simulated, self.run.dataset, self.run.config.seed)
        )
        self.sim_url = await self.farm.url.remote()
        logger.info("run %s: simulated model farm at %s", self.run.run_id, self.sim_url)

    def _release(self) -> None:
        for identity in list(self.actors):
            self._kill(identity)
        placement.release(self.pg)
        self.pg = None
        if self.farm is not None:
            ray.kill(self.farm)
            self.farm = None

    async def execute(self, actions: list[ctl.EngineAction]) -> None:
        """Carry out the controller's actions, in order."""
        for action in actions:
            await self._carry_out(action)

    async def _carry_out(self, action: ctl.EngineAction) -> None:
        run_id = self.run.run_id
        match action:
            case ctl.LaneMoved():
                self._log_move(action)
            case ctl.SpawnLane(lane, attempt):
                await self._spawn(lane, attempt)
            case ctl.KillLane(lane):
                self._kill(lane)
            case ctl.StopLanes(lanes):
                await self._stop(lanes)
            case ctl.RetryLater(lane, delay_s):
                self._background(self._retry_later(lane, delay_s))
            case ctl.RemoveSandboxes(lane):
                await self._remove_sandboxes(self.run.config.sandbox, run_id, lane)
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
                await self._finalize()
            case ctl.SetStatus():
                await self._set_status(action)

    async def _spawn(self, identity: str, attempt: int) -> None:
        run = self.run
        lane = run.lanes[identity]
        try:
            assert self.pg is not None, "lanes are spawned only once the placement group is ready"
            options = placement.lane_options(self.pg, lane.bundle, run.config.engine)
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
                .remote(lane.spec, run.lane_work(lane, sim_url=self.sim_url), self.dataset_ref, me)
            )
        except Exception as err:  # e.g. the predecessor's name not yet released
            detail = f"spawn failed: {type(err).__name__}: {err}"
            actions = self.controller.lane_failed(identity, attempt, FailureKind.LANE_ERROR, detail)
            self._background(self.execute(actions))
            return
        client = LaneClient(handle)
        self.actors[identity] = client
        self.watches[identity] = self._background(self._watch(identity, attempt, client))
        await self.execute(self.controller.lane_started(identity, attempt))

    async def _watch(self, identity: str, attempt: int, client: LaneClient) -> None:
        """Wait for one attempt of a lane and tell the controller how it ended."""
        controller = self.controller
        try:
            report = await client.run()
        except LaneLostError as err:
            actions = controller.lane_failed(identity, attempt, FailureKind.LANE_LOST, str(err))
        except Exception as err:  # whatever the lane raised, a bug included, is a failure
            detail = f"{type(err).__name__}: {err}"
            actions = controller.lane_failed(identity, attempt, failure_kind(err), detail)
        else:
            actions = controller.lane_ended(identity, attempt, report)
        await self.execute(actions)

    def _kill(self, identity: str) -> None:
        client = self.actors.pop(identity, None)
        if client is not None:
            try:
                client.kill()
            except Exception as err:  # already gone
                logger.debug("lane %s: kill: %s", identity, err)

    async def _stop(self, lanes: tuple[str, ...]) -> None:
        """Ask lanes to stop after their case in flight and give them a grace period to end."""
        clients = [self.actors[i] for i in lanes if i in self.actors]
        watches = [self.watches[i] for i in lanes if i in self.watches]
        await asyncio.gather(*(client.stop() for client in clients), return_exceptions=True)
        if watches:
            await asyncio.wait(watches, timeout=_CANCEL_GRACE_S)

    async def _retry_later(self, identity: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await self.execute(self.controller.retry_due(identity))

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

    async def _finalize(self) -> None:
        controller = self.controller
        try:
            async with self.write_lock:  # a row accepted before this point is written first
                outcome = await finalize_run(self._session, self.run)
        except Exception as err:
            logger.exception("run %s: finalization failed; it stays finalizing", self.run.run_id)
            await self.execute(controller.finalize_failed(f"{type(err).__name__}: {err}"))
            return
        if outcome.activated and outcome.table_version is not None:
            notify_table_activated(outcome.table_version)  # after the commit
        await self.execute(controller.finalized(outcome))

    async def _set_status(self, action: ctl.SetStatus) -> None:
        run_id = self.run.run_id
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
        logger.info(json.dumps(action.as_log(run_id)))
        if action.status.terminal:
            self.done.set()
            if self.pg is None and self.drive not in (None, asyncio.current_task()):
                self.drive.cancel()  # e.g. cancelled while waiting for containers

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

    def _log_move(self, moved: ctl.LaneMoved) -> None:
        run = self.run
        logger.info(json.dumps(moved.as_log(run.run_id)))
        decision = moved.decision
        if moved.event is LaneEvent.FAILED_RETRY and decision is not None:
            tags = {"run": run.run_id, "kind": decision.kind.value}
            self._metrics.lane_retries.inc(1.0, tags=tags)
        self._metrics.set_lanes(run.run_id, run.lane_counts(), [s.value for s in LaneState])


class Coordinator:
    """Plain class; :func:`get_or_create_coordinator` makes it a named actor."""

    def __init__(self, database_url: str, namespace: str) -> None:
        self._database_url = database_url
        self._namespace = namespace
        self._store: Store | None = None
        self._runs: dict[str, RunShell] = {}
        self._start_lock = asyncio.Lock()
        self._started = False
        self._resume_pending = False
        self._sweeper: asyncio.Task[None] | None = None
        self._metrics = EngineMetrics()
        logs.configure()
        _kick_self()

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

    async def start_run(
        self, config: dict[str, Any], *, run_id: str | None = None, sim_url: str | None = None
    ) -> str:
        await self._ensure_started()
        cfg = parse_config(config, source="run config")
        dataset = await asyncio.to_thread(load_dataset, cfg.dataset)
        async with self._session() as session:
            run = await create_stored_run(
                session, run_id=run_id or new_run_id(cfg.name), config=cfg, dataset=dataset
            )
        self._launch(self._shell(ctl.RunController(run, time.monotonic), sim_url))
        return run.run_id

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
        async with self._session() as session:
            controller = await load_stored_run(session, record, cfg, dataset, clock=time.monotonic)
        live = self._shell(controller, sim_url)
        if controller.run.status is RunStatus.COMPLETED:
            await live.execute(controller.reopen())
        run = controller.run
        logger.info(
            "run %s resumed: %d/%d cases present", run.run_id, run.cases_done, run.cases_total
        )
        self._launch(live)

    def _shell(self, controller: ctl.RunController, sim_url: str | None) -> RunShell:
        return RunShell(
            controller,
            sim_url=sim_url,
            session=self._session,
            namespace=self._namespace,
            metrics=self._metrics,
        )

    def _launch(self, live: RunShell) -> None:
        self._runs[live.run.run_id] = live
        live.launch()

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
        inserted = await live.record(result)
        if inserted is None:
            self._refuse(result, lane_identity, live)
            return False
        return inserted

    def _refuse(self, result: CaseResult, lane: str | None, live: RunShell | None) -> None:
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

    def _live_or_raise(self, run_id: str) -> RunShell:
        live = self._runs.get(run_id)
        if live is None:
            raise AutorayError(f"run {run_id!r} is not active on this coordinator")
        return live

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

    async def cancel(self, run_id: str) -> dict[str, Any]:
        await self._ensure_started()
        live = self._runs.get(run_id)
        if live is not None:
            await live.execute(live.controller.cancel())
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
                    await live.execute(live.controller.tick())
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
