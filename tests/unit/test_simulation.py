"""The simulated model's behaviour: skill lookup, the deterministic draw, tokens, replies."""

from __future__ import annotations

from typing import Any

import pytest

from autoray import simulation
from autoray.cases import GoldenCase
from autoray.errors import ConfigError

ROUTE = "debugging/bug_fixing"


def _case(steps: list[dict[str, str]] | None = None) -> GoldenCase:
    return GoldenCase.model_validate(
        {
            "id": "debugging-bug_fixing-sim-sample",
            "route": ROUTE,
            "language": "python",
            "difficulty": "easy",
            "prompt": "What does 6 * 7 print?",
            "check": {"kind": "exact", "expected": "42"},
            "reference": {"answer": "42", "steps": steps or []},
            "wrong_answer": "41",
        }
    )


STEPS = [
    {"tool": "write_file", "path": "a.txt", "content": "hello\n"},
    {"tool": "bash", "command": "cat a.txt"},
]


class TestSkillFor:
    def test_full_route_beats_task_wildcard_and_default(self) -> None:
        skill = {"default": 0.1, "debugging/*": 0.5, ROUTE: 0.9}
        assert simulation.skill_for(ROUTE, skill) == 0.9

    def test_task_wildcard_beats_default(self) -> None:
        skill = {"default": 0.1, "debugging/*": 0.5, "debugging/test_repair": 0.9}
        assert simulation.skill_for(ROUTE, skill) == 0.5

    def test_default_when_nothing_more_specific(self) -> None:
        skill = {"default": 0.1, "planning_design/*": 0.5}
        assert simulation.skill_for(ROUTE, skill) == 0.1

    def test_no_matching_key_names_route_and_fix(self) -> None:
        with pytest.raises(ConfigError, match=r"'debugging/bug_fixing'.*add a 'default' key"):
            simulation.skill_for(ROUTE, {"implementation/*": 0.4})

    def test_invalid_route_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="not_a_type"):
            simulation.skill_for("not_a_type/x", {"default": 1.0})


class TestDraw:
    def test_same_inputs_same_draw(self) -> None:
        first = simulation.uniform_draw("m", "v", "case-1", 2, 7)
        assert first == simulation.uniform_draw("m", "v", "case-1", 2, 7)
        assert 0.0 <= first < 1.0

    @pytest.mark.parametrize(
        "changed",
        [
            ("m2", "v", "case-1", 2, 7),
            ("m", "w", "case-1", 2, 7),
            ("m", None, "case-1", 2, 7),
            ("m", "v", "case-2", 2, 7),
            ("m", "v", "case-1", 3, 7),
            ("m", "v", "case-1", 2, 8),
        ],
    )
    def test_every_input_moves_the_draw(self, changed: tuple) -> None:
        assert simulation.uniform_draw(*changed) != simulation.uniform_draw(
            "m", "v", "case-1", 2, 7
        )

    def test_none_variant_equals_empty_variant(self) -> None:
        assert simulation.uniform_draw("m", None, "c", 0, 0) == simulation.uniform_draw(
            "m", "", "c", 0, 0
        )

    def test_skill_one_always_passes_and_zero_always_fails(self) -> None:
        for rep in range(500):
            assert simulation.passes("m", None, f"case-{rep}", rep, 0, 1.0)
            assert not simulation.passes("m", None, f"case-{rep}", rep, 0, 0.0)

    @pytest.mark.parametrize("skill", [0.2, 0.5, 0.85])
    def test_pass_rate_tracks_skill(self, skill: float) -> None:
        draws = 4000
        passed = sum(simulation.passes("m", "v", f"c{i}", i % 3, 11, skill) for i in range(draws))
        assert abs(passed / draws - skill) < 0.03

    def test_draws_are_spread_over_unit_interval(self) -> None:
        draws = [simulation.uniform_draw("m", None, f"c{i}", 0, 0) for i in range(2000)]
        buckets = [0] * 10
        for draw in draws:
            buckets[int(draw * 10)] += 1
        assert min(buckets) > 150 and max(buckets) < 250


class TestTokens:
    @pytest.mark.parametrize(
        ("text", "tokens"), [("", 0), ("abcd", 1), ("abcde", 2), ("é", 1), ("x" * 400, 100)]
    )
    def test_count_tokens_is_utf8_bytes_over_four_rounded_up(self, text: str, tokens: int) -> None:
        assert simulation.count_tokens(text) == tokens

    def test_conversation_tokens_include_tool_calls(self) -> None:
        plain = [{"role": "user", "content": "abcd"}]
        with_call = plain + [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "1", "function": {"name": "bash", "arguments": "{}"}}],
            }
        ]
        assert simulation.conversation_tokens(plain) == 1
        assert simulation.conversation_tokens(with_call) > simulation.conversation_tokens(plain)


def _assistant_call(index: int) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": "bash", "arguments": "{}"},
            }
        ],
    }


class TestNextTurn:
    def test_passing_model_replays_steps_in_order_then_answers(self) -> None:
        case = _case(STEPS)
        messages: list[dict] = [{"role": "user", "content": case.prompt}]
        first = simulation.next_turn(case, passing=True, messages=messages)
        assert first.is_tool_call and first.tool_name == "write_file"
        assert first.tool_arguments == {"path": "a.txt", "content": "hello\n"}
        assert first.tool_call_id == "call_0"
        messages += [_assistant_call(0), {"role": "tool", "tool_call_id": "call_0", "content": ""}]
        second = simulation.next_turn(case, passing=True, messages=messages)
        assert (second.tool_name, second.tool_arguments) == ("bash", {"command": "cat a.txt"})
        messages += [_assistant_call(1), {"role": "tool", "tool_call_id": "call_1", "content": ""}]
        final = simulation.next_turn(case, passing=True, messages=messages)
        assert not final.is_tool_call and final.content == "42"

    def test_failing_model_gives_wrong_answer_without_tools(self) -> None:
        turn = simulation.next_turn(_case(STEPS), passing=False, messages=[])
        assert not turn.is_tool_call and turn.content == "41"

    def test_no_tools_offered_means_straight_to_the_answer(self) -> None:
        turn = simulation.next_turn(_case(STEPS), passing=True, messages=[], tools_offered=False)
        assert turn.content == "42"

    def test_case_without_steps_answers_at_once(self) -> None:
        assert simulation.next_turn(_case(), passing=True, messages=[]).content == "42"

    def test_user_and_tool_messages_do_not_count_as_calls(self) -> None:
        messages: list[dict[str, Any]] = [
            {"role": "tool", "tool_calls": [{}]},
            {"role": "user", "content": "x"},
        ]
        assert simulation.tool_calls_made(messages) == 0


def test_generic_reply_is_deterministic_labelled_and_prompt_specific() -> None:
    reply = simulation.generic_reply("hello")
    assert reply == simulation.generic_reply("hello")
    assert "simulated" in reply
    assert reply != simulation.generic_reply("goodbye")
