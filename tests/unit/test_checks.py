"""The five check kinds: parsing, text grading on tricky answers, program dispatch."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from autoray.checks import (
    CHECKS_VERSION,
    Check,
    ContainsAllCheck,
    ExactCheck,
    JsonEqualCheck,
    ProgramCheck,
    ProgramVerdict,
    RegexCheck,
    find_first_json,
    grade,
    grade_text,
    json_values_equal,
    last_code_block,
    normalise,
    program_files,
    program_needs_sandbox,
    strip_fences,
    validate_relative_path,
)

CHECK = TypeAdapter(Check)


def parse(data: dict[str, Any]) -> Any:
    return CHECK.validate_python(data)


def exact(expected: str) -> ExactCheck:
    return ExactCheck(kind="exact", expected=expected)


# ---------------------------------------------------------------- parsing


def test_version_string() -> None:
    assert CHECKS_VERSION == "checks-1"


def test_union_dispatches_on_kind() -> None:
    assert isinstance(parse({"kind": "exact", "expected": "1"}), ExactCheck)
    assert isinstance(parse({"kind": "contains_all", "items": ["a"]}), ContainsAllCheck)
    assert isinstance(parse({"kind": "regex", "pattern": "a"}), RegexCheck)
    assert isinstance(parse({"kind": "json_equal", "expected": [1]}), JsonEqualCheck)
    assert isinstance(parse({"kind": "program", "command": "true"}), ProgramCheck)


def test_defaults() -> None:
    assert parse({"kind": "contains_all", "items": ["a"]}).case_sensitive is False
    assert parse({"kind": "regex", "pattern": "a"}).ignore_case is True
    program = parse({"kind": "program", "command": "true"})
    assert (program.files, program.answer_file, program.timeout_s) == ({}, None, 30.0)


def test_unknown_kind_is_rejected_naming_the_choices() -> None:
    with pytest.raises(ValidationError) as info:
        parse({"kind": "fuzzy", "expected": "1"})
    assert "fuzzy" in str(info.value) and "exact" in str(info.value)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        parse({"kind": "exact", "expected": "1", "expectd": "2"})


def test_invalid_regex_is_rejected_quoting_the_pattern() -> None:
    with pytest.raises(ValidationError) as info:
        parse({"kind": "regex", "pattern": "(unclosed"})
    assert "'(unclosed'" in str(info.value)
    assert "not a valid Python regular expression" in str(info.value)


def test_contains_all_needs_non_empty_items() -> None:
    with pytest.raises(ValidationError):
        parse({"kind": "contains_all", "items": []})
    with pytest.raises(ValidationError, match="empty string"):
        parse({"kind": "contains_all", "items": ["a", ""]})


@pytest.mark.parametrize("path", ["/etc/passwd", "../up.py", "a/../../b", "", "a\\b.py"])
def test_program_paths_must_stay_inside_the_working_directory(path: str) -> None:
    with pytest.raises(ValidationError):
        parse({"kind": "program", "command": "true", "files": {path: "x"}})
    with pytest.raises(ValidationError):
        parse({"kind": "program", "command": "true", "answer_file": path})


def test_relative_paths_are_accepted() -> None:
    assert validate_relative_path(".grader/check.py") == ".grader/check.py"
    assert validate_relative_path("src/pkg/mod.py") == "src/pkg/mod.py"


@pytest.mark.parametrize("timeout", [0, -1, 601])
def test_program_timeout_bounds(timeout: float) -> None:
    with pytest.raises(ValidationError):
        parse({"kind": "program", "command": "true", "timeout_s": timeout})


def test_checks_are_immutable() -> None:
    check = exact("1")
    with pytest.raises(ValidationError):
        check.expected = "2"


# ---------------------------------------------------------------- fences and normalising


def test_strip_fences_removes_fence_lines_with_language_tags() -> None:
    text = "Result:\n```python\nprint(1)\n```\n~~~\nx\n~~~"
    assert strip_fences(text) == "Result:\nprint(1)\nx"


def test_strip_fences_keeps_inline_backticks() -> None:
    assert strip_fences("use `ls` here") == "use `ls` here"


def test_normalise() -> None:
    assert normalise("  ```text\n  HeLLo  \n```\n\n") == "hello"


def test_last_code_block_takes_the_last_block() -> None:
    text = "First:\n```python\na = 1\n```\nThen:\n```py\nb = 2\nc = 3\n```\nDone."
    assert last_code_block(text) == "b = 2\nc = 3\n"


def test_last_code_block_without_fences_is_the_whole_text() -> None:
    assert last_code_block("def f():\n    return 1\n") == "def f():\n    return 1\n"


def test_last_code_block_keeps_inner_shorter_fences() -> None:
    text = "````markdown\nExample:\n```python\nx = 1\n```\n````\n"
    assert last_code_block(text) == "Example:\n```python\nx = 1\n```\n"


def test_last_code_block_of_an_unclosed_fence_runs_to_the_end() -> None:
    assert last_code_block("```bash\necho hi\nexit 0") == "echo hi\nexit 0\n"


def test_last_code_block_preserves_indentation_and_empty_block() -> None:
    assert last_code_block("```\n    indented\n\n```") == "    indented\n\n"
    assert last_code_block("```\n```") == ""


# ---------------------------------------------------------------- exact


@pytest.mark.parametrize(
    "answer",
    [
        "42",
        "  42  \n",
        "```\n42\n```",
        "```text\n42\n```\n",
        "The count is:\n42",
        "The count is:\n  42   \n\n\n",
    ],
)
def test_exact_passes(answer: str) -> None:
    assert grade_text(exact("42"), answer)


@pytest.mark.parametrize(
    "answer", ["420", "42.", "The answer is 42", "42\nor maybe 43", "", "`42` or so"]
)
def test_exact_fails(answer: str) -> None:
    assert not grade_text(exact("42"), answer)


def test_exact_is_case_insensitive_and_whole_answer_may_span_lines() -> None:
    assert grade_text(exact("SELECT 1"), "select 1")
    assert grade_text(exact("line one\nline two"), "Line One\nLine Two\n")


def test_exact_handles_unicode() -> None:
    assert grade_text(exact("ÉTÉ"), "Réponse :\nété")
    assert not grade_text(exact("ete"), "été")


# ---------------------------------------------------------------- contains_all


def test_contains_all_case_insensitive_by_default() -> None:
    check = ContainsAllCheck(kind="contains_all", items=["Mutex", "defer"])
    assert grade_text(check, "uses a MUTEX with DEFER unlock")
    assert not grade_text(check, "uses a mutex only")


def test_contains_all_case_sensitive() -> None:
    check = ContainsAllCheck(kind="contains_all", items=["Mutex"], case_sensitive=True)
    assert grade_text(check, "sync.Mutex")
    assert not grade_text(check, "sync.mutex")


def test_contains_all_unicode_casefold() -> None:
    check = ContainsAllCheck(kind="contains_all", items=["STRASSE"])
    assert grade_text(check, "Hauptstraße 1")


# ---------------------------------------------------------------- regex


def test_regex_multiline_anchors() -> None:
    check = RegexCheck(kind="regex", pattern=r"^def \w+\(\):$")
    assert grade_text(check, "text first\ndef f():\n    pass")


def test_regex_ignore_case_flag() -> None:
    loose = RegexCheck(kind="regex", pattern="select")
    strict = RegexCheck(kind="regex", pattern="select", ignore_case=False)
    assert grade_text(loose, "SELECT 1")
    assert not grade_text(strict, "SELECT 1")


def test_regex_searches_anywhere_and_dot_does_not_cross_lines() -> None:
    check = RegexCheck(kind="regex", pattern="a.b")
    assert grade_text(check, "xx a-b yy")
    assert not grade_text(check, "a\nb")


# ---------------------------------------------------------------- json_equal


def json_check(expected: Any) -> JsonEqualCheck:
    return JsonEqualCheck(kind="json_equal", expected=expected)


def test_find_first_json_in_prose_with_braces_inside_strings() -> None:
    text = 'Here you go: {"msg": "use {x} and [y]", "q": "say \\"hi\\" }"} and more {"b": 2}'
    assert find_first_json(text) == {"msg": "use {x} and [y]", "q": 'say "hi" }'}


def test_find_first_json_nested_arrays_and_fences() -> None:
    text = 'Result:\n```json\n[[1, [2, 3]], {"a": [4]}]\n```'
    assert find_first_json(text) == [[1, [2, 3]], {"a": [4]}]


def test_find_first_json_skips_non_json_brackets() -> None:
    text = 'Replace {name} with your value, see [1]. Final: {"name": "x"}'
    assert find_first_json(text) == [1]
    assert find_first_json('Replace {name} then {"name": "x"}') == {"name": "x"}


def test_find_first_json_escaped_backslash_before_quote() -> None:
    assert find_first_json('{"path": "C:\\\\dir\\\\", "n": 1}') == {"path": "C:\\dir\\", "n": 1}


def test_find_first_json_unicode() -> None:
    assert find_first_json('Voilà : {"ville": "Zürich", "emoji": "🙂"}') == {
        "ville": "Zürich",
        "emoji": "🙂",
    }


@pytest.mark.parametrize(
    "text", ["no json here", '{"a": 1', "{'a': 1}", '{"a": 1,}', "42", '"string"', ""]
)
def test_find_first_json_fails(text: str) -> None:
    with pytest.raises(ValueError, match="no JSON"):
        find_first_json(text)


def test_json_equal_ignores_key_order_and_whitespace() -> None:
    check = json_check({"a": 1, "b": [1, 2]})
    assert grade_text(check, 'Config:\n{ "b" : [1,2],\n  "a": 1 }')


def test_json_equal_only_the_first_value_counts() -> None:
    check = json_check({"a": 1})
    assert not grade_text(check, 'Wrong: {"a": 2}. Right: {"a": 1}')


def test_json_equal_invalid_json_fails() -> None:
    assert not grade_text(json_check({"a": 1}), "{a: 1}")


def test_json_equal_is_type_strict_for_booleans() -> None:
    assert not grade_text(json_check({"on": True}), '{"on": 1}')
    assert not grade_text(json_check([0]), "[false]")
    assert grade_text(json_check({"n": 1}), '{"n": 1.0}')


def test_json_values_equal_nested() -> None:
    assert json_values_equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not json_values_equal({"a": [1, 2]}, {"a": [2, 1]})
    assert not json_values_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_values_equal("1", 1)


# ---------------------------------------------------------------- program checks


class RecordingRunner:
    def __init__(self, passed: bool) -> None:
        self.passed = passed
        self.calls: list[tuple[ProgramCheck, str]] = []

    def run_program(self, check: ProgramCheck, answer: str) -> ProgramVerdict:
        self.calls.append((check, answer))
        return ProgramVerdict(self.passed, "exit 0" if self.passed else "exit 1")


PROGRAM = ProgramCheck(
    kind="program",
    command="python3 .grader/check.py",
    files={".grader/check.py": "import solution"},
    answer_file="solution.py",
)


def test_program_needs_sandbox() -> None:
    assert program_needs_sandbox(PROGRAM)
    assert not program_needs_sandbox(exact("1"))


def test_grade_dispatches_program_checks_to_the_runner() -> None:
    runner = RecordingRunner(passed=True)
    assert grade(PROGRAM, "answer", program_runner=runner)
    assert runner.calls == [(PROGRAM, "answer")]
    assert not grade(PROGRAM, "answer", program_runner=RecordingRunner(passed=False))


def test_grade_without_runner_refuses_program_checks() -> None:
    with pytest.raises(ValueError, match="program_runner"):
        grade(PROGRAM, "x")
    with pytest.raises(ValueError, match="sandbox"):
        grade_text(PROGRAM, "x")  # type: ignore[arg-type]


def test_grade_text_kinds_ignore_the_runner() -> None:
    runner = RecordingRunner(passed=False)
    assert grade(exact("ok"), "OK", program_runner=runner)
    assert runner.calls == []


def test_program_files_writes_last_code_block_to_answer_file() -> None:
    answer = "Draft:\n```python\nx = 0\n```\nFinal:\n```python\nx = 1\n```"
    assert program_files(PROGRAM, answer) == {
        ".grader/check.py": "import solution",
        "solution.py": "x = 1\n",
    }


def test_program_files_without_answer_file_is_only_the_grader() -> None:
    check = ProgramCheck(kind="program", command="sh check.sh", files={"check.sh": "true"})
    assert program_files(check, "```\nignored\n```") == {"check.sh": "true"}
