"""Chaos soak: a real benchmark run on local Ray while seeded faults hit it, then proof that the
run still published the clean run's table.

    .venv/bin/python -m benchmarks.chaos --seed 1 --seeds 3 --size small

One clean run of a config first, then one faulted run of the same config per seed. During a
faulted run, at seeded moments (fractions of the clean run's rows, so faults land mid-run on a
slow machine as on a fast one) the soak, one fault at a time:

* SIGKILLs a working lane's process (``lane_kill``);
* SIGKILLs the coordinator's process, which Ray restarts (``coordinator_kill``);
* makes every sandbox start fail for a few seconds, and kills a lane so that its retry meets the
  failing starts (``sandbox_starts``: the ``fault`` sandbox backend's ``fail_starts_for``);
* makes the simulated farm answer HTTP 503 (``farm_503``) or refuse connections
  (``farm_refuse``) for a few seconds, through its loopback-only test fault switches;
* stalls the database: another connection holds SQLite's write lock for a few seconds
  (``db_stall``).

By design shard 0 of ``sim/doomed`` fails every sandbox start in every repetition, so those
lanes must end dead after their retries and the model's incomplete entries must stay out of the
table (whole entries or nothing). At the end it checks: every expected row exactly once; no
row carries an infrastructure error (each row equals the clean run's); dead lanes only where
retries were exhausted by design; the published table equals the clean run's, version
included. Everything runs on 127.0.0.1, bounded in fault count and time. It prints the faults
injected and survived, and the checks; the exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import ray
import yaml

from actors import driver
from autoray.cases import load_dataset
from autoray.errors import AutorayError, InfrastructureError
from autoray.planning import lane_identity
from autoray.results import CaseResult
from autoray.sandbox.faults import fail_starts_for
from autoray.settings import Settings
from autoray.store import open_store, repo
from autoray.table import RoutingTable, routes_equal
from benchmarks.machine import machine

KINDS = ("lane_kill", "coordinator_kill", "sandbox_starts", "farm_503", "farm_refuse", "db_stall")
DOOMED = "sim/doomed"
INFRA_MARKERS = (
    "503",
    "429",
    "refused",
    "connecterror",
    "connection",
    "database is locked",
    "injected",
    "sandbox",
    "infrastructure",
    "lost",
    "actor",
)
"""Words an infrastructure failure leaves in an error; a model's own failure has none of them."""
_POLL_S = 0.2
_GAP_S = 1.0
_INJECT_RETRY_S = 20.0
"""Quiet time between two faults, so each is survived on its own before the next."""


@dataclass(frozen=True)
class Size:
    """How big a soak is: the dataset, the run's shape and the fault budget."""

    cases_per_route: int
    repetitions: int
    chunk_size: int
    budget: int
    latency_ms: float
    faults: int
    fault_s: tuple[float, float]
    run_timeout_s: float


SIZES = {
    # 18 cases x 3 entries, 6 lanes: about 100 s a run on 2 cores.
    "small": Size(1, 1, 3, 6, 2000, 6, (2.0, 5.0), 400),
    # 54 cases x 3 entries x 2 reps, 18 lanes: the run the README shows.
    "large": Size(3, 2, 3, 18, 4000, 12, (3.0, 12.0), 1800),
}
"""A model call sleeps ``latency_ms`` so that a lane's rows take longer than the size's faults
(one at a time, about 30 s small and 100 s large): a run on an idle machine that raced ahead of
its faults ended before the last of them (found by the soak, see ``docs/chaos-findings.md``)."""


@dataclass
class Fault:
    """One planned fault and, once it ran, what it did."""

    kind: str
    at_fraction: float
    duration_s: float
    injected: bool = False
    at_s: float | None = None
    at_rows: int | None = None
    evidence: str = "not reached: the run ended first"


@dataclass
class RunResult:
    """What a finished run left behind, read from the coordinator and the database."""

    run_id: str
    status: str
    reason: str | None
    table_version: str | None
    wall_s: float
    rows: list[CaseResult]
    dead_lanes: set[str]
    designed_dead: set[str]
    table: RoutingTable | None
    resume_calls: int = 0
    dead_reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class SeedReport:
    seed: int
    faults: list[Fault]
    run: RunResult
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


# ---------------------------------------------------------------------------- the plan


def plan_faults(seed: int, size: Size) -> list[Fault]:
    """Every kind once, then random kinds up to ``size.faults``, in a seeded order, at seeded
    fractions of the expected rows between 5 % and 75 % (sorted: they run one at a time)."""
    rng = random.Random(seed)
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(max(0, size.faults - len(KINDS)))]
    rng.shuffle(kinds)
    fractions = sorted(rng.uniform(0.05, 0.75) for _ in kinds)
    low, high = size.fault_s
    return [
        Fault(kind, round(fraction, 3), round(rng.uniform(low, high), 1))
        for kind, fraction in zip(kinds, fractions, strict=True)
    ]


def mini_dataset(directory: Path, cases_per_route: int) -> str:
    """The first ``cases_per_route`` built-in cases of every route, written as case files."""
    full = load_dataset("builtin:decider")
    by_task: dict[str, list[dict[str, Any]]] = {}
    for route in full.routes():
        for case in full.by_route(route)[:cases_per_route]:
            by_task.setdefault(case.task_type, []).append(case.model_dump(mode="json"))
    directory.mkdir(parents=True, exist_ok=True)
    for task_type, cases in by_task.items():
        text = yaml.safe_dump({"task_type": task_type, "cases": cases}, sort_keys=False)
        (directory / f"{task_type}.yaml").write_text(text)
    return str(directory)


def _model(model_id: str, price: float, skill: dict[str, float], latency_ms: float) -> dict:
    return {
        "id": model_id,
        "provider": "simulated",
        "price": {"input_per_mtok": price, "output_per_mtok": 4 * price},
        "skill": skill,
        "latency_ms": latency_ms,
    }


def soak_config(run_id: str, dataset: str, size: Size, state_dir: str) -> dict[str, Any]:
    """The config of every run of a soak; only the doomed lane's identity names the run.

    ``sim/doomed`` is cheap and perfect: were its incomplete entry ranked, it would top every
    route, so a table that leaks partial data cannot pass for the clean one.
    """
    latency = size.latency_ms
    models = [
        _model("sim/cheap-debugger", 0.1, {"default": 0.0, "debugging/*": 1.0}, latency),
        _model("sim/generalist", 1.0, {"default": 1.0}, latency),
        _model(DOOMED, 0.05, {"default": 1.0}, latency),
    ]
    return {
        "name": "chaos-soak",
        "dataset": dataset,
        "repetitions": size.repetitions,
        "chunk_size": size.chunk_size,
        "max_live_containers": size.budget,
        "sandbox": {
            "backend": "fault",
            "timeout_s": 60,
            "faults": {"state_dir": state_dir, "always": doomed_lanes(run_id, size.repetitions)},
        },
        # Retries since a lane's last row must outlast the longest fault: 8 attempts with
        # backoff from 0.5 s to 4 s span about 25 s, the longest fault of a size at most 12 s.
        "engine": {
            "max_attempts": 8,
            "backoff_base_s": 0.5,
            "backoff_max_s": 4.0,
            "placement_timeout_s": 120,
        },
        "models": models,
    }


def doomed_lanes(run_id: str, repetitions: int) -> list[str]:
    """Shard 0 of ``sim/doomed`` in every repetition: each of its entries is incomplete, so the
    model must be absent from the table."""
    return [lane_identity(run_id, DOOMED, None, rep, 0) for rep in range(repetitions)]


def lane_suffix(identity: str, run_id: str) -> str:
    """A lane identity without its run id, to compare the lanes of two runs."""
    return identity.removeprefix(run_id + ":")


# ---------------------------------------------------------------------------- the soak


class Soak:
    """One coordinator (own namespace, own SQLite file) on a Ray this process is connected to."""

    def __init__(self, workdir: Path, size: Size, out: Callable[[str], None] = print) -> None:
        self.size = size
        self.workdir = workdir
        self.namespace = f"autoray-chaos-{uuid.uuid4().hex[:8]}"
        self.database_url = f"sqlite+aiosqlite:///{workdir / 'chaos.db'}"
        self.state_dir = str(workdir / "sandbox-faults")
        self.dataset = mini_dataset(workdir / "dataset", size.cases_per_route)
        self.out = out
        self.options = driver.DriverOptions(
            database_url=self.database_url, namespace=self.namespace
        )
        self.client = driver.coordinator(self.options, self.database_url)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.shutdown()

    def clean_run(self) -> RunResult:
        run_id = f"chaos-clean-{uuid.uuid4().hex[:6]}"
        return self._run(run_id, [], expected=0)

    def faulted_run(self, seed: int, clean: RunResult) -> tuple[RunResult, list[Fault]]:
        """A run of the clean run's config with the seed's faults, placed at fractions of the
        rows the clean run wrote (the doomed lane's cases never get one)."""
        faults = plan_faults(seed, self.size)
        run_id = f"chaos-seed{seed}-{uuid.uuid4().hex[:6]}"
        return self._run(run_id, faults, expected=len(clean.rows)), faults

    # -- driving one run ---------------------------------------------------------------------
    def _run(self, run_id: str, faults: list[Fault], *, expected: int) -> RunResult:
        config = soak_config(run_id, self.dataset, self.size, self.state_dir)
        started = time.monotonic()
        self.client.start_run(config, run_id=run_id)
        progress, resumes = self._drive(run_id, faults, started, expected)
        wall = time.monotonic() - started
        rows, dead, table = self._read(run_id, progress.get("table_version"))
        return RunResult(
            run_id=run_id,
            status=str(progress.get("status")),
            reason=progress.get("reason"),
            table_version=progress.get("table_version"),
            wall_s=wall,
            rows=rows,
            dead_lanes=set(dead),
            designed_dead={
                lane_suffix(d, run_id) for d in doomed_lanes(run_id, self.size.repetitions)
            },
            table=table,
            resume_calls=resumes,
            dead_reasons=dead,
        )

    def _drive(
        self, run_id: str, faults: list[Fault], started: float, expected: int
    ) -> tuple[dict[str, Any], int]:
        """Poll until the run ends, injecting each fault when its row fraction is reached; one
        resume call (as `autoray bench resume`) if no row came for a minute and no coordinator
        holds the run."""
        pending = list(faults)
        worker: threading.Thread | None = None
        resumes, last_rows, last_move = 0, -1, time.monotonic()
        while True:
            progress = self._status(run_id)
            if progress is not None and progress["status"] not in ("running", "finalizing"):
                break
            rows = progress["cases_done"] if progress is not None else last_rows
            if rows != last_rows:
                last_rows, last_move = rows, time.monotonic()
            idle = worker is None or not worker.is_alive()
            if pending and idle and rows >= pending[0].at_fraction * expected:
                worker = self._inject(run_id, pending.pop(0), rows, started)
            elif self._stalled(run_id, last_move) and resumes == 0 and idle:
                self.out(f"  run {run_id}: no row for 60 s and no coordinator holds it: resume")
                resumes += 1
                self._resume(run_id)
                last_move = time.monotonic()
            if time.monotonic() - started > self.size.run_timeout_s:
                progress = {"status": "timed out", "reason": "soak run timeout"}
                break
            time.sleep(_POLL_S)
        if worker is not None:
            worker.join()
        return progress, resumes

    def _stalled(self, run_id: str, last_move: float) -> bool:
        if time.monotonic() - last_move < 60:
            return False
        try:
            self.client.lanes(run_id)  # answered only by a coordinator that drives the run
        except (InfrastructureError, AutorayError):
            return True
        return False

    def _status(self, run_id: str) -> dict[str, Any] | None:
        """The run's progress, or None while the coordinator is away (restarting)."""
        try:
            return self.client.status(run_id, timeout=10).as_dict()
        except (InfrastructureError, AutorayError):
            return None

    def _resume(self, run_id: str) -> None:
        try:
            driver.resume(run_id, self.options, Settings())
        except AutorayError as err:
            self.out(f"  resume of {run_id} refused: {err}")

    # -- faults --------------------------------------------------------------------------------
    def _inject(self, run_id: str, fault: Fault, rows: int, started: float) -> threading.Thread:
        fault.injected, fault.at_rows = True, rows
        fault.at_s = round(time.monotonic() - started, 1)
        action = getattr(self, f"_fault_{fault.kind}")

        def work() -> None:
            fault.evidence = self._with_retries(lambda: action(run_id, fault), fault)
            time.sleep(_GAP_S)

        thread = threading.Thread(target=work, name=f"chaos-{fault.kind}", daemon=True)
        thread.start()
        return thread

    def _with_retries(self, action: Callable[[], str], fault: Fault) -> str:
        """Run a fault's action, again for up to 20 s while its target is away (a farm or a lane
        being restarted with the coordinator); a fault never thrown is reported, not hidden."""
        deadline = time.monotonic() + _INJECT_RETRY_S
        while True:
            try:
                return action()
            except Exception as err:
                if time.monotonic() > deadline:
                    fault.injected = False
                    return f"could not inject: {type(err).__name__}: {err}"
            time.sleep(1.0)

    def _fault_lane_kill(self, run_id: str, fault: Fault) -> str:
        name, pid = self._working_lane(run_id, fault)
        sigkill(pid, "ray::ShardLane")
        return f"SIGKILL pid {pid} ({name.removeprefix('lane:' + run_id + ':')})"

    def _fault_coordinator_kill(self, run_id: str, fault: Fault) -> str:
        pid = actor_pid(self.client.handle)
        sigkill(pid, "ray::Coordinator")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                new_pid = actor_pid(self.client.handle)
                if new_pid != pid and self.client.ping(timeout=5):
                    return f"SIGKILL pid {pid}; Ray restarted it as pid {new_pid}"
            time.sleep(0.5)
        return f"SIGKILL pid {pid}; no restart seen within 60 s"

    def _fault_sandbox_starts(self, run_id: str, fault: Fault) -> str:
        fail_starts_for(self.state_dir, fault.duration_s)
        try:
            name, pid = self._working_lane(run_id, fault)
            sigkill(pid, "ray::ShardLane")
            killed = f"; lane {name.removeprefix('lane:' + run_id + ':')} killed into it"
        except LookupError:
            killed = "; no working lane to kill into it"
        time.sleep(fault.duration_s)
        return f"every sandbox start failed for {fault.duration_s:g} s{killed}"

    def _fault_farm_503(self, run_id: str, fault: Fault) -> str:
        base = self._farm(run_id)
        switch_farm(base, {"status": 503, "for_s": fault.duration_s})
        seen = httpx.get(f"{base}/v1/models", timeout=5).status_code
        time.sleep(fault.duration_s)
        return f"farm answered HTTP {seen} for {fault.duration_s:g} s"

    def _fault_farm_refuse(self, run_id: str, fault: Fault) -> str:
        base = self._farm(run_id)
        switch_farm(base, {"refuse": True, "for_s": fault.duration_s})
        refused = _refused(base)
        time.sleep(fault.duration_s)
        seen = "refused connections" if refused else "still accepted connections (!)"
        return f"farm {seen} for {fault.duration_s:g} s"

    def _fault_db_stall(self, run_id: str, fault: Fault) -> str:
        path = self.database_url.split(":///", 1)[1]
        with _write_lock(path) as waited:
            time.sleep(fault.duration_s)
        return f"SQLite write lock held {fault.duration_s:g} s (taken after {waited:.1f} s)"

    def _working_lane(self, run_id: str, fault: Fault) -> tuple[str, int]:
        """A lane of the run that is running now, drawn with a generator seeded by the fault:
        its actor name and process id."""
        lanes = [lane for lane in self.client.lanes(run_id) if lane.get("state") == "running"]
        lanes.sort(key=lambda lane: str(lane["identity"]))
        random.Random(f"{fault.kind}:{fault.at_fraction}").shuffle(lanes)
        for lane in lanes:
            with contextlib.suppress(ValueError, LookupError):
                handle = ray.get_actor(lane["actor_name"], namespace=self.namespace)
                return lane["actor_name"], actor_pid(handle)
        raise LookupError(f"run {run_id} has no working lane to kill")

    def _farm(self, run_id: str) -> str:
        return farm_base_url(run_id, self.namespace)

    # -- reading the result --------------------------------------------------------------------
    def _read(
        self, run_id: str, version: str | None
    ) -> tuple[list[CaseResult], dict[str, str], RoutingTable | None]:
        """Rows, dead lanes (without the run id) with their reasons, and the published table."""

        async def read() -> tuple[list[CaseResult], dict[str, str], RoutingTable | None]:
            store = open_store(self.database_url)
            try:
                async with store.session() as session:
                    rows = await repo.case_results(session, run_id=run_id)
                    failures = await repo.lane_failures(session, run_id=run_id)
                    table = (
                        None if version is None else await repo.get_table(session, version=version)
                    )
            finally:
                await store.close()
            dead = {lane_suffix(f.lane_identity, run_id): f.reason for f in failures}
            return rows, dead, table

        return asyncio.run(read())


def farm_base_url(run_id: str, namespace: str) -> str:
    """Where the farm the coordinator started for a run listens (``http://127.0.0.1:PORT``).

    A restarted coordinator starts a new farm for the runs it resumes, so look it up afresh
    for every fault rather than keeping an address.
    """
    handle = ray.get_actor(f"simfarm:{run_id}", namespace=namespace)
    url = str(ray.get(handle.url.remote(), timeout=10))
    return url.removesuffix("/v1")


def actor_pid(handle: Any) -> int:
    """The process id of a live actor, from Ray's actor table."""
    from ray._private import state  # the public state API needs the dashboard

    info = state.actors(actor_id=handle._actor_id.hex())
    pid = int(info.get("Pid") or 0)
    if info.get("State") != "ALIVE" or pid <= 0:
        raise LookupError(f"actor {handle._actor_id.hex()} is {info.get('State')}, not alive")
    return pid


def sigkill(pid: int, title: str) -> None:
    """SIGKILL ``pid`` only if it is the Ray worker we mean (its title starts with ``title``)."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    if not cmdline.startswith(title):
        raise LookupError(f"pid {pid} is {cmdline[:60]!r}, not {title}; not killed")
    os.kill(pid, signal.SIGKILL)


def switch_farm(base: str, body: dict[str, Any]) -> None:
    """Throw one of the farm's test fault switches (``body`` as ``POST /admin/faults`` takes)."""
    response = httpx.post(f"{base}/admin/faults", json=body, timeout=10)
    if response.status_code != 202:
        raise RuntimeError(f"farm fault switch answered {response.status_code}: {response.text}")


def _refused(base: str) -> bool:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
        except httpx.ConnectError:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _write_lock(path: str) -> Iterator[float]:
    """Hold SQLite's write lock from a connection of our own (readers go on, writers wait)."""
    connection = sqlite3.connect(path, timeout=60, isolation_level=None)
    started = time.monotonic()
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield time.monotonic() - started
        connection.execute("ROLLBACK")
    finally:
        connection.close()


# ---------------------------------------------------------------------------- the checks


def check_run(clean: RunResult, faulted: RunResult, faults: Sequence[Fault]) -> list[Check]:
    """What a faulted run must have in common with the clean run of the same config."""
    return [
        _check_status(faulted),
        _check_faults(faults),
        _check_rows_once(clean, faulted),
        _check_rows_equal(clean, faulted),
        _check_no_infra_errors(faulted),
        _check_dead_lanes(clean, faulted),
        _check_whole_entries(faulted),
        _check_table(clean, faulted),
    ]


def row_key(row: CaseResult) -> tuple[str, str | None, str, int]:
    """A row's place in its run, without the run id, to compare the rows of two runs."""
    return (row.model_id, row.variant, row.case_id, row.rep)


def _check_status(run: RunResult) -> Check:
    ok = run.status == "completed" and run.resume_calls <= 1
    detail = f"{run.status} after {run.wall_s:.0f} s, {run.resume_calls} resume call(s)"
    return Check("run completed", ok, detail + (f"; reason: {run.reason}" if run.reason else ""))


def _check_faults(faults: Sequence[Fault]) -> Check:
    missed = [fault.kind for fault in faults if not fault.injected]
    detail = f"{len(faults) - len(missed)}/{len(faults)}" + (f"; not: {missed}" if missed else "")
    return Check("every planned fault injected", not missed, detail)


def _check_rows_once(clean: RunResult, faulted: RunResult) -> Check:
    keys = [row_key(row) for row in faulted.rows]
    doubled = len(keys) - len(set(keys))
    wanted = {row_key(row) for row in clean.rows}
    missing, extra = wanted - set(keys), set(keys) - wanted
    ok = not doubled and not missing and not extra
    detail = f"{len(keys)} rows, {len(wanted)} expected; {doubled} doubled, "
    return Check(
        "every expected row once", ok, detail + f"{len(missing)} missing, {len(extra)} extra"
    )


def _check_rows_equal(clean: RunResult, faulted: RunResult) -> Check:
    reference = {row_key(row): row_verdict(row) for row in clean.rows}
    differ = [
        row_key(row)
        for row in faulted.rows
        if row_key(row) in reference and row_verdict(row) != reference[row_key(row)]
    ]
    detail = "none" if not differ else f"{len(differ)}, e.g. {differ[0]}"
    return Check("rows equal the clean run's (score, error)", not differ, detail)


def row_verdict(row: CaseResult) -> tuple[float, str | None, bool]:
    """What a row says of the model: two runs of one config must agree on it."""
    return (row.outcome.score, row.outcome.error, row.outcome.timed_out)


def _check_no_infra_errors(run: RunResult) -> Check:
    bad = [
        row
        for row in run.rows
        if row.outcome.error and any(m in row.outcome.error.lower() for m in INFRA_MARKERS)
    ]
    detail = "none" if not bad else f"{len(bad)}, e.g. {bad[0].outcome.error!r:.120}"
    return Check("no row carries an infrastructure error", not bad, detail)


def _check_dead_lanes(clean: RunResult, faulted: RunResult) -> Check:
    designed = faulted.designed_dead
    ok = faulted.dead_lanes == designed and clean.dead_lanes == clean.designed_dead
    detail = f"dead {sorted(faulted.dead_lanes)}, by design {sorted(designed)}"
    unexpected = sorted(faulted.dead_lanes - designed)
    if unexpected:
        reason = faulted.dead_reasons.get(unexpected[0], "?")
        detail += f"; {unexpected[0]} died of: {reason}"
    return Check("dead lanes only where retries ran out by design", ok, detail)


def _check_whole_entries(run: RunResult) -> Check:
    leaked = []
    if run.table is not None:
        leaked = [
            route
            for route, candidates in run.table.routes.items()
            if any(c.model_id == DOOMED for c in candidates)
        ]
    detail = "absent" if not leaked else f"ranked on {len(leaked)} route(s)"
    return Check(f"incomplete entry {DOOMED} not in the table", not leaked, detail)


def _check_table(clean: RunResult, faulted: RunResult) -> Check:
    same_version = clean.table_version is not None and faulted.table_version == clean.table_version
    same_routes = (
        clean.table is not None
        and faulted.table is not None
        and routes_equal(clean.table, faulted.table)
    )
    detail = f"clean {clean.table_version}, faulted {faulted.table_version}"
    return Check(
        "table equals the clean run's, version included", same_version and same_routes, detail
    )


# ---------------------------------------------------------------------------- running it


def run_soak(
    seeds: Sequence[int], size_name: str, workdir: Path, out: Callable[[str], None] = print
) -> list[SeedReport]:
    """The clean run, then one faulted run per seed; Ray must be connected already."""
    size = SIZES[size_name]
    soak = Soak(workdir, size, out)
    try:
        clean = soak.clean_run()
        out(
            f"clean run {clean.run_id}: {clean.status} in {clean.wall_s:.0f} s, "
            f"{len(clean.rows)} rows, table {clean.table_version}"
        )
        reports = []
        for seed in seeds:
            faulted, faults = soak.faulted_run(seed, clean)
            report = SeedReport(seed, faults, faulted, check_run(clean, faulted, faults))
            out(render_seed(report))
            reports.append(report)
        return reports
    finally:
        soak.close()


def render_seed(report: SeedReport) -> str:
    run = report.run
    lines = [
        f"\n### seed {report.seed}: run {run.run_id}, {run.status} in {run.wall_s:.0f} s",
        "",
        "| # | at (s) | rows then | fault | for (s) | injected | what happened |",
        "|---:|---:|---:|---|---:|---|---|",
    ]
    for index, fault in enumerate(report.faults, 1):
        at = "-" if fault.at_s is None else f"{fault.at_s:.1f}"
        rows = "-" if fault.at_rows is None else str(fault.at_rows)
        duration = "-" if fault.kind.endswith("_kill") else f"{fault.duration_s:g}"
        lines.append(
            f"| {index} | {at} | {rows} | {fault.kind} | {duration} | "
            f"{'yes' if fault.injected else 'no'} | {fault.evidence} |"
        )
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    for check in report.checks:
        lines.append(f"| {check.name} | {'pass' if check.passed else 'FAIL'} | {check.detail} |")
    return "\n".join(lines)


def render_summary(reports: Sequence[SeedReport]) -> str:
    lines = [
        "\n| seed | faults injected | kinds | wall (s) | resumes | checks passed | survived |",
        "|---:|---:|---|---:|---:|---:|---|",
    ]
    for report in reports:
        injected = [f for f in report.faults if f.injected]
        kinds = ", ".join(sorted({f.kind for f in injected}))
        passed = sum(check.passed for check in report.checks)
        lines.append(
            f"| {report.seed} | {len(injected)}/{len(report.faults)} | {kinds} | "
            f"{report.run.wall_s:.0f} | {report.run.resume_calls} | "
            f"{passed}/{len(report.checks)} | {'yes' if report.passed else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, required=True, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed on")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the database and datasets here"
    )
    args = parser.parse_args(argv)

    from actors.placement import CONTAINER_RESOURCE

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    size = SIZES[args.size]
    ray.init(
        address="local",
        resources={CONTAINER_RESOURCE: size.budget},
        include_dashboard=False,
        log_to_driver=False,
    )
    seeds = range(args.seed, args.seed + args.seeds)
    print(f"machine: {machine()}; Ray {ray.__version__}; size {args.size}; seeds {list(seeds)}")
    try:
        with tempfile.TemporaryDirectory(prefix="autoray-chaos-") as tmp:
            workdir = args.workdir or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            reports = run_soak(list(seeds), args.size, workdir)
    finally:
        ray.shutdown()
    print(render_summary(reports))
    return 0 if all(report.passed for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
