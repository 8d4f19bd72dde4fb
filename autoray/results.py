"""Case results: what running one golden case produced, and the row it becomes.

A :class:`CaseOutcome` is what the case runner returns (it knows nothing of runs or
repetitions); a :class:`CaseResult` is the persisted row, keyed by
``(run_id, model_id, variant, case_id, rep)`` and written exactly once (upsert on that key).
Both are frozen dataclasses so they pickle cheaply across Ray actor boundaries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

ERROR_MAX_CHARS = 500
OUTPUT_PREFIX_MAX_CHARS = 200


class ModelKey(NamedTuple):
    """A model's identity in every table: the pair (id, variant)."""

    model_id: str
    variant: str | None

    def label(self) -> str:
        return f"{self.model_id}[{self.variant}]" if self.variant else self.model_id


class CaseKey(NamedTuple):
    """Primary key of a case row."""

    run_id: str
    model_id: str
    variant: str | None
    case_id: str
    rep: int


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    score: float
    latency_ms: float
    cost_usd: float | None = None
    error: str | None = None
    timed_out: bool = False
    retried: bool = False
    output_prefix: str = ""
    input_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        if self.score not in (0.0, 1.0):
            raise ValueError(f"score must be 0 or 1, got {self.score!r}")
        if self.error is not None and len(self.error) > ERROR_MAX_CHARS:
            object.__setattr__(self, "error", self.error[:ERROR_MAX_CHARS])
        if len(self.output_prefix) > OUTPUT_PREFIX_MAX_CHARS:
            object.__setattr__(self, "output_prefix", self.output_prefix[:OUTPUT_PREFIX_MAX_CHARS])


@dataclass(frozen=True, slots=True)
class CaseResult:
    run_id: str
    model_id: str
    variant: str | None
    case_id: str
    rep: int
    route: str
    outcome: CaseOutcome

    @property
    def key(self) -> CaseKey:
        return CaseKey(self.run_id, self.model_id, self.variant, self.case_id, self.rep)

    @property
    def model(self) -> ModelKey:
        return ModelKey(self.model_id, self.variant)

    def as_row(self) -> dict[str, Any]:
        """Flat dict with every column of the case-results table."""
        row = {k: v for k, v in asdict(self).items() if k != "outcome"}
        row.update(asdict(self.outcome))
        return row
