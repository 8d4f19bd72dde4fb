"""The route taxonomy: 6 task types x 3 subtypes = 18 routes, in canonical order.

A route is written ``taskType/subtaskType``. Every table, summary and report lists routes in
the order of :data:`ROUTES`, so diffs between runs line up.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoray.errors import InvalidRouteError

TASK_TYPES: dict[str, tuple[str, ...]] = {
    "implementation": ("feature_development", "code_generation", "test_creation"),
    "debugging": ("bug_fixing", "test_repair", "root_cause_analysis"),
    "refactoring": ("code_cleanup", "architecture_improvement", "migration"),
    "planning_design": ("architecture_design", "technical_planning", "system_design"),
    "investigation": ("repo_exploration", "codebase_understanding", "external_research"),
    "agentic_execution": ("tool_usage", "terminal_operations", "multi_step_execution"),
}

ROUTES: tuple[str, ...] = tuple(
    f"{task}/{subtask}" for task, subtasks in TASK_TYPES.items() for subtask in subtasks
)

_TASK_OF_SUBTASK: dict[str, str] = {
    subtask: task for task, subtasks in TASK_TYPES.items() for subtask in subtasks
}


@dataclass(frozen=True, slots=True)
class Route:
    task_type: str
    subtask_type: str

    def __str__(self) -> str:
        return f"{self.task_type}/{self.subtask_type}"


def parse_route(text: str) -> Route:
    """Parse and validate ``taskType/subtaskType``; the error lists the valid choices."""
    task, sep, subtask = str(text).strip().partition("/")
    if not sep or not task or not subtask:
        raise InvalidRouteError(
            f"route {text!r} is not of the form 'taskType/subtaskType'; "
            f"valid routes: {', '.join(ROUTES)}"
        )
    if task not in TASK_TYPES:
        raise InvalidRouteError(
            f"unknown task type {task!r} in route {text!r}; "
            f"valid task types: {', '.join(TASK_TYPES)}"
        )
    if subtask not in TASK_TYPES[task]:
        owner = _TASK_OF_SUBTASK.get(subtask)
        hint = f" (it belongs to {owner!r})" if owner else ""
        raise InvalidRouteError(
            f"subtype {subtask!r} does not belong to task type {task!r}{hint}; "
            f"valid subtypes of {task!r}: {', '.join(TASK_TYPES[task])}"
        )
    return Route(task, subtask)


class RouteParts:
    """``task_type`` and ``subtask_type`` of an object's ``route`` (a classification, a decision),
    for the payloads that spell them out beside the route."""

    __slots__ = ()
    route: str

    @property
    def task_type(self) -> str:
        return parse_route(self.route).task_type

    @property
    def subtask_type(self) -> str:
        return parse_route(self.route).subtask_type


def validate_route(text: str) -> str:
    """Return the canonical route string, or raise :class:`InvalidRouteError`."""
    return str(parse_route(text))


def route_index(route: str) -> int:
    """Position of a route in the canonical order (for sorting)."""
    return ROUTES.index(validate_route(route))


def task_type_of(route: str) -> str:
    return parse_route(route).task_type
