from __future__ import annotations

import pytest

from autoray.engine.policy import Action, FailureKind, FailurePolicy, failure_kind
from autoray.errors import (
    AutorayError,
    InfrastructureError,
    SandboxUnavailableError,
)


def test_retries_with_exponential_backoff_until_the_limit() -> None:
    policy = FailurePolicy(max_attempts=4, backoff_base_s=1.0, backoff_max_s=30.0)
    decisions = [policy.decide(attempt=n, kind=FailureKind.LANE_LOST) for n in (1, 2, 3, 4)]
    assert [d.action for d in decisions] == [Action.RETRY] * 3 + [Action.GIVE_UP]
    assert [d.delay_s for d in decisions[:3]] == [1.0, 2.0, 4.0]


def test_backoff_is_capped() -> None:
    policy = FailurePolicy(max_attempts=20, backoff_base_s=1.0, backoff_max_s=5.0)
    assert policy.decide(attempt=10, kind=FailureKind.SANDBOX_UNAVAILABLE).delay_s == 5.0


def test_default_allows_six_attempts() -> None:
    policy = FailurePolicy()
    assert policy.decide(attempt=5, kind=FailureKind.LANE_LOST).action is Action.RETRY
    assert policy.decide(attempt=6, kind=FailureKind.LANE_LOST).action is Action.GIVE_UP


def test_decision_carries_the_values_that_drove_it() -> None:
    decision = FailurePolicy(max_attempts=2).decide(
        attempt=2, kind=FailureKind.SANDBOX_UNAVAILABLE, detail="engine down"
    )
    assert decision.max_attempts == 2 and decision.attempt == 2
    assert decision.reason == "sandbox_unavailable: engine down"
    assert decision.kind is FailureKind.SANDBOX_UNAVAILABLE


def test_single_attempt_gives_up_at_once() -> None:
    assert (
        FailurePolicy(max_attempts=1).decide(attempt=1, kind=FailureKind.LANE_ERROR).action
        is Action.GIVE_UP
    )


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"backoff_base_s": -1}])
def test_invalid_policy_is_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FailurePolicy(**kwargs)


def test_every_infrastructure_error_is_a_kind_the_policy_retries() -> None:
    class ProviderDown(InfrastructureError):
        pass

    assert failure_kind(SandboxUnavailableError("x")) is FailureKind.SANDBOX_UNAVAILABLE
    assert failure_kind(ProviderDown("503 for 12 s")) is FailureKind.INFRASTRUCTURE
    assert failure_kind(AutorayError("bug")) is FailureKind.LANE_ERROR
    policy = FailurePolicy(max_attempts=3)
    decision = policy.decide(attempt=1, kind=failure_kind(ProviderDown("down")), detail="down")
    assert decision.action is Action.RETRY and decision.reason == "infrastructure: down"
