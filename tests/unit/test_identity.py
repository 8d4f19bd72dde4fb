"""Engine identity: it changes exactly when something that can change a score changes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoray.cases import GoldenCase, load_dataset
from autoray.checks import CHECKS_VERSION
from autoray.identity import (
    PROMPT_VERSION,
    RUNNER_VERSION,
    dataset_hash,
    dataset_identity,
    engine_identity,
)


def make_case(topic: str = "a", **changes: Any) -> GoldenCase:
    data: dict[str, Any] = {
        "id": f"debugging-bug_fixing-{topic}",
        "route": "debugging/bug_fixing",
        "language": "python",
        "difficulty": "easy",
        "prompt": f"Prompt {topic}",
        "check": {"kind": "exact", "expected": "1"},
        "reference": {"answer": "1", "steps": [{"tool": "bash", "command": "ls"}]},
        "wrong_answer": "2",
    }
    data.update(changes)
    return GoldenCase.model_validate(data)


BASE = [make_case("a"), make_case("b")]


def hash_with(**changes: Any) -> str:
    return dataset_hash([make_case("a", **changes), make_case("b")])


def test_versions() -> None:
    assert (RUNNER_VERSION, PROMPT_VERSION, CHECKS_VERSION) == ("runner-1", "prompt-1", "checks-1")


def test_hash_is_sha256_hex_and_stable() -> None:
    digest = dataset_hash(BASE)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert dataset_hash([make_case("a"), make_case("b")]) == digest


def test_hash_is_independent_of_order() -> None:
    assert dataset_hash(list(reversed(BASE))) == dataset_hash(BASE)


@pytest.mark.parametrize(
    "changes",
    [
        {"prompt": "Prompt a, reworded"},
        {"check": {"kind": "exact", "expected": "one"}},
        {"check": {"kind": "regex", "pattern": "1"}},
        {"reference": {"answer": "1", "steps": [{"tool": "bash", "command": "ls -la"}]}},
        {"reference": {"answer": "1"}},
        {"system": "A custom system prompt."},
        {"files": {"input.txt": "data"}},
    ],
)
def test_hash_changes_with_score_relevant_content(changes: dict[str, Any]) -> None:
    assert hash_with(**changes) != dataset_hash(BASE)


@pytest.mark.parametrize(
    "changes",
    [
        {"difficulty": "hard"},
        {"language": "go"},
        {"wrong_answer": "3"},
        {"reference": {"answer": "1.", "steps": [{"tool": "bash", "command": "ls"}]}},
        {"check": {"kind": "exact", "expected": "1"}},
    ],
)
def test_hash_ignores_descriptive_fields(changes: dict[str, Any]) -> None:
    assert hash_with(**changes) == dataset_hash(BASE)


def test_adding_or_removing_a_case_changes_the_hash() -> None:
    assert dataset_hash(BASE[:1]) != dataset_hash(BASE)
    assert dataset_hash([*BASE, make_case("c")]) != dataset_hash(BASE)


def test_engine_identity_format(tmp_path: Path) -> None:
    _write(tmp_path, [make_case("a")])
    dataset = load_dataset(str(tmp_path))
    identity = engine_identity(dataset)
    assert re.fullmatch(rf"{tmp_path.name}:[0-9a-f]{{12}}/checks-1/runner-1/prompt-1", identity)
    assert engine_identity(dataset, runner_version="runner-2").endswith("/runner-2/prompt-1")
    assert dataset.identity == dataset_identity(tmp_path.name, dataset.cases)


def test_builtin_engine_identity() -> None:
    identity = engine_identity(load_dataset("builtin:decider"))
    assert re.fullmatch(r"decider:[0-9a-f]{12}/checks-1/runner-1/prompt-1", identity)


def test_identity_changes_when_a_file_changes_not_when_files_are_reordered(
    tmp_path: Path,
) -> None:
    one, two, three = (tmp_path / name / "golden" for name in ("one", "two", "three"))
    for directory in (one, two, three):
        directory.mkdir(parents=True)
    cases = [make_case("a"), make_case("b")]
    _write(one, cases)
    _write(two, list(reversed(cases)))
    for index, case in enumerate(cases):
        line = case.model_dump_json(exclude_defaults=True)
        (three / f"part-{index}.jsonl").write_text(line + "\n", encoding="utf-8")
    first, second, split = (load_dataset(str(d)) for d in (one, two, three))
    assert engine_identity(first) == engine_identity(second) == engine_identity(split)
    assert [case.id for case in first] != [case.id for case in second]
    _write(two, [make_case("a", prompt="Prompt a, edited"), make_case("b")])
    assert engine_identity(load_dataset(str(two))) != engine_identity(first)


def _write(directory: Path, cases: list[GoldenCase]) -> None:
    data = {
        "task_type": "debugging",
        "cases": [case.model_dump(mode="json", exclude_defaults=True) for case in cases],
    }
    (directory / "debugging.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
