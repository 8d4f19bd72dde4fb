"""Run progress as the coordinator reports it and the CLI and job logs render it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RunProgress:
    run_id: str
    status: str
    cases_done: int
    cases_total: int
    errors: int = 0
    lanes_total: int = 0
    lanes: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    table_version: str | None = None
    reason: str | None = None

    @property
    def fraction(self) -> float:
        return self.cases_done / self.cases_total if self.cases_total else 1.0

    @property
    def eta_s(self) -> float | None:
        """Linear estimate from the rate so far; None until a case is done."""
        if self.cases_done == 0 or self.elapsed_s <= 0:
            return None
        rate = self.cases_done / self.elapsed_s
        return max(0.0, (self.cases_total - self.cases_done) / rate)

    @property
    def dead_lanes(self) -> int:
        return self.lanes.get("dead", 0)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["eta_s"] = self.eta_s
        data["dead_lanes"] = self.dead_lanes
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunProgress:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def render_progress(progress: RunProgress, *, width: int = 30) -> str:
    """One line: bar, cases done/total, lanes by state, errors, elapsed and ETA.

    Lane states are known only to a live coordinator; a progress read from the database alone
    shows dead lanes (they are persisted) and leaves the rest out rather than print zeros.
    """
    filled = int(round(progress.fraction * width))
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {progress.cases_done}/{progress.cases_total} cases"
        f"{_lanes_part(progress)}"
        f" | errors {progress.errors}"
        f" | {format_duration(progress.elapsed_s)} elapsed, ETA {format_duration(progress.eta_s)}"
        f" | {progress.status}"
    )


def _lanes_part(progress: RunProgress) -> str:
    lanes = progress.lanes
    if not progress.lanes_total:
        return f" | dead lanes {progress.dead_lanes}" if progress.dead_lanes else ""
    return (
        f" | lanes run {lanes.get('running', 0) + lanes.get('starting', 0)}"
        f" retry {lanes.get('retrying', 0)} done {lanes.get('finished', 0)}"
        f" dead {lanes.get('dead', 0)}"
    )


def stored_progress(record: Any, *, cases_done: int, errors: int, dead_lanes: int) -> RunProgress:
    """Progress of a run from the database alone, when no coordinator holds it live.

    ``record`` is a stored run (``autoray.store.RunRecord``); the total comes from its config
    snapshot and the dataset that snapshot names.
    """
    from autoray.cases import load_dataset
    from autoray.config import parse_config
    from autoray.errors import AutorayError

    try:
        parsed = parse_config(record.config, source=f"snapshot of run {record.run_id}")
        total = len(load_dataset(parsed.dataset).cases) * len(parsed.models) * parsed.repetitions
    except AutorayError:
        total = cases_done
    end = record.finished_at or datetime.now(UTC)
    return RunProgress(
        run_id=record.run_id,
        status=record.status,
        cases_done=cases_done,
        cases_total=total,
        errors=errors,
        lanes={"dead": dead_lanes} if dead_lanes else {},
        elapsed_s=(end - record.created_at).total_seconds(),
        table_version=record.table_version,
        reason=record.status_reason,
    )
