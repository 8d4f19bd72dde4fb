"""The benchmark engine on a real local Ray cluster: plan-shaped lanes, exactly-once rows,
faults (lost, frozen and silent lanes, a crashed coordinator, sandbox start failures), whole
entries, reopening a run, and the published table.

Sandbox faults come from the ``fault`` sandbox backend (test faults, configured in the run's
config like any backend); lane processes are killed or frozen with real signals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import ray

from autoray.cases import load_dataset
from autoray.planning import plan_run
from autoray.results import ModelKey
from autoray.sandbox import fail_starts_for, start_count
from autoray.table import routes_equal
from autoray.taxonomy import ROUTES
from tests.integration.conftest import Engine, bench_config, sim_model, two_models

pytestmark = pytest.mark.ray


def _faulty(tmp_path: Path, **faults: Any) -> dict[str, Any]:
    """A ``fault`` sandbox (test faults) with its state and lane directories under tmp_path."""
    return {
        "backend": "fault",
        "timeout_s": 30,
        "root": str(tmp_path / "sandboxes"),
        "faults": {"state_dir": str(tmp_path / "faults"), **faults},
    }


def _expected_keys(dataset: str, models: list[dict], reps: int) -> set[tuple]:
    cases = load_dataset(dataset).cases
    return {
        (m["id"], m.get("variant"), case.id, rep)
        for m in models
        for case in cases
        for rep in range(reps)
    }


def _row_keys(rows) -> list[tuple]:
    return [(r.model_id, r.variant, r.case_id, r.rep) for r in rows]


def test_lanes_match_the_plan_and_every_row_exists_once(engine: Engine, mini_dataset: str) -> None:
    models = [
        sim_model("sim/a", price=0.2, skill={"default": 0.6}),
        sim_model("sim/b", price=0.5, skill={"default": 0.9}, variant="high"),
    ]
    # 18 cases in chunks of 3 -> 6 chunks; budget 5 with 2 entries x 2 reps -> 1 shard each.
    config = bench_config(mini_dataset, models, repetitions=2, max_live_containers=5)
    run_id = engine.start(config)
    progress = engine.wait(run_id)
    assert progress.status == "completed", progress.reason

    plan = plan_run(
        run_id=run_id,
        models=[ModelKey("sim/a", None), ModelKey("sim/b", "high")],
        repetitions=2,
        case_count=18,
        chunk_size=3,
        budget=5,
    )
    lanes = engine.client.lanes(run_id)
    assert sorted(lane["actor_name"] for lane in lanes) == sorted(s.actor_name for s in plan.lanes)
    assert all(lane["actor_name"] == "lane:" + lane["identity"] for lane in lanes)
    for lane in lanes:
        assert lane["state"] == "finished"
        assert lane["chunks_run"] == lane["chunks"]  # strictly in plan order

    keys = _row_keys(engine.rows(run_id))
    assert len(keys) == len(set(keys))
    assert set(keys) == _expected_keys(mini_dataset, models, reps=2)


def test_budget_smaller_than_one_lane_per_chunk(engine: Engine, mini_dataset: str) -> None:
    models = [sim_model("sim/solo", price=0.2, skill={"default": 1.0})]
    config = bench_config(mini_dataset, models, chunk_size=2, max_live_containers=4)
    run_id = engine.start(config)
    assert engine.wait(run_id).status == "completed"
    lanes = sorted(engine.client.lanes(run_id), key=lambda lane: lane["shard"])
    # 9 chunks over 4 shards: shard s works s, s+4, s+8, ...
    assert [lane["chunks_run"] for lane in lanes] == [[0, 4, 8], [1, 5], [2, 6], [3, 7]]
    assert len(engine.rows(run_id)) == 18


def test_repeated_delivery_writes_nothing_new(engine: Engine, mini_dataset: str) -> None:
    models = [sim_model("sim/a", price=0.2, skill={"default": 1.0}, latency_ms=150)]
    run_id = engine.start(bench_config(mini_dataset, models, max_live_containers=1))
    engine.wait_for_rows(run_id, 1)
    first = engine.rows(run_id)[0]
    assert engine.client.record_result(first) is False
    progress = engine.wait(run_id)
    assert progress.cases_done == 18
    keys = _row_keys(engine.rows(run_id))
    assert len(keys) == len(set(keys)) == 18
    # After finalization a row with a new key (a killed lane's late delivery) is refused.
    late = dataclasses.replace(first, rep=7)
    assert engine.client.record_result(late) is False
    assert len(engine.rows(run_id)) == 18
    assert engine.client.diagnostics(run_id)["refused"] == 1


def test_killed_lane_is_retried_and_only_missing_cases_run(
    engine: Engine, mini_dataset: str
) -> None:
    models = [sim_model("sim/slow", price=0.2, skill={"default": 1.0}, latency_ms=200)]
    run_id = engine.start(bench_config(mini_dataset, models, max_live_containers=1))
    engine.wait_for_rows(run_id, 3)
    (lane,) = engine.client.lanes(run_id)
    ray.kill(ray.get_actor(lane["actor_name"], namespace=engine.namespace), no_restart=True)

    progress = engine.wait(run_id)
    assert progress.status == "completed"
    (lane,) = engine.client.lanes(run_id)
    assert lane["attempts"] == 2
    rows = engine.rows(run_id)
    keys = _row_keys(rows)
    assert len(keys) == len(set(keys)) == 18
    # The second attempt skipped every case that already had a row: its chunks ran from the
    # first chunk with a missing case, and no delivery was a duplicate.
    assert engine.client.diagnostics(run_id)["deliveries"] == {"inserted": 18, "duplicate": 0}


def test_coordinator_crash_resumes_from_persisted_rows(engine: Engine, mini_dataset: str) -> None:
    models = two_models(latency_ms=150)
    run_id = engine.start(bench_config(mini_dataset, models, max_live_containers=2))
    engine.wait_for_rows(run_id, 4)
    before = len(engine.rows(run_id))
    ray.kill(engine.client.handle, no_restart=False)  # Ray restarts it; the DB is the truth

    progress = engine.wait(run_id)
    assert progress.status == "completed", progress.reason
    rows = engine.rows(run_id)
    keys = _row_keys(rows)
    assert len(keys) == len(set(keys)) == 36
    assert before >= 4
    # The restarted coordinator resumed from the rows it found, and only the cases without a
    # row were delivered after that.
    diagnostics = engine.client.diagnostics(run_id)
    assert diagnostics["resumed_rows"] is not None and diagnostics["resumed_rows"] >= before
    assert diagnostics["deliveries"]["inserted"] == 36 - diagnostics["resumed_rows"]


def test_sandbox_start_failures_are_retried_never_scored(
    engine: Engine, mini_dataset: str, tmp_path
) -> None:
    models = two_models()
    sandbox = _faulty(tmp_path, fail_first=2)
    config = bench_config(mini_dataset, models, max_live_containers=4, sandbox=sandbox)
    run_id = engine.start(config)
    progress = engine.wait(run_id)
    assert progress.status == "completed"
    rows = engine.rows(run_id)
    assert len(rows) == 36
    assert not [r for r in rows if r.outcome.error and "injected" in r.outcome.error]
    lanes = engine.client.lanes(run_id)
    assert all(lane["attempts"] == 3 for lane in lanes)
    state_dir = sandbox["faults"]["state_dir"]
    assert all(start_count(state_dir, lane["identity"]) == 3 for lane in lanes)
    assert engine.lane_failures(run_id) == []


def test_lane_beyond_retry_limit_is_dead_and_others_finalize(
    engine: Engine, mini_dataset: str, tmp_path
) -> None:
    models = two_models()
    doomed = "dead-lane-run:sim/generalist::0:1"
    config = bench_config(
        mini_dataset,
        models,
        max_live_containers=4,
        engine={"max_attempts": 2},
        sandbox=_faulty(tmp_path, always=[doomed]),
    )
    probe = plan_run(
        run_id="x",
        models=[ModelKey("sim/cheap-debugger", None)],
        repetitions=1,
        case_count=18,
        chunk_size=3,
        budget=2,
    )
    assert probe.shard_count == 2
    run_id = engine.start(config, run_id="dead-lane-run")
    progress = engine.wait(run_id)
    assert progress.status == "completed"
    assert progress.dead_lanes == 1
    (failure,) = engine.lane_failures(run_id)
    assert failure.lane_identity == doomed
    assert failure.attempts == 2
    rows = engine.rows(run_id)
    assert not [r for r in rows if r.outcome.error and "injected" in r.outcome.error]
    per_model = Counter(r.model_id for r in rows)
    assert per_model["sim/cheap-debugger"] == 18
    assert per_model["sim/generalist"] == 9  # shard 1 (chunks 1, 3, 5) never ran
    assert "dead" in (progress.reason or "")
    # Whole entries or nothing: the generalist's half-done entry is left out of the table.
    assert "sim/generalist rep 0" in (progress.reason or "")
    table = engine.table()
    assert table is not None and table.version == progress.table_version
    assert {c.model_id for route in ROUTES for c in table.routes[route]} == {"sim/cheap-debugger"}


def test_faulted_run_publishes_the_same_table_as_a_clean_run(
    engine: Engine, mini_dataset: str, tmp_path
) -> None:
    models = two_models()
    clean = engine.start(bench_config(mini_dataset, models, max_live_containers=4))
    assert engine.wait(clean).status == "completed"
    clean_table = engine.table()

    sandbox = _faulty(tmp_path, fail_first=1)
    faulted = engine.start(
        bench_config(mini_dataset, models, max_live_containers=4, sandbox=sandbox)
    )
    engine.wait_for_rows(faulted, 5)
    lane = engine.client.lanes(faulted)[0]
    # If that lane already finished, the start failures alone exercise the retry path.
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(lane["actor_name"], namespace=engine.namespace), no_restart=True)
    finished = engine.wait(faulted)
    assert finished.status == "completed"
    faulted_table = engine.table()
    assert clean_table is not None and faulted_table is not None
    # The version hashes the content: the faulted run published the clean run's version again.
    assert finished.table_version == clean_table.version == faulted_table.version
    assert routes_equal(clean_table, faulted_table)


def test_end_to_end_cheap_debugger_wins_debugging_generalist_the_rest(
    engine: Engine, mini_dataset: str
) -> None:
    run_id = engine.start(bench_config(mini_dataset, two_models(), max_live_containers=8))
    progress = engine.wait(run_id)
    assert progress.status == "completed"
    assert progress.table_version is not None
    table = engine.table()
    assert table is not None and table.version == progress.table_version
    for route in ROUTES:
        first = table.routes[route][0]
        expected = "sim/cheap-debugger" if route.startswith("debugging/") else "sim/generalist"
        assert first.model_id == expected, route


def test_run_without_candidates_everywhere_is_not_published(
    engine: Engine, mini_dataset: str
) -> None:
    models = [sim_model("sim/a", price=0.2, skill={"default": 1.0})]
    published = engine.start(bench_config(mini_dataset, models))
    assert engine.wait(published).status == "completed"
    before = engine.table()
    # Case files with only the debugging task type: 15 routes have no candidate.
    debugging_only = engine.tmp_path / "debugging-only"
    debugging_only.mkdir()
    source = next(p for p in __import__("pathlib").Path(mini_dataset).glob("debugging.yaml"))
    (debugging_only / "debugging.yaml").write_text(source.read_text())
    partial = engine.start(bench_config(str(debugging_only), models))
    progress = engine.wait(partial)
    assert progress.status == "completed"
    assert progress.table_version is None
    assert "not published" in (progress.reason or "")
    after = engine.table()
    assert before is not None and after is not None and after.version == before.version


def test_placement_failure_fails_before_any_case(engine: Engine, mini_dataset: str) -> None:
    models = [sim_model("sim/a", price=0.2, skill={"default": 1.0})]
    config = bench_config(
        mini_dataset,
        models,
        max_live_containers=4,
        engine={"lane_cpu": 1.5, "placement_timeout_s": 2},
    )
    started = time.monotonic()
    run_id = engine.start(config)
    progress = engine.wait(run_id, timeout=60)
    assert progress.status == "failed"
    assert "placement group of 4 lane bundles" in (progress.reason or "")
    assert "lane_cpu" in (progress.reason or "")
    assert engine.rows(run_id) == []
    assert time.monotonic() - started < 30


@pytest.mark.docker
def test_docker_lanes_publish_and_leave_no_container(
    engine: Engine, mini_dataset: str, docker_sandbox_config
) -> None:
    import docker

    config = bench_config(
        mini_dataset,
        two_models(),
        max_live_containers=4,
        sandbox=docker_sandbox_config.model_dump(),
    )
    run_id = engine.start(config, run_id="docker-engine-run")
    progress = engine.wait(run_id)
    assert progress.status == "completed", progress.reason
    rows = engine.rows(run_id)
    assert len(rows) == 36 and not [r for r in rows if r.outcome.error]
    table = engine.table()
    assert table is not None and table.version == progress.table_version
    for route in ROUTES:
        expected = "sim/cheap-debugger" if route.startswith("debugging/") else "sim/generalist"
        assert table.routes[route][0].model_id == expected, route
    # Every lane destroyed its container after its last chunk.
    client = docker.from_env()
    try:
        left = [
            c.name
            for c in client.containers.list(all=True)
            if c.labels.get("autoray.lane", "").startswith(f"{run_id}:")
        ]
    finally:
        client.close()
    assert left == []


def test_silent_lane_is_swept_and_the_run_finalizes(
    engine: Engine, mini_dataset: str, tmp_path
) -> None:
    """A lane whose sandbox start never returns sends no heartbeat: it is swept, retried by
    the policy (not killed at once), and dead only when its retries run out."""
    silent = "swept-run:sim/generalist::0:0"
    config = bench_config(
        mini_dataset,
        two_models(),
        max_live_containers=2,
        engine={"sweep_after_s": 15, "heartbeat_s": 1, "max_attempts": 2},
        sandbox=_faulty(tmp_path, hang=[silent]),
    )
    run_id = engine.start(config, run_id="swept-run")
    progress = engine.wait(run_id, timeout=180)
    assert progress.status == "completed"
    assert progress.dead_lanes == 1
    (failure,) = engine.lane_failures(run_id)
    assert failure.lane_identity == silent
    assert failure.attempts == 2  # swept once, retried, swept again
    assert failure.reason.startswith("lane_silent: no heartbeat")
    assert "sweep_after_s=15" in failure.reason
    per_model = Counter(r.model_id for r in engine.rows(run_id))
    assert per_model == {"sim/cheap-debugger": 18}


def test_cancel_stops_lanes_and_publishes_nothing(engine: Engine, mini_dataset: str) -> None:
    models = [sim_model("sim/slow", price=0.2, skill={"default": 1.0}, latency_ms=300)]
    run_id = engine.start(bench_config(mini_dataset, models, max_live_containers=2))
    engine.wait_for_rows(run_id, 2)
    progress = engine.client.cancel(run_id)
    assert progress.status == "cancelled"
    assert {lane["state"] for lane in engine.client.lanes(run_id)} == {"cancelled"}
    rows_at_cancel = len(engine.rows(run_id))
    time.sleep(1.0)
    assert len(engine.rows(run_id)) == rows_at_cancel < 18  # nothing runs after the cancel
    assert engine.run_record(run_id).status == "cancelled"
    assert engine.table() is None
    for lane in engine.client.lanes(run_id):
        with pytest.raises(ValueError):
            ray.get_actor(lane["actor_name"], namespace=engine.namespace)


def test_silent_shard_is_swept_while_its_sibling_delivers(
    engine: Engine, mini_dataset: str, tmp_path
) -> None:
    """Rows from shard 0 of a model say nothing about shard 1: the silent one is swept while
    shard 0 is still delivering, not only after it has finished."""
    # 15 s of silence sweeps a lane (a lane process can take several seconds to start on a
    # loaded 2-core machine): a healthy lane beats every second, also during its 3 s cases, and
    # shard 0's nine cases (about 27 s) are still running when the silent shard is swept; one
    # attempt only, so the sweep makes it dead at once.
    models = [sim_model("sim/steady", price=0.2, skill={"default": 1.0}, latency_ms=3000)]
    silent = "sibling-run:sim/steady::0:1"
    config = bench_config(
        mini_dataset,
        models,
        max_live_containers=2,
        engine={"sweep_after_s": 15, "heartbeat_s": 1, "max_attempts": 1},
        sandbox=_faulty(tmp_path, hang=[silent]),
    )
    run_id = engine.start(config, run_id="sibling-run")
    deadline = time.monotonic() + 60
    while not engine.lane_failures(run_id):
        assert time.monotonic() < deadline, "the silent shard was never swept"
        time.sleep(0.2)
    assert engine.client.status(run_id).cases_done < 9  # shard 0 was still at work
    progress = engine.wait(run_id, timeout=120)
    assert progress.status == "completed"
    (failure,) = engine.lane_failures(run_id)
    assert failure.lane_identity == silent
    assert len(engine.rows(run_id)) == 9  # shard 0's chunks 0, 2, 4 only


def test_frozen_lane_is_swept_retried_and_every_row_arrives_once(
    engine: Engine, mini_dataset: str
) -> None:
    """A lane process that stops answering (SIGSTOP) sends no heartbeat: the sweep hands it to
    the policy, its successor runs only the missing cases, and the run completes whole."""
    models = [sim_model("sim/slow", price=0.2, skill={"default": 1.0}, latency_ms=200)]
    config = bench_config(
        mini_dataset,
        models,
        max_live_containers=1,
        engine={"sweep_after_s": 15, "heartbeat_s": 1},
    )
    run_id = engine.start(config)
    engine.wait_for_rows(run_id, 3)
    (lane,) = engine.client.lanes(run_id)
    actor = ray.get_actor(lane["actor_name"], namespace=engine.namespace)
    pid = ray.get(actor.pid.remote())
    os.kill(pid, signal.SIGSTOP)
    try:
        progress = engine.wait(run_id, timeout=180)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # ours to clean up, if Ray has not already
    assert progress.status == "completed", progress.reason
    assert progress.dead_lanes == 0
    (lane,) = engine.client.lanes(run_id)
    assert lane["attempts"] == 2
    keys = _row_keys(engine.rows(run_id))
    assert len(keys) == len(set(keys)) == 18
    assert engine.lane_failures(run_id) == []


def test_resume_revives_dead_lanes_of_a_completed_run_and_publishes_whole(
    engine: Engine, mini_dataset: str, tmp_path: Path
) -> None:
    """Every sandbox start fails until the switch goes off: the lane dies, nothing is
    published, and `bench resume` on the completed run revives it and re-finalizes."""
    sandbox = _faulty(tmp_path)
    fail_starts_for(sandbox["faults"]["state_dir"], 3600)
    models = [sim_model("sim/a", price=0.2, skill={"default": 1.0})]
    config = bench_config(
        mini_dataset, models, max_live_containers=1, engine={"max_attempts": 2}, sandbox=sandbox
    )
    run_id = engine.start(config)
    first = engine.wait(run_id)
    assert first.status == "completed" and first.dead_lanes == 1
    assert first.table_version is None and "sim/a rep 0" in (first.reason or "")
    assert engine.rows(run_id) == []

    fail_starts_for(sandbox["faults"]["state_dir"], 0)
    assert engine.client.resume_run(run_id) == run_id
    again = engine.wait(run_id)
    assert again.status == "completed", again.reason
    assert again.dead_lanes == 0 and again.reason is None
    assert engine.lane_failures(run_id) == []
    assert len(engine.rows(run_id)) == 18
    table = engine.table()
    assert table is not None and table.version == again.table_version
    with pytest.raises(Exception, match="every entry whole"):
        engine.client.resume_run(run_id)


def test_a_run_that_cannot_resume_is_marked_failed_not_left_running(
    engine: Engine, mini_dataset: str, tmp_path: Path
) -> None:
    """Finding 5: a resume that failed left a zombie `running` row. Here the coordinator dies
    for good mid-run and the run's case files are gone when the next one starts."""
    import shutil

    from actors.coordinator import get_or_create_coordinator

    dataset = tmp_path / "vanishing-dataset"
    shutil.copytree(mini_dataset, dataset)
    models = [sim_model("sim/slow", price=0.2, skill={"default": 1.0}, latency_ms=300)]
    run_id = engine.start(bench_config(str(dataset), models, max_live_containers=1))
    engine.wait_for_rows(run_id, 2)
    ray.kill(engine.client.handle, no_restart=True)
    shutil.rmtree(dataset)

    engine.client = get_or_create_coordinator(engine.database_url, namespace=engine.namespace)
    record = engine.run_record(run_id)
    assert record.status == "failed"
    assert (record.status_reason or "").startswith("cannot resume:")
    assert str(dataset) in (record.status_reason or "")
    assert engine.client.status(run_id).status == "failed"


def test_a_killed_lane_leaves_no_sandbox_behind(
    engine: Engine, mini_dataset: str, tmp_path: Path
) -> None:
    """Finding 7: a SIGKILLed lane never destroys its own sandbox; the engine removes it by
    label (here the process backend's lane directory) when the lane is given up."""
    from autoray.sandbox.process import run_directory

    root = tmp_path / "sandboxes"
    models = [sim_model("sim/slow", price=0.2, skill={"default": 1.0}, latency_ms=300)]
    config = bench_config(
        mini_dataset,
        models,
        max_live_containers=1,
        engine={"max_attempts": 1},
        sandbox={"backend": "process", "timeout_s": 30, "root": str(root)},
    )
    run_id = engine.start(config)
    engine.wait_for_rows(run_id, 2)
    assert os.listdir(run_directory(str(root), run_id))  # the lane's directory, in use
    (lane,) = engine.client.lanes(run_id)
    actor = ray.get_actor(lane["actor_name"], namespace=engine.namespace)
    os.kill(ray.get(actor.pid.remote()), signal.SIGKILL)
    progress = engine.wait(run_id)
    assert progress.status == "completed" and progress.dead_lanes == 1
    assert "sim/slow rep 0" in (progress.reason or "")
    left = run_directory(str(root), run_id)
    assert not os.path.exists(left) or os.listdir(left) == []
