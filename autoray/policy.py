"""Failure policy: what to do when a lane fails, decided by a small pure object.

Only infrastructure failures reach the policy (a ``SandboxUnavailableError`` or a lost lane
actor). A model failure is a score-0 row written by the runner and is never retried here.
Each decision carries the configuration values that drove it, so the structured log line of a
lane transition can say *why* a lane was retried or given up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FailureKind(enum.StrEnum):
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"
    LANE_LOST = "lane_lost"
    LANE_ERROR = "lane_error"


class Action(enum.StrEnum):
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float
    attempt: int
    max_attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """Bounded retries with exponential backoff.

    ``attempt`` counts lane attempts already made (the first run of a lane is attempt 1). With
    ``max_attempts=6`` a lane is started at most six times; the sixth failure gives up.
    """

    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must not be negative")

    def backoff_s(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: base x 2^(attempt-1), capped."""
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempt - 1)))

    def decide(self, *, attempt: int, kind: FailureKind, detail: str = "") -> Decision:
        reason = f"{kind.value}: {detail}" if detail else kind.value
        if attempt >= self.max_attempts:
            return Decision(Action.GIVE_UP, 0.0, attempt, self.max_attempts, reason)
        return Decision(Action.RETRY, self.backoff_s(attempt), attempt, self.max_attempts, reason)
