"""The 18 routes, their canonical order, and route parsing errors."""

from __future__ import annotations

import pytest

from autoray.errors import InvalidRouteError
from autoray.taxonomy import (
    ROUTES,
    TASK_TYPES,
    Route,
    parse_route,
    route_index,
    task_type_of,
    validate_route,
)


def test_eighteen_routes_in_canonical_order() -> None:
    assert len(ROUTES) == 18 and len(set(ROUTES)) == 18
    assert list(TASK_TYPES) == [
        "implementation",
        "debugging",
        "refactoring",
        "planning_design",
        "investigation",
        "agentic_execution",
    ]
    assert ROUTES[:3] == (
        "implementation/feature_development",
        "implementation/code_generation",
        "implementation/test_creation",
    )
    assert ROUTES[3] == "debugging/bug_fixing"
    assert ROUTES[-1] == "agentic_execution/multi_step_execution"
    assert all(len(subtasks) == 3 for subtasks in TASK_TYPES.values())


def test_every_subtype_belongs_to_one_task_type() -> None:
    subtypes = [sub for subs in TASK_TYPES.values() for sub in subs]
    assert len(subtypes) == len(set(subtypes)) == 18


def test_parse_and_validate() -> None:
    assert parse_route("debugging/test_repair") == Route("debugging", "test_repair")
    assert str(parse_route(" refactoring/migration ")) == "refactoring/migration"
    assert validate_route("investigation/repo_exploration") == "investigation/repo_exploration"
    assert task_type_of("planning_design/system_design") == "planning_design"


def test_route_index_follows_order() -> None:
    assert [route_index(route) for route in ROUTES] == list(range(18))


@pytest.mark.parametrize("text", ["debugging", "debugging/", "/bug_fixing", "", "a-b"])
def test_malformed_route_lists_valid_routes(text: str) -> None:
    with pytest.raises(InvalidRouteError) as info:
        parse_route(text)
    message = str(info.value)
    assert repr(text) in message and "taskType/subtaskType" in message
    assert "implementation/feature_development" in message


def test_unknown_task_type_lists_task_types() -> None:
    with pytest.raises(InvalidRouteError) as info:
        parse_route("testing/bug_fixing")
    assert "'testing'" in str(info.value)
    assert "valid task types: implementation, debugging" in str(info.value)


def test_mismatched_subtype_names_its_owner_and_choices() -> None:
    with pytest.raises(InvalidRouteError) as info:
        parse_route("implementation/bug_fixing")
    message = str(info.value)
    assert "'bug_fixing' does not belong to task type 'implementation'" in message
    assert "(it belongs to 'debugging')" in message
    assert "feature_development, code_generation, test_creation" in message


def test_unknown_subtype_has_no_owner_hint() -> None:
    with pytest.raises(InvalidRouteError) as info:
        validate_route("debugging/guessing")
    assert "belongs to" not in str(info.value) and "bug_fixing" in str(info.value)


def test_invalid_route_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        route_index("nope/nope")
