"""Failure policy: what to do when a lane fails, decided by a small pure object.

Only infrastructure failures reach the policy: a sandbox that cannot start, a lost or silent
lane, a provider or grader that is unavailable (any :class:`~autoray.errors.InfrastructureError`
a lane lets out). A model failure is a score-0 row written by the runner and is never retried.
Each decision carries the configuration values that drove it, so the structured log line of a
lane transition can say *why* a lane was retried or given up.

The budget counts failures since the lane's last row, not over its life: a 12-chunk lane that
met six passing outages, each after some progress, used to be killed although every retry
worked (issue 9, finding 6).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from autoray.errors import InfrastructureError, SandboxUnavailableError


class FailureKind(enum.StrEnum):
    SANDBOX_UNAVAILABLE = "sandbox_unavailable"
    INFRASTRUCTURE = "infrastructure"
    LANE_LOST = "lane_lost"
    LANE_SILENT = "lane_silent"
    LANE_ERROR = "lane_error"


def failure_kind(error: BaseException) -> FailureKind:
    """The kind of a failure a lane raised (a lost actor is told apart by the shell)."""
    if isinstance(error, SandboxUnavailableError):
        return FailureKind.SANDBOX_UNAVAILABLE
    if isinstance(error, InfrastructureError):
        return FailureKind.INFRASTRUCTURE
    return FailureKind.LANE_ERROR


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
    kind: FailureKind


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """Bounded retries with exponential backoff.

    ``attempt`` counts the lane's failed attempts since its last row, this one included. With
    ``max_attempts=6`` a lane that makes no progress is started at most six times; the sixth
    failure in a row gives up.
    """

    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}; raise it")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must not be negative")

    def backoff_s(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: base x 2^(attempt-1), capped."""
        return float(min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempt - 1)))

    def decide(self, *, attempt: int, kind: FailureKind, detail: str = "") -> Decision:
        reason = f"{kind.value}: {detail}" if detail else kind.value
        if attempt >= self.max_attempts:
            return Decision(Action.GIVE_UP, 0.0, attempt, self.max_attempts, reason, kind)
        delay = self.backoff_s(attempt)
        return Decision(Action.RETRY, delay, attempt, self.max_attempts, reason, kind)
