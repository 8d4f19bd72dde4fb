"""Golden-case models and the dataset loader: validation, error messages, order, prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from autoray.cases import (
    AGENTIC_SYSTEM_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    PROMPT_VERSION,
    BashStep,
    GoldenCase,
    ReadFileStep,
    WriteFileStep,
    load_dataset,
    system_prompt_for,
)
from autoray.checks import ExactCheck, ProgramCheck
from autoray.errors import DatasetError, InvalidRouteError
from autoray.taxonomy import ROUTES


def case_data(
    route: str = "debugging/bug_fixing", topic: str = "off-by-one", **extra: Any
) -> dict[str, Any]:
    task, subtask = route.split("/")
    data: dict[str, Any] = {
        "id": f"{task}-{subtask}-{topic}",
        "route": route,
        "language": "python",
        "difficulty": "easy",
        "prompt": f"What is the answer for {route} {topic}?",
        "check": {"kind": "exact", "expected": "42"},
        "reference": {"answer": "42"},
        "wrong_answer": "41",
    }
    data.update(extra)
    return data


def write_yaml(directory: Path, task_type: str, cases: list[dict[str, Any]]) -> Path:
    path = directory / f"{task_type}.yaml"
    path.write_text(yaml.safe_dump({"task_type": task_type, "cases": cases}), encoding="utf-8")
    return path


# ---------------------------------------------------------------- the model


def test_case_properties() -> None:
    case = GoldenCase.model_validate(case_data())
    assert (case.task_type, case.subtask_type) == ("debugging", "bug_fixing")
    assert not case.uses_tools and not case.needs_sandbox and not case.offers_tools
    assert case.files == {} and case.system is None and case.reference.steps == []
    assert isinstance(case.check, ExactCheck)


def test_program_check_needs_sandbox_but_not_tools() -> None:
    case = GoldenCase.model_validate(case_data(check={"kind": "program", "command": "true"}))
    assert isinstance(case.check, ProgramCheck)
    assert case.needs_sandbox and not case.offers_tools
    assert case.system_prompt == DEFAULT_SYSTEM_PROMPT


def test_steps_and_files_need_sandbox_and_tools() -> None:
    steps = [
        {"tool": "bash", "command": "ls"},
        {"tool": "write_file", "path": "a/b.txt", "content": "x"},
        {"tool": "read_file", "path": "a/b.txt"},
    ]
    case = GoldenCase.model_validate(case_data(reference={"answer": "42", "steps": steps}))
    assert [type(step) for step in case.reference.steps] == [
        BashStep,
        WriteFileStep,
        ReadFileStep,
    ]
    assert case.uses_tools and case.needs_sandbox
    with_files = GoldenCase.model_validate(case_data(files={"data/in.csv": "a,b\n"}))
    assert with_files.needs_sandbox and with_files.offers_tools and not with_files.uses_tools


def test_system_prompt_choice() -> None:
    plain = GoldenCase.model_validate(case_data())
    tools = GoldenCase.model_validate(case_data(files={"x.txt": "1"}))
    custom = GoldenCase.model_validate(case_data(system="Answer in haiku."))
    assert system_prompt_for(plain) == DEFAULT_SYSTEM_PROMPT
    assert system_prompt_for(tools) == AGENTIC_SYSTEM_PROMPT
    assert system_prompt_for(custom) == "Answer in haiku."
    for tool in ("bash", "write_file", "read_file", "working directory"):
        assert tool in AGENTIC_SYSTEM_PROMPT
    assert PROMPT_VERSION == "prompt-1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"route": "debugging/migration"}, "does not belong to task type 'debugging'"),
        ({"route": "nonsense"}, "not of the form"),
        ({"id": "debugging-test_repair-off-by-one"}, "does not start with 'debugging-bug_fixing-'"),
        ({"id": "Debugging Bug"}, "must read"),
        ({"id": "debugging-bug_fixing-"}, "must read"),
        ({"difficulty": "trivial"}, "easy"),
        ({"language": "Python"}, "lower-case"),
        ({"files": {"../escape.py": ""}}, "'..'"),
        ({"files": {"/abs.py": ""}}, "relative"),
        ({"prompt": "   "}, "empty"),
        ({"wrong_answer": "42"}, "wrong_answer equals reference.answer"),
        ({"reference": {"answer": ""}}, "empty"),
        ({"reference": {"answer": "1", "steps": [{"tool": "curl", "url": "x"}]}}, "curl"),
        ({"check": {"kind": "regex", "pattern": "[a-"}}, "'[a-'"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_case_validation_errors(changes: dict[str, Any], message: str) -> None:
    data = case_data()
    data.update(changes)
    with pytest.raises(ValidationError) as info:
        GoldenCase.model_validate(data)
    assert message in str(info.value)


def test_wrong_answer_is_required() -> None:
    data = case_data()
    del data["wrong_answer"]
    with pytest.raises(ValidationError, match="wrong_answer"):
        GoldenCase.model_validate(data)


# ---------------------------------------------------------------- the loader: errors


def test_unknown_field_names_file_case_and_field(tmp_path: Path) -> None:
    write_yaml(tmp_path, "debugging", [case_data(), case_data(topic="second", hint="x")])
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    message = str(info.value)
    assert "debugging.yaml" in message
    assert "'debugging-bug_fixing-second'" in message
    assert "unknown field 'hint'" in message
    assert "allowed: id, route" in message


def test_unknown_nested_field_gives_the_path(tmp_path: Path) -> None:
    bad = case_data(check={"kind": "exact", "expected": "42", "strict": True})
    write_yaml(tmp_path, "debugging", [bad])
    with pytest.raises(DatasetError, match=r"unknown field 'check\.strict'"):
        load_dataset(str(tmp_path))


def test_case_without_id_is_named_by_index(tmp_path: Path) -> None:
    second = case_data(topic="two")
    del second["id"]
    write_yaml(tmp_path, "debugging", [case_data(), second])
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    assert "cases[1]" in str(info.value) and "missing required field 'id'" in str(info.value)


def test_route_of_another_task_type_names_file_case_and_fix(tmp_path: Path) -> None:
    stray = case_data(route="implementation/code_generation", topic="stray")
    write_yaml(tmp_path, "debugging", [case_data(), stray])
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    message = str(info.value)
    assert "case 'implementation-code_generation-stray'" in message
    assert "debugging.yaml" in message
    assert "has route 'implementation/code_generation'" in message
    assert "the file is for task type 'debugging'" in message


def test_id_prefix_must_match_route(tmp_path: Path) -> None:
    write_yaml(tmp_path, "debugging", [case_data(id="debugging-test_repair-x")])
    with pytest.raises(DatasetError, match="does not start with 'debugging-bug_fixing-'"):
        load_dataset(str(tmp_path))


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(json.dumps(case_data()) + "\n", encoding="utf-8")
    twin = case_data(prompt="A different prompt")
    (tmp_path / "b.jsonl").write_text(json.dumps(twin) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    message = str(info.value)
    assert "duplicate case id 'debugging-bug_fixing-off-by-one'" in message
    assert "a.jsonl" in message and "b.jsonl" in message


def test_duplicate_prompts_are_rejected(tmp_path: Path) -> None:
    first = case_data(topic="one", prompt="Fix it.")
    second = case_data(topic="two", prompt="  Fix it.\n")
    write_yaml(tmp_path, "debugging", [first, second])
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    assert "'debugging-bug_fixing-two'" in str(info.value)
    assert "same prompt as case 'debugging-bug_fixing-one'" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("task_type: debugging\ncases: [\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping with 'task_type' and 'cases'"),
        ("task_type: debugging\ncases: []\nversion: 2\n", "unknown top-level field(s) 'version'"),
        ("task_type: debuging\ncases: []\n", "task_type 'debuging' is not a task type"),
        ("task_type: debugging\ncases: {a: 1}\n", "'cases' must be a list"),
        ("task_type: debugging\ncases: [just text]\n", "must be a mapping of case fields"),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "cases.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as info:
        load_dataset(str(tmp_path))
    assert message in str(info.value) and "cases.yaml" in str(info.value)


def test_file_named_for_another_task_type(tmp_path: Path) -> None:
    path = tmp_path / "debugging.yaml"
    path.write_text("task_type: refactoring\ncases: []\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="named for 'debugging'"):
        load_dataset(str(path))


def test_invalid_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(case_data()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="cases.jsonl line 3: invalid JSON"):
        load_dataset(str(path))


def test_missing_path_and_unknown_builtin(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="neither 'builtin:decider' nor an existing"):
        load_dataset(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="unknown builtin dataset 'builtin:nope'.*decider"):
        load_dataset("builtin:nope")


def test_empty_directory_and_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="has no .yaml/.yml/.jsonl files"):
        load_dataset(str(tmp_path))
    write_yaml(tmp_path, "debugging", [])
    with pytest.raises(DatasetError, match="holds no cases"):
        load_dataset(str(tmp_path))


# ---------------------------------------------------------------- the loader: success


def test_cases_come_in_route_order_then_file_order(tmp_path: Path) -> None:
    write_yaml(
        tmp_path,
        "debugging",
        [
            case_data("debugging/root_cause_analysis", "r1"),
            case_data("debugging/bug_fixing", "b1"),
            case_data("debugging/root_cause_analysis", "r2"),
            case_data("debugging/bug_fixing", "b2"),
        ],
    )
    write_yaml(tmp_path, "implementation", [case_data("implementation/test_creation", "t1")])
    dataset = load_dataset(str(tmp_path))
    assert [case.id.rsplit("-", 1)[1] for case in dataset.cases] == ["t1", "b1", "b2", "r1", "r2"]
    assert dataset.routes() == (
        "implementation/test_creation",
        "debugging/bug_fixing",
        "debugging/root_cause_analysis",
    )
    assert dataset.name == tmp_path.name and len(dataset) == 5


def test_dataset_lookups(tmp_path: Path) -> None:
    write_yaml(tmp_path, "debugging", [case_data(topic="a"), case_data(topic="b")])
    dataset = load_dataset(str(tmp_path))
    assert dataset.by_id("debugging-bug_fixing-b").prompt.endswith("b?")
    assert len(dataset.by_route("debugging/bug_fixing")) == 2
    assert dataset.by_route("debugging/test_repair") == ()
    assert [case.id for case in dataset] == [case.id for case in dataset.cases]
    with pytest.raises(DatasetError, match="no case 'missing'"):
        dataset.by_id("missing")
    with pytest.raises(InvalidRouteError):
        dataset.by_route("debugging/migration")


def test_single_file_and_yml_and_jsonl_load(tmp_path: Path) -> None:
    yml = tmp_path / "mixed.yml"
    yml.write_text(
        yaml.safe_dump({"task_type": "debugging", "cases": [case_data(topic="a")]}),
        encoding="utf-8",
    )
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps(case_data("refactoring/migration", "m")) + "\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("ignored", encoding="utf-8")
    assert load_dataset(str(yml)).name == "mixed"
    dataset = load_dataset(str(tmp_path))
    assert [case.route for case in dataset] == ["debugging/bug_fixing", "refactoring/migration"]


def test_identity_is_part_of_the_dataset(tmp_path: Path) -> None:
    write_yaml(tmp_path, "debugging", [case_data()])
    dataset = load_dataset(str(tmp_path))
    name, digest = dataset.identity.split(":")
    assert name == tmp_path.name and len(digest) == 12
    assert load_dataset(str(tmp_path)).identity == dataset.identity


def test_builtin_dataset_loads_in_canonical_order() -> None:
    dataset = load_dataset("builtin:decider")
    assert dataset.name == "decider"
    order = [ROUTES.index(case.route) for case in dataset.cases]
    assert order == sorted(order)
    assert dataset.identity.startswith("decider:")
