"""Ray custom metrics of a benchmark run, shown in the dashboard's metrics view.

Built lazily inside the coordinator process (never at import), because Ray metrics need a
connected worker.
"""

from __future__ import annotations

from functools import cached_property

from ray.util.metrics import Counter, Gauge, Histogram

_LATENCY_BOUNDARIES_MS = [10.0, 50.0, 100.0, 250.0, 500.0, 1e3, 2.5e3, 5e3, 1e4, 3e4, 6e4]


class EngineMetrics:
    @cached_property
    def cases(self) -> Counter:
        return Counter(
            "autoray_cases",
            description="Case rows persisted, by model, route and outcome (pass, fail, error).",
            tag_keys=("model", "route", "outcome"),
        )

    @cached_property
    def case_latency_ms(self) -> Histogram:
        return Histogram(
            "autoray_case_latency_ms",
            description="Wall time of one case (model calls, tools and grading), in ms.",
            boundaries=_LATENCY_BOUNDARIES_MS,
            tag_keys=("model",),
        )

    @cached_property
    def lanes(self) -> Gauge:
        return Gauge(
            "autoray_lanes",
            description="Lanes of a run by state.",
            tag_keys=("run", "state"),
        )

    @cached_property
    def lane_retries(self) -> Counter:
        return Counter(
            "autoray_lane_retries",
            description="Lane retries after an infrastructure failure, by kind.",
            tag_keys=("run", "kind"),
        )

    def record_case(self, *, model: str, route: str, outcome: str, latency_ms: float) -> None:
        self.cases.inc(1.0, tags={"model": model, "route": route, "outcome": outcome})
        self.case_latency_ms.observe(latency_ms, tags={"model": model})

    def set_lanes(self, run_id: str, counts: dict[str, int], states: list[str]) -> None:
        for state in states:
            self.lanes.set(float(counts.get(state, 0)), tags={"run": run_id, "state": state})
