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

PER_ROUTE = 63
EVAL_PER_ROUTE = 21
SHORT_CHARS, LONG_CHARS = 120, 400
# A word or word bigram in at least CUE_SHARE of one route's requests and under RARE_SHARE of a
# close neighbour's would tell the two apart by itself: a cue phrase, not an intent.
CUE_SHARE, RARE_SHARE = 0.40, 0.10
# Except where the word names the very thing the route is about: tests in the test routes.
NAMED_SUBJECTS = {
    "implementation/test_creation": {"test", "tests"},
    "debugging/test_repair": {"test", "tests"},
}

# Routes a classifier could confuse; no cue phrase may tell one from the other.
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


def _words_and_bigrams(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)}


def _phrase_share(requests: list[LabelledRequest]) -> dict[str, float]:
    counts = Counter(key for r in requests for key in _words_and_bigrams(r.text))
    return {key: count / len(requests) for key, count in counts.items()}


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


def test_every_route_has_sixty_three_requests_twenty_one_for_eval() -> None:
    counts = Counter(request.route for request in REQUESTS)
    assert counts == {route: PER_ROUTE for route in ROUTES}
    evals = Counter(request.route for request in split(REQUESTS, "eval"))
    assert evals == {route: EVAL_PER_ROUTE for route in ROUTES}


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


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("which", SPLITS)
def test_a_third_short_and_a_quarter_long_in_each_split(route: str, which: str) -> None:
    """Length must not give the route away: every route has terse and long requests."""
    lengths = [len(request.text) for request in split(_by_route(REQUESTS)[route], which)]
    short = sum(length < SHORT_CHARS for length in lengths)
    long = sum(length > LONG_CHARS for length in lengths)
    assert short >= len(lengths) // 3, f"{short} of {len(lengths)} under {SHORT_CHARS} chars"
    assert long >= len(lengths) // 4, f"{long} of {len(lengths)} over {LONG_CHARS} chars"


def _cue(key: str, route: str, share: float, other: float) -> bool:
    named = key in NAMED_SUBJECTS.get(route, set())
    return share >= CUE_SHARE and other < RARE_SHARE and not named


@pytest.mark.parametrize(("first", "second"), CLOSE_PAIRS)
def test_close_routes_have_no_cue_word_or_bigram(first: str, second: str) -> None:
    grouped = _by_route(REQUESTS)
    share_a, share_b = _phrase_share(grouped[first]), _phrase_share(grouped[second])
    for key in set(share_a) | set(share_b):
        a, b = share_a.get(key, 0.0), share_b.get(key, 0.0)
        assert not _cue(key, first, a, b), f"{key!r}: {a:.0%} of {first}, {b:.0%} of {second}"
        assert not _cue(key, second, b, a), f"{key!r}: {b:.0%} of {second}, {a:.0%} of {first}"


def test_the_cue_check_catches_a_cue_phrase() -> None:
    """The check above is not vacuous: a phrase in half of one route and none of the other."""
    grouped = _by_route(REQUESTS)
    first, second = CLOSE_PAIRS[0]
    marked = [
        request.model_copy(update={"text": request.text + " zebra quill"})
        for request in grouped[first][: PER_ROUTE // 2]
    ]
    share_a = _phrase_share(marked + grouped[first][PER_ROUTE // 2 :])
    share_b = _phrase_share(grouped[second])
    assert _cue("zebra quill", first, share_a["zebra quill"], share_b.get("zebra quill", 0.0))
    assert not _cue("tests", "debugging/test_repair", 0.9, 0.0)


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
