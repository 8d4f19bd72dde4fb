"""The decision function: REFERENCE.md "Decisions" verbatim first, then each rule's edges."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoray.decision import (
    STICKY_FLOOR_MARGIN,
    Constraints,
    Decision,
    DecisionOutcome,
    DeniedModels,
    Mode,
    NullReason,
    SwitchReason,
    decide,
    estimate_prompt_tokens,
    parse_denied,
)
from autoray.errors import InvalidRouteError
from autoray.ranking import Candidate
from autoray.results import ModelKey
from autoray.table import RoutingTable

ROUTE = "debugging/bug_fixing"
OTHER_ROUTE = "implementation/code_generation"


def _candidate(
    model_id: str,
    accuracy: float,
    cost: float,
    *,
    variant: str | None = None,
    min_accuracy: float = 0.7,
    context: int | None = None,
) -> Candidate:
    return Candidate(
        model_id=model_id,
        variant=variant,
        accuracy=accuracy,
        avg_cost_usd=cost,
        cases=10,
        meets_threshold=accuracy >= min_accuracy,
        context_length=context,
    )


CHEAP = _candidate("cheap", 0.85, 0.002)
MID = _candidate("mid", 0.8, 0.005, variant="medium")
PRICEY = _candidate("pricey", 0.9, 0.02)
WEAK = _candidate("weak", 0.5, 0.003)
REFERENCE_ROUTE = (CHEAP, MID, PRICEY, WEAK)


def _table(
    candidates: tuple[Candidate, ...] = REFERENCE_ROUTE,
    *,
    min_accuracy: float = 0.7,
    switch_cost_factor: float = 3.0,
    best_accuracy_gap: float = 0.05,
    route: str = ROUTE,
) -> RoutingTable:
    return RoutingTable(
        version="rt-0123456789abcdef",
        generated_at="2025-01-01T00:00:00+00:00",
        min_accuracy=min_accuracy,
        switch_cost_factor=switch_cost_factor,
        routes={route: candidates},
        run_id="r1",
        dataset_identity="ds",
        best_accuracy_gap=best_accuracy_gap,
    )


def _decided(outcome: DecisionOutcome) -> Decision:
    assert outcome.decision is not None, outcome.message
    assert outcome.reason is None and outcome.message is None
    return outcome.decision


# --- REFERENCE.md "Decisions" (switch_cost_factor 3, min_accuracy 0.7, floor 0.6) ----------


def test_no_incumbent_takes_cheap_not_sticky() -> None:
    decision = _decided(decide(_table(), ROUTE))
    assert decision.key == CHEAP.key
    assert decision.sticky is False and decision.switch_reason is None


def test_incumbent_mid_is_kept_with_its_variant() -> None:
    """0.002 x 3 = 0.006 >= 0.005: cheap is not more than 3 times cheaper than mid."""
    decision = _decided(decide(_table(), ROUTE, incumbent=MID.key))
    assert (decision.model_id, decision.variant) == ("mid", "medium")
    assert decision.sticky is True and decision.switch_reason is None


def test_incumbent_pricey_switches_to_cheap_for_cost() -> None:
    decision = _decided(decide(_table(), ROUTE, incumbent=PRICEY.key))
    assert decision.key == CHEAP.key
    assert decision.sticky is False and decision.switch_reason is SwitchReason.COST


def test_incumbent_weak_below_floor_switches_for_threshold() -> None:
    decision = _decided(decide(_table(), ROUTE, incumbent=WEAK.key))
    assert decision.key == CHEAP.key
    assert decision.sticky is False and decision.switch_reason is SwitchReason.THRESHOLD


def test_incumbent_denied_by_request_switches_for_threshold() -> None:
    decision = _decided(decide(_table(), ROUTE, incumbent=MID.key, denied=["mid"]))
    assert decision.key == CHEAP.key
    assert decision.switch_reason is SwitchReason.THRESHOLD
    assert "denies" in decision.explanation


def test_best_accuracy_mode_takes_pricey() -> None:
    decision = _decided(decide(_table(), ROUTE, mode=Mode.BEST_ACCURACY))
    assert decision.key == PRICEY.key and decision.sticky is False


def test_best_accuracy_keeps_incumbent_within_the_gap() -> None:
    """0.95 - 0.91 = 0.04 <= 0.05: the incumbent stays."""
    top = _candidate("top", 0.95, 0.03)
    held = _candidate("held", 0.91, 0.01)
    table = _table((held, top))
    decision = _decided(decide(table, ROUTE, mode=Mode.BEST_ACCURACY, incumbent=held.key))
    assert decision.key == held.key
    assert decision.sticky is True and decision.switch_reason is None


def test_incumbent_without_capability_switches_for_capability() -> None:
    short = _candidate("short", 0.85, 0.002, context=8_000)
    long = _candidate("long", 0.8, 0.004, context=128_000)
    decision = _decided(
        decide(_table((short, long)), ROUTE, incumbent=short.key, prompt_tokens=9_000)
    )
    assert decision.key == long.key
    assert decision.sticky is False and decision.switch_reason is SwitchReason.CAPABILITY
    assert "8000" in decision.explanation and "9000" in decision.explanation


def test_context_drops_known_short_keeps_unknown() -> None:
    short = _candidate("short", 0.85, 0.001, context=4_000)
    unknown = _candidate("unknown", 0.8, 0.002)
    enough = _candidate("enough", 0.8, 0.003, context=32_000)
    outcome = decide(_table((short, unknown, enough)), ROUTE, prompt_tokens=10_000)
    assert _decided(outcome).key == unknown.key
    assert [c.key for c in outcome.alternatives] == [enough.key]


def test_context_none_left_keeps_the_largest_known() -> None:
    small = _candidate("small", 0.85, 0.001, context=4_000)
    large_a = _candidate("large_a", 0.8, 0.002, context=16_000)
    large_b = _candidate("large_b", 0.9, 0.003, context=16_000)
    outcome = decide(_table((small, large_a, large_b)), ROUTE, prompt_tokens=100_000)
    assert _decided(outcome).key == large_a.key
    assert [c.key for c in outcome.alternatives] == [large_b.key]


# --- stickiness edges ---------------------------------------------------------------------


def test_floor_exactly_is_eligible() -> None:
    """min_accuracy 0.7 - 0.10 = 0.6; an incumbent at exactly 0.6 is kept (when not much dearer)."""
    edge = _candidate("edge", 0.6, 0.003)
    decision = _decided(decide(_table((CHEAP, edge)), ROUTE, incumbent=edge.key))
    assert STICKY_FLOOR_MARGIN == 0.10
    assert decision.key == edge.key and decision.sticky is True


def test_floor_is_not_moved_by_float_noise() -> None:
    """0.8 - 0.1 is 0.7000000000000001 in floats; an incumbent at 0.7 is still at the floor."""
    fresh = _candidate("fresh", 0.9, 0.002, min_accuracy=0.8)
    edge = _candidate("edge", 0.7, 0.003, min_accuracy=0.8)
    table = _table((fresh, edge), min_accuracy=0.8)
    decision = _decided(decide(table, ROUTE, incumbent=edge.key))
    assert decision.key == edge.key and decision.sticky is True


def test_just_below_floor_switches() -> None:
    edge = _candidate("edge", 0.5999, 0.003)
    decision = _decided(decide(_table((CHEAP, edge)), ROUTE, incumbent=edge.key))
    assert decision.key == CHEAP.key and decision.switch_reason is SwitchReason.THRESHOLD
    assert "0.5999" in decision.explanation and "0.6" in decision.explanation


def test_cost_switch_needs_strictly_more_than_the_factor() -> None:
    held = _candidate("held", 0.8, 0.006)
    decision = _decided(decide(_table((CHEAP, held)), ROUTE, incumbent=held.key))
    assert decision.key == held.key and decision.sticky is True
    dearer = _candidate("held", 0.8, 0.0061)
    decision = _decided(decide(_table((CHEAP, dearer)), ROUTE, incumbent=dearer.key))
    assert decision.key == CHEAP.key and decision.switch_reason is SwitchReason.COST


def test_best_accuracy_gap_over_the_table_value_switches_for_threshold() -> None:
    top = _candidate("top", 0.97, 0.03)
    held = _candidate("held", 0.91, 0.01)
    table = _table((held, top))
    decision = _decided(decide(table, ROUTE, mode=Mode.BEST_ACCURACY, incumbent=held.key))
    assert decision.key == top.key and decision.switch_reason is SwitchReason.THRESHOLD
    wider = _table((held, top), best_accuracy_gap=0.1)
    decision = _decided(decide(wider, ROUTE, mode=Mode.BEST_ACCURACY, incumbent=held.key))
    assert decision.key == held.key and decision.sticky is True


def test_best_accuracy_gap_exactly_keeps() -> None:
    """0.63 - 0.58 is 0.050000000000000044 in floats: a gap of exactly 0.05 keeps the incumbent."""
    top = _candidate("top", 0.63, 0.03, min_accuracy=0.6)
    held = _candidate("held", 0.58, 0.01, min_accuracy=0.6)
    table = _table((held, top), min_accuracy=0.6)
    assert 0.63 - 0.58 > 0.05
    decision = _decided(decide(table, ROUTE, mode=Mode.BEST_ACCURACY, incumbent=held.key))
    assert decision.key == held.key and decision.sticky is True


def test_best_accuracy_mode_floor_still_applies() -> None:
    decision = _decided(decide(_table(), ROUTE, mode=Mode.BEST_ACCURACY, incumbent=WEAK.key))
    assert decision.key == PRICEY.key and decision.switch_reason is SwitchReason.THRESHOLD


def test_incumbent_equal_to_fresh_pick_is_sticky_without_reason() -> None:
    decision = _decided(decide(_table(), ROUTE, incumbent=CHEAP.key))
    assert decision.key == CHEAP.key
    assert decision.sticky is True and decision.switch_reason is None


def test_incumbent_not_on_route_switches_for_threshold() -> None:
    decision = _decided(decide(_table(), ROUTE, incumbent=ModelKey("elsewhere", None)))
    assert decision.key == CHEAP.key and decision.switch_reason is SwitchReason.THRESHOLD
    assert "not ranked" in decision.explanation


def test_incumbent_variant_must_match() -> None:
    decision = _decided(decide(_table(), ROUTE, incumbent=ModelKey("mid", "large")))
    assert decision.key == CHEAP.key and decision.switch_reason is SwitchReason.THRESHOLD


def test_denied_incumbent_that_also_lacks_context_is_threshold() -> None:
    short = _candidate("short", 0.85, 0.002, context=1_000)
    long = _candidate("long", 0.8, 0.004, context=128_000)
    outcome = decide(
        _table((short, long)), ROUTE, incumbent=short.key, denied=["short"], prompt_tokens=5_000
    )
    assert _decided(outcome).switch_reason is SwitchReason.THRESHOLD


# --- modes --------------------------------------------------------------------------------


def test_best_accuracy_ties_go_to_cheaper_then_table_order() -> None:
    first = _candidate("first", 0.9, 0.02)
    cheaper = _candidate("cheaper", 0.9, 0.01)
    same = _candidate("same", 0.9, 0.01)
    outcome = decide(_table((first, cheaper, same)), ROUTE, mode=Mode.BEST_ACCURACY)
    assert _decided(outcome).key == cheaper.key
    assert [c.key for c in outcome.alternatives] == [same.key, first.key]


def test_cost_mode_alternatives_keep_table_order() -> None:
    outcome = decide(_table(), ROUTE)
    assert [c.key for c in outcome.alternatives] == [MID.key, PRICEY.key, WEAK.key]


def test_sticky_alternatives_start_with_the_fresh_pick() -> None:
    outcome = decide(_table(), ROUTE, incumbent=MID.key)
    assert [c.key for c in outcome.alternatives] == [CHEAP.key, PRICEY.key, WEAK.key]


def test_mode_given_as_string_and_unknown_mode() -> None:
    decision = _decided(decide(_table(), ROUTE, mode="best_accuracy"))  # type: ignore[arg-type]
    assert decision.key == PRICEY.key
    with pytest.raises(ValueError, match="valid modes: cost_per_accuracy, best_accuracy"):
        decide(_table(), ROUTE, mode="fastest")  # type: ignore[arg-type]


def test_no_candidate_meets_the_bar_says_so() -> None:
    low = (_candidate("b", 0.6, 0.001), _candidate("c", 0.4, 0.0001))
    decision = _decided(decide(_table(low), ROUTE))
    assert decision.key == ModelKey("b", None)
    assert "none left meets the bar" in decision.explanation


# --- denials ------------------------------------------------------------------------------


def test_plain_id_denies_every_variant() -> None:
    a_fast = _candidate("a", 0.9, 0.001, variant="fast")
    a_slow = _candidate("a", 0.9, 0.002, variant="slow")
    b = _candidate("b", 0.8, 0.01)
    outcome = decide(_table((a_fast, a_slow, b)), ROUTE, denied=["a"])
    assert _decided(outcome).key == b.key and outcome.alternatives == ()


def test_id_variant_denies_that_variant_only() -> None:
    a_fast = _candidate("a", 0.9, 0.001, variant="fast")
    a_slow = _candidate("a", 0.9, 0.002, variant="slow")
    outcome = decide(_table((a_fast, a_slow)), ROUTE, denied=["a:fast"])
    assert _decided(outcome).key == a_slow.key


def test_entry_equal_to_a_whole_id_with_colon_denies_it_entirely() -> None:
    llama = _candidate("ollama/llama3:8b", 0.9, 0.0, variant="q4")
    llama_plain = _candidate("ollama/llama3:8b", 0.9, 0.0001)
    other = _candidate("other", 0.8, 0.01)
    outcome = decide(_table((llama, llama_plain, other)), ROUTE, denied=["ollama/llama3:8b"])
    assert _decided(outcome).key == other.key and outcome.alternatives == ()


def test_entry_with_colons_splits_at_the_last_one() -> None:
    q4 = _candidate("ollama/llama3:8b", 0.9, 0.0, variant="q4")
    q8 = _candidate("ollama/llama3:8b", 0.9, 0.0001, variant="q8")
    outcome = decide(_table((q4, q8)), ROUTE, denied=["ollama/llama3:8b:q4"])
    assert _decided(outcome).key == q8.key
    assert not parse_denied(["ollama/llama3:8b:q4"]).denies(ModelKey("ollama/llama3", "8b:q4"))
    assert parse_denied(["ollama/llama3:8b"]).denies(ModelKey("ollama/llama3", "8b"))


def test_id_variant_entry_does_not_deny_the_bare_id() -> None:
    assert not parse_denied(["a:fast"]).denies(ModelKey("a", None))
    assert not parse_denied(["a:fast"]).denies(ModelKey("a", "slow"))


@pytest.mark.parametrize("entry", ["", "   ", ":fast", "a:", 3, None])
def test_bad_denial_names_the_entry_and_the_forms(entry: object) -> None:
    with pytest.raises(ValueError, match="'id:variant'") as caught:
        parse_denied([entry])  # type: ignore[list-item]
    assert repr(entry) in str(caught.value)


def test_a_single_string_is_not_a_list_of_denials() -> None:
    with pytest.raises(ValueError, match=r'write \["mid"\]'):
        parse_denied("mid")


def test_parsed_denials_are_accepted_and_stripped() -> None:
    denied = parse_denied([" mid "])
    assert isinstance(denied, DeniedModels) and denied and not DeniedModels()
    assert _decided(decide(_table(), ROUTE, incumbent=MID.key, denied=denied)).key == CHEAP.key


# --- null decisions -----------------------------------------------------------------------


def test_no_table_is_a_null_decision_saying_what_to_run() -> None:
    outcome = decide(None, ROUTE)
    assert outcome.decision is None and outcome.reason is NullReason.NO_TABLE
    assert outcome.message is not None and "autoray bench run" in outcome.message
    assert outcome.as_dict() == {
        "decision": None,
        "reason": "no_table",
        "message": outcome.message,
        "alternatives": [],
    }


def test_route_without_candidates_is_no_candidate() -> None:
    outcome = decide(_table(), OTHER_ROUTE)
    assert outcome.decision is None and outcome.reason is NullReason.NO_CANDIDATE
    assert outcome.message is not None and OTHER_ROUTE in outcome.message
    empty = decide(_table(()), ROUTE)
    assert empty.reason is NullReason.NO_CANDIDATE


def test_every_candidate_denied_is_all_denied() -> None:
    outcome = decide(_table(), ROUTE, denied=["cheap", "mid:medium", "pricey", "weak"])
    assert outcome.decision is None and outcome.reason is NullReason.ALL_DENIED
    assert outcome.message is not None and "denied_models" in outcome.message
    assert "mid[medium]" in outcome.message


def test_invalid_route_is_an_error_naming_the_valid_routes() -> None:
    with pytest.raises(InvalidRouteError, match="valid"):
        decide(_table(), "debugging/nope")


@pytest.mark.parametrize("tokens", [-1, 1.5, True])
def test_bad_token_counts_are_refused(tokens: object) -> None:
    with pytest.raises(ValueError, match="prompt_tokens"):
        decide(_table(), ROUTE, prompt_tokens=tokens)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_context_tokens"):
        Constraints(min_context_tokens=tokens)  # type: ignore[arg-type]


# --- constraints --------------------------------------------------------------------------


def test_min_context_tokens_raises_the_requirement() -> None:
    short = _candidate("short", 0.85, 0.001, context=8_000)
    long = _candidate("long", 0.8, 0.002, context=64_000)
    table = _table((short, long))
    assert _decided(decide(table, ROUTE, prompt_tokens=100)).key == short.key
    needs = Constraints(min_context_tokens=20_000)
    assert _decided(decide(table, ROUTE, prompt_tokens=100, constraints=needs)).key == long.key


def test_context_equal_to_the_need_fits() -> None:
    exact = _candidate("exact", 0.85, 0.001, context=8_000)
    decision = _decided(decide(_table((exact, MID)), ROUTE, prompt_tokens=8_000))
    assert decision.key == exact.key


# --- output -------------------------------------------------------------------------------


def test_as_dict_has_the_documented_fields() -> None:
    outcome = decide(_table(), ROUTE, incumbent=PRICEY.key)
    decision = _decided(outcome)
    assert decision.as_dict() == {
        "model": "cheap",
        "variant": None,
        "route": ROUTE,
        "task_type": "debugging",
        "subtask_type": "bug_fixing",
        "table_version": "rt-0123456789abcdef",
        "sticky": False,
        "switch_reason": "cost",
        "explanation": decision.explanation,
        "accuracy": 0.85,
        "avg_cost_usd": 0.002,
    }
    full = outcome.as_dict()
    assert full["reason"] is None and full["decision"] == decision.as_dict()
    assert [a["model_id"] for a in full["alternatives"]] == ["mid", "pricey", "weak"]


def test_route_is_returned_canonical() -> None:
    decision = _decided(decide(_table(), f"  {ROUTE} "))
    assert decision.route == ROUTE


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, ["4 candidates", "3 of 4", "cheapest per unit of accuracy"]),
        ({"mode": Mode.BEST_ACCURACY}, ["most accurate", "pricey"]),
        ({"incumbent": MID.key}, ["Kept the session's model mid[medium]", "3x"]),
        ({"incumbent": PRICEY.key}, ["Switched from pricey", "over 3x cheaper"]),
        ({"incumbent": WEAK.key}, ["below the floor 0.6"]),
        ({"denied": ["weak"]}, ["(1 denied)", "3 of 3"]),
    ],
)
def test_explanation_is_short_and_says_why(kwargs: dict[str, object], words: list[str]) -> None:
    explanation = _decided(decide(_table(), ROUTE, **kwargs)).explanation  # type: ignore[arg-type]
    assert len(explanation) < 300
    for word in words:
        assert word in explanation, explanation


def test_explanation_counts_context_drops() -> None:
    short = _candidate("short", 0.85, 0.001, context=1_000)
    explanation = _decided(decide(_table((short, MID)), ROUTE, prompt_tokens=2_000)).explanation
    assert "1 short of context" in explanation and "1 of 1" in explanation


# --- prompt-token estimate ----------------------------------------------------------------


def test_estimate_of_text_is_chars_over_four_rounded_up() -> None:
    assert estimate_prompt_tokens("") == 0
    assert estimate_prompt_tokens("abcd") == 1
    assert estimate_prompt_tokens("abcde") == 2
    assert estimate_prompt_tokens(None) == 0


def test_estimate_of_messages_adds_overhead_and_reads_parts() -> None:
    messages = [
        {"role": "system", "content": "x" * 8},
        {"role": "user", "content": [{"type": "text", "text": "y" * 8}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    assert estimate_prompt_tokens(messages) == 4 + 3 * 4


def test_estimate_reads_message_objects() -> None:
    class Message:
        def __init__(self, content: object) -> None:
            self.content = content

    assert estimate_prompt_tokens([Message("z" * 40), Message(None)]) == 10 + 2 * 4


# --- properties ---------------------------------------------------------------------------

_IDS = st.sampled_from(["a", "b", "a:b", "ollama/llama3:8b", "ollama/llama3", "c"])
_VARIANTS = st.one_of(st.none(), st.sampled_from(["8b", "fast", "b", "8b:q4"]))
_CANDIDATES = st.lists(
    st.builds(
        _candidate,
        _IDS,
        st.floats(0, 1),
        st.floats(0, 1),
        variant=_VARIANTS,
        context=st.one_of(st.none(), st.integers(1, 200_000)),
    ),
    max_size=6,
    unique_by=lambda c: c.key,
)
_DENIALS = st.lists(
    st.one_of(
        _IDS,
        st.builds(lambda i, v: f"{i}:{v}", _IDS, st.sampled_from(["8b", "fast", "b", "q4"])),
    ),
    max_size=4,
)


def _denied_by_rule(entry: str, key: ModelKey) -> bool:
    """The rule restated independently: whole id, else split at the last colon."""
    if entry == key.model_id:
        return True
    model_id, sep, variant = entry.rpartition(":")
    return bool(sep) and (model_id, variant) == key


@settings(max_examples=300, deadline=None)
@given(
    candidates=_CANDIDATES,
    min_accuracy=st.floats(0, 1),
    factor=st.floats(1, 10),
    gap=st.floats(0, 1),
    mode=st.sampled_from(Mode),
    incumbent=st.one_of(st.none(), st.builds(ModelKey, _IDS, _VARIANTS)),
    denials=_DENIALS,
    tokens=st.one_of(st.none(), st.integers(0, 300_000)),
    no_table=st.booleans(),
)
def test_decide_never_raises_and_picks_an_allowed_model(
    candidates: list[Candidate],
    min_accuracy: float,
    factor: float,
    gap: float,
    mode: Mode,
    incumbent: ModelKey | None,
    denials: list[str],
    tokens: int | None,
    no_table: bool,
) -> None:
    ranked = tuple(replace(c, meets_threshold=c.accuracy >= min_accuracy) for c in candidates)
    table = (
        None
        if no_table
        else _table(
            ranked, min_accuracy=min_accuracy, switch_cost_factor=factor, best_accuracy_gap=gap
        )
    )
    outcome = decide(
        table, ROUTE, mode=mode, incumbent=incumbent, denied=denials, prompt_tokens=tokens
    )
    allowed = [c for c in ranked if not any(_denied_by_rule(e, c.key) for e in denials)]
    if outcome.decision is None:
        assert outcome.reason is not None and outcome.message
        expected = NullReason.NO_TABLE if no_table else None
        expected = expected or (NullReason.NO_CANDIDATE if not ranked else NullReason.ALL_DENIED)
        assert outcome.reason is expected and outcome.alternatives == ()
        assert no_table or not allowed
        return
    decision = outcome.decision
    assert table is not None and allowed
    assert decision.key in {c.key for c in allowed}
    assert decision.key not in {c.key for c in outcome.alternatives}
    assert {c.key for c in outcome.alternatives} <= {c.key for c in allowed}
    assert decision.sticky == (incumbent is not None and decision.key == incumbent)
    assert (decision.switch_reason is None) == (incumbent is None or decision.sticky)
    fitting = [c for c in allowed if c.context_length is None or c.context_length >= (tokens or 0)]
    chosen = next(c for c in allowed if c.key == decision.key)
    if fitting:
        assert chosen in fitting
    if fitting and not decision.sticky:
        best = max(c.accuracy for c in fitting)
        assert chosen == fitting[0] if mode is Mode.COST_PER_ACCURACY else chosen.accuracy == best
