"""The labelled request set: its shape, its fixed split, its difficulty, and the loader's errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from autoray.errors import DatasetError
from autoray.labelled import BUILTIN_REQUESTS, SPLITS, LabelledRequest, load_requests, split
from autoray.taxonomy import ROUTES, TASK_TYPES, validate_route

REQUESTS = load_requests()
_WORD = re.compile(r"[a-z0-9_']+")

# Routes a classifier could confuse; no single word may tell one from the other.
CLOSE_PAIRS = (
    ("debugging/bug_fixing", "debugging/root_cause_analysis"),
    ("debugging/bug_fixing", "debugging/test_repair"),
    ("debugging/test_repair", "debugging/root_cause_analysis"),
    ("refactoring/code_cleanup", "refactoring/architecture_improvement"),
    ("refactoring/code_cleanup", "refactoring/migration"),
    ("refactoring/architecture_improvement", "refactoring/migration"),
    ("implementation/feature_development", "implementation/code_generation"),
    ("implementation/feature_development", "implementation/test_creation"),
    ("implementation/code_generation", "implementation/test_creation"),
    ("planning_design/architecture_design", "planning_design/system_design"),
    ("planning_design/architecture_design", "planning_design/technical_planning"),
    ("planning_design/system_design", "planning_design/technical_planning"),
    ("investigation/repo_exploration", "investigation/codebase_understanding"),
    ("investigation/repo_exploration", "investigation/external_research"),
    ("investigation/codebase_understanding", "investigation/external_research"),
    ("agentic_execution/tool_usage", "agentic_execution/terminal_operations"),
    ("agentic_execution/tool_usage", "agentic_execution/multi_step_execution"),
    ("agentic_execution/terminal_operations", "agentic_execution/multi_step_execution"),
    ("implementation/test_creation", "debugging/test_repair"),
    ("refactoring/architecture_improvement", "planning_design/architecture_design"),
    ("investigation/codebase_understanding", "debugging/root_cause_analysis"),
)


def _by_route(requests: tuple[LabelledRequest, ...]) -> dict[str, list[LabelledRequest]]:
    grouped: dict[str, list[LabelledRequest]] = {route: [] for route in ROUTES}
    for request in requests:
        grouped[request.route].append(request)
    return grouped


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def _word_share(requests: list[LabelledRequest]) -> dict[str, float]:
    counts = Counter(word for r in requests for word in set(_WORD.findall(r.text.lower())))
    return {word: count / len(requests) for word, count in counts.items()}


def _line(request_id: str, route: str, text: str, which: str = "train") -> dict[str, Any]:
    return {"id": request_id, "text": text, "route": route, "split": which}


def _write(directory: Path, name: str, lines: list[Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    rendered = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(rendered) + "\n", encoding="utf-8")
    return path


# --- the builtin set -------------------------------------------------------------------------


def test_every_task_type_has_its_file() -> None:
    folder = resources.files("autoray").joinpath("data", "requests")
    names = {entry.name for entry in folder.iterdir() if entry.name.endswith(".jsonl")}
    assert names == {f"{task}.jsonl" for task in TASK_TYPES}


def test_every_route_has_at_least_thirty_requests() -> None:
    counts = Counter(request.route for request in REQUESTS)
    assert set(counts) == set(ROUTES)
    assert min(counts.values()) >= 30, counts


def test_every_route_is_valid_and_ids_follow_it() -> None:
    for request in REQUESTS:
        assert validate_route(request.route) == request.route
        assert re.fullmatch(rf"{request.route.replace('/', '-')}-\d{{3}}", request.id)


def test_requests_come_in_canonical_route_order() -> None:
    positions = [ROUTES.index(request.route) for request in REQUESTS]
    assert positions == sorted(positions)


def test_ids_are_unique() -> None:
    ids = Counter(request.id for request in REQUESTS)
    assert [i for i, n in ids.items() if n > 1] == []


def test_texts_are_unique_ignoring_case_and_whitespace() -> None:
    texts = Counter(_normalised(request.text) for request in REQUESTS)
    assert [t[:60] for t, n in texts.items() if n > 1] == []


@pytest.mark.parametrize("route", ROUTES)
def test_split_is_two_thirds_train_per_route(route: str) -> None:
    requests = _by_route(REQUESTS)[route]
    train = len(split(requests, "train"))
    assert abs(train - 2 * len(requests) / 3) <= 1
    assert train + len(split(requests, "eval")) == len(requests)


def test_split_is_written_in_the_files_every_third_request_is_eval() -> None:
    for request in REQUESTS:
        number = int(request.id.rsplit("-", 1)[1])
        assert request.split == ("eval" if number % 3 == 0 else "train"), request.id
    assert load_requests() == REQUESTS


def test_every_route_has_terse_and_long_requests() -> None:
    for route, requests in _by_route(REQUESTS).items():
        lengths = [len(request.text) for request in requests]
        assert min(lengths) < 90 and max(lengths) > 400, route


@pytest.mark.parametrize(("first", "second"), CLOSE_PAIRS)
def test_close_routes_are_not_separable_by_one_word(first: str, second: str) -> None:
    grouped = _by_route(REQUESTS)
    share_a, share_b = _word_share(grouped[first]), _word_share(grouped[second])
    for word in set(share_a) | set(share_b):
        a, b = share_a.get(word, 0.0), share_b.get(word, 0.0)
        assert not (a >= 0.9 and b < 0.1), f"{word!r}: {a:.0%} of {first}, {b:.0%} of {second}"
        assert not (b >= 0.9 and a < 0.1), f"{word!r}: {b:.0%} of {second}, {a:.0%} of {first}"


def test_loads_from_another_directory_and_stays_pure(tmp_path: Path) -> None:
    script = (
        "import sys; from autoray.labelled import load_requests; "
        "n = len(load_requests()); "
        "bad = sorted(m for m in ('ray', 'fastapi', 'sqlalchemy', 'docker') if m in sys.modules); "
        "print(n, bad)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [str(len(REQUESTS)), "[]"]


# --- split() ----------------------------------------------------------------------------------


def test_split_keeps_order_and_rejects_an_unknown_split() -> None:
    assert SPLITS == ("train", "eval")
    evals = split(REQUESTS, "eval")
    assert evals == tuple(r for r in REQUESTS if r.split == "eval")
    with pytest.raises(DatasetError, match="split 'test' is not a split.*'train', 'eval'"):
        split(REQUESTS, "test")


# --- the loader on files of our own -----------------------------------------------------------

ROUTE = "debugging/bug_fixing"


def _good(number: int, text: str | None = None) -> dict[str, Any]:
    return _line(f"debugging-bug_fixing-{number:03d}", ROUTE, text or f"crash number {number}")


def test_loads_a_directory_in_canonical_order(tmp_path: Path) -> None:
    _write(tmp_path, "debugging.jsonl", ["", _good(1), "   ", _good(2)])
    _write(
        tmp_path,
        "implementation.jsonl",
        [_line("implementation-code_generation-001", "implementation/code_generation", "a regex")],
    )
    (tmp_path / "README.md").write_text("not data\n", encoding="utf-8")
    loaded = load_requests(str(tmp_path))
    assert [r.id for r in loaded] == [
        "implementation-code_generation-001",
        "debugging-bug_fixing-001",
        "debugging-bug_fixing-002",
    ]


def test_loads_a_single_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "debugging.jsonl", [_good(1)])
    (request,) = load_requests(str(path))
    assert request == LabelledRequest(
        id="debugging-bug_fixing-001", text="crash number 1", route=ROUTE, split="train"
    )


def test_rejects_an_unknown_field_naming_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "debugging.jsonl", [_good(1), {**_good(2), "label": "x"}])
    with pytest.raises(DatasetError) as err:
        load_requests(str(tmp_path))
    message = str(err.value)
    assert "debugging.jsonl line 2" in message
    assert "unknown field 'label'" in message and "allowed: id, text, route, split" in message


def test_rejects_a_bad_route_naming_file_line_and_choices(tmp_path: Path) -> None:
    _write(tmp_path, "debugging.jsonl", [{**_good(1), "route": "debugging/bugfix"}])
    with pytest.raises(DatasetError) as err:
        load_requests(str(tmp_path))
    message = str(err.value)
    assert "debugging.jsonl line 1: field 'route'" in message
    assert "'bugfix'" in message and "bug_fixing" in message


def test_rejects_a_bad_split_naming_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "debugging.jsonl", [_good(1), _good(2), {**_good(3), "split": "test"}])
    with pytest.raises(
        DatasetError,
        match=r"debugging\.jsonl line 3: field 'split': 'test' is "
        r"not a split; valid: 'train', 'eval'",
    ):
        load_requests(str(tmp_path))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {"id": "debugging-bug_fixing-001", "route": ROUTE, "split": "eval"},
            "missing required field 'text'",
        ),
        (_good(1, "   "), "field 'text': text is empty"),
        ({**_good(1), "text": 42}, "field 'text': Input should be a valid string"),
        ({**_good(1), "id": "bug-1"}, "field 'id': 'bug-1' must read 'debugging-bug_fixing-NNN'"),
        ("{not json", "invalid JSON"),
        ('["a", "list"]', "expected a JSON object with fields id, text, route, split, got list"),
    ],
)
def test_rejects_malformed_lines(tmp_path: Path, line: Any, expected: str) -> None:
    _write(tmp_path, "debugging.jsonl", [_good(7), line])
    with pytest.raises(DatasetError) as err:
        load_requests(str(tmp_path))
    assert "debugging.jsonl line 2" in str(err.value)
    assert expected in str(err.value)


def test_rejects_a_route_of_another_task_type(tmp_path: Path) -> None:
    other = _line("refactoring-migration-001", "refactoring/migration", "py2 to py3")
    _write(tmp_path, "debugging.jsonl", [_good(1), other])
    with pytest.raises(
        DatasetError,
        match=r"line 2: field 'route'.*move the line to "
        r"refactoring\.jsonl",
    ):
        load_requests(str(tmp_path))


def test_rejects_a_file_not_named_for_a_task_type(tmp_path: Path) -> None:
    _write(tmp_path, "bugs.jsonl", [_good(1)])
    with pytest.raises(DatasetError, match=r"bugs\.jsonl.*rename 'bugs\.jsonl'.*debugging\.jsonl"):
        load_requests(str(tmp_path))


def test_rejects_a_duplicate_id_naming_both_lines(tmp_path: Path) -> None:
    _write(tmp_path, "debugging.jsonl", [_good(1), _good(2), _good(1, "another text")])
    with pytest.raises(DatasetError) as err:
        load_requests(str(tmp_path))
    message = str(err.value)
    assert "duplicate id 'debugging-bug_fixing-001'" in message
    assert "debugging.jsonl line 1" in message and "debugging.jsonl line 3" in message


def test_rejects_a_text_repeated_up_to_case_and_whitespace(tmp_path: Path) -> None:
    _write(tmp_path, "debugging.jsonl", [_good(1, "Fix  the\ncrash"), _good(2, "fix the crash ")])
    with pytest.raises(
        DatasetError,
        match=r"line 2: field 'text' repeats the text of "
        r".*debugging\.jsonl line 1",
    ):
        load_requests(str(tmp_path))


def test_rejects_missing_empty_and_unreadable_sources(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"neither {BUILTIN_REQUESTS!r} nor an existing"):
        load_requests(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="has no .jsonl files"):
        load_requests(str(tmp_path))
    _write(tmp_path, "debugging.jsonl", ["", "  "])
    with pytest.raises(DatasetError, match="holds no requests"):
        load_requests(str(tmp_path))
    (tmp_path / "debugging.jsonl").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DatasetError, match="cannot read labelled request file"):
        load_requests(str(tmp_path))
