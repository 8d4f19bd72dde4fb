"""The chaos soak (``benchmarks/chaos.py``) in CI: three seeds at the small size on the shared
local Ray cluster, failing when any check fails; and its plan and checks, which must be able
to fail, on doctored runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from autoray.ranking import Candidate
from autoray.results import CaseOutcome, CaseResult
from autoray.table import RoutingTable
from benchmarks import chaos

SEEDS = [1, 2, 3]


@pytest.mark.ray
def test_soak_survives_three_seeds(ray_cluster: None, tmp_path: Path) -> None:
    lines: list[str] = []
    reports = chaos.run_soak(SEEDS, "small", tmp_path, out=lines.append)
    log = "\n".join(lines)
    assert [report.seed for report in reports] == SEEDS
    failed = [
        f"seed {report.seed}: {check.name}: {check.detail}"
        for report in reports
        for check in report.checks
        if not check.passed
    ]
    assert failed == [], log
    for report in reports:
        assert {f.kind for f in report.faults if f.injected} == set(chaos.KINDS), log


class TestPlan:
    def test_same_seed_same_plan_other_seed_other_plan(self) -> None:
        size = chaos.SIZES["small"]
        assert chaos.plan_faults(7, size) == chaos.plan_faults(7, size)
        assert chaos.plan_faults(7, size) != chaos.plan_faults(8, size)

    @pytest.mark.parametrize("name", sorted(chaos.SIZES))
    def test_every_kind_once_at_least_in_order_within_bounds(self, name: str) -> None:
        size = chaos.SIZES[name]
        for seed in range(20):
            plan = chaos.plan_faults(seed, size)
            assert len(plan) == size.faults
            assert set(chaos.KINDS) <= {fault.kind for fault in plan}
            fractions = [fault.at_fraction for fault in plan]
            assert fractions == sorted(fractions) and fractions[0] >= 0.05
            assert fractions[-1] <= 0.75
            low, high = size.fault_s
            assert all(low <= fault.duration_s <= high for fault in plan)

    def test_the_doomed_lanes_are_shard_0_of_every_repetition_of_the_run(self) -> None:
        lanes = chaos.doomed_lanes("run-x", 2)
        assert [chaos.lane_suffix(lane, "run-x") for lane in lanes] == [
            f"{chaos.DOOMED}::0:0",
            f"{chaos.DOOMED}::1:0",
        ]


def _row(case: str, score: float = 1.0, error: str | None = None) -> CaseResult:
    outcome = CaseOutcome(score=score, latency_ms=5.0, error=error)
    return CaseResult("r", "sim/a", None, case, 0, "debugging/bug_fixing", outcome)


def _table(version: str, *models: str) -> RoutingTable:
    candidates = tuple(Candidate(m, None, 1.0, 0.1, 1, True) for m in models)
    return RoutingTable(
        version=version,
        generated_at="2026-12-01T00:00:00+00:00",
        min_accuracy=0.7,
        switch_cost_factor=3.0,
        routes={"debugging/bug_fixing": candidates},
        run_id=None,
        dataset_identity=None,
    )


def _run(run_id: str, rows: list[CaseResult]) -> chaos.RunResult:
    return chaos.RunResult(
        run_id=run_id,
        status="completed",
        reason=None,
        table_version="rt-1",
        wall_s=1.0,
        rows=rows,
        dead_lanes={f"{chaos.DOOMED}::0:0"},
        designed_dead={f"{chaos.DOOMED}::0:0"},
        table=_table("rt-1", "sim/a"),
    )


CLEAN = _run("clean", [_row("c1"), _row("c2", score=0.0)])
INJECTED = [chaos.Fault("lane_kill", 0.1, 1.0, injected=True)]


def _failed(faulted: chaos.RunResult, faults: list[chaos.Fault] = INJECTED) -> list[str]:
    return [c.name for c in chaos.check_run(CLEAN, faulted, faults) if not c.passed]


class TestChecks:
    def test_a_run_like_the_clean_one_passes_every_check(self) -> None:
        assert _failed(_run("faulted", list(CLEAN.rows))) == []

    @pytest.mark.parametrize(
        ("changes", "check"),
        [
            ({"status": "failed"}, "run completed"),
            ({"resume_calls": 2}, "run completed"),
            ({"rows": [_row("c1")]}, "every expected row once"),
            ({"rows": [_row("c1"), _row("c2", 0.0), _row("c2", 0.0)]}, "every expected row once"),
            ({"rows": [_row("c1"), _row("c2", 0.0), _row("c3")]}, "every expected row once"),
            ({"rows": [_row("c1", 0.0), _row("c2", 0.0)]}, "rows equal the clean run's"),
            (
                {"rows": [_row("c1", 0.0, "HTTP 503 after 4 attempts"), _row("c2", 0.0)]},
                "no row carries an infrastructure error",
            ),
            ({"dead_lanes": set()}, "dead lanes only where retries ran out by design"),
            (
                {"dead_lanes": {"sim/doomed::0:0", "sim/a::0:1"}},
                "dead lanes only where retries ran out by design",
            ),
            ({"table": _table("rt-1", chaos.DOOMED, "sim/a")}, "not in the table"),
            ({"table_version": "rt-2"}, "table equals the clean run's"),
            ({"table": _table("rt-1", "sim/b")}, "table equals the clean run's"),
            ({"table_version": None, "table": None}, "table equals the clean run's"),
        ],
    )
    def test_each_check_fails_on_the_fault_it_is_for(
        self, changes: dict[str, object], check: str
    ) -> None:
        failed = _failed(replace(_run("faulted", list(CLEAN.rows)), **changes))  # type: ignore[arg-type]
        assert any(check in name for name in failed), failed

    def test_a_planned_fault_that_never_ran_fails_the_soak(self) -> None:
        missed = [*INJECTED, chaos.Fault("db_stall", 0.7, 2.0)]
        assert _failed(_run("faulted", list(CLEAN.rows)), missed) == [
            "every planned fault injected"
        ]
