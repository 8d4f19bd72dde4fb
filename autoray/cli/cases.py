"""``autoray cases list|check``: browse the golden set and prove it grades what it claims.

``cases check`` grades every case's reference answer (must pass) and wrong answer (must fail).
Program checks and agentic cases need a sandbox: each one is replayed in a fresh working
directory of a started sandbox (``--sandbox process``, the default, needs nothing installed;
``--sandbox docker`` uses the container image). ``--sandbox none`` grades the text checks only and
counts the rest as pending, which is not a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from autoray.cases import BUILTIN_DATASET, Dataset, GoldenCase, load_dataset
from autoray.checks import ProgramRunner
from autoray.cli._common import fail, print_json
from autoray.errors import AutorayError
from autoray.selfcheck import CaseCheck, RouteTally, check_dataset, tally_by_route
from autoray.taxonomy import ROUTES, validate_route

CHECK_FAILED_EXIT = 1
NO_SANDBOX = "none"
SANDBOX_CHOICES = (NO_SANDBOX, "process", "docker")

DatasetOption = Annotated[
    str,
    typer.Option("--dataset", help="builtin:decider, or a directory / file of golden cases."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SandboxOption = Annotated[
    str,
    typer.Option(
        "--sandbox",
        help="Run program checks in this sandbox backend (process or docker); "
        "'none' reports them as pending.",
    ),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Browse and self-check the golden cases.", no_args_is_help=True)
    group.command("list")(list_command)
    group.command("check")(check_command)
    app.add_typer(group, name="cases")


def list_command(
    route: Annotated[
        str | None, typer.Option("--route", help="Only this route, e.g. debugging/bug_fixing.")
    ] = None,
    dataset: DatasetOption = BUILTIN_DATASET,
    as_json: JsonOption = False,
) -> None:
    """List the golden cases (id, route, language, difficulty, check kind)."""
    wanted = _route_option(route)
    cases = _select(_load(dataset), wanted)
    if as_json:
        print_json([case_summary(case) for case in cases])
        return
    typer.echo(render_case_list(cases))


def check_command(
    dataset: DatasetOption = BUILTIN_DATASET,
    sandbox: SandboxOption = "process",
    as_json: JsonOption = False,
) -> None:
    """Check that every reference answer passes and every wrong answer fails its check."""
    backend = _sandbox_option(sandbox)
    loaded = _load(dataset)
    try:
        with _program_runner(backend) as runner:
            checks = check_dataset(loaded, program_runner=runner)
    except AutorayError as exc:
        fail(str(exc))
    tallies = tally_by_route(checks)
    if as_json:
        print_json(_check_report(loaded, checks, tallies))
    else:
        typer.echo(render_check_report(checks, tallies))
    if any(item.status == "failed" for item in checks):
        raise typer.Exit(code=CHECK_FAILED_EXIT)


def _sandbox_option(sandbox: str) -> str | None:
    if sandbox not in SANDBOX_CHOICES:
        fail(f"--sandbox {sandbox!r} is not a backend; choose one of {', '.join(SANDBOX_CHOICES)}")
    return None if sandbox == NO_SANDBOX else sandbox


@contextmanager
def _program_runner(backend: str | None) -> Iterator[ProgramRunner | None]:
    """A started sandbox of ``backend`` as a program runner, or None (program checks pending)."""
    if backend is None:
        yield None
        return
    # Imported only when asked for: the runner pulls in the sandbox backends.
    from autoray.config import SandboxConfig
    from autoray.runner import sandbox_program_runner

    with sandbox_program_runner(SandboxConfig.model_validate({"backend": backend})) as runner:
        yield runner


def _load(spec: str) -> Dataset:
    try:
        return load_dataset(spec)
    except AutorayError as exc:
        fail(f"--dataset: {exc}")


def _route_option(route: str | None) -> str | None:
    """Validated before the dataset loads, so a typo is reported first and cheaply."""
    if route is None:
        return None
    try:
        return validate_route(route)
    except AutorayError:
        fail(f"--route {route!r} is not a route; valid routes: {', '.join(ROUTES)}")


def _select(dataset: Dataset, route: str | None) -> tuple[GoldenCase, ...]:
    return dataset.cases if route is None else dataset.by_route(route)


def case_summary(case: GoldenCase) -> dict[str, Any]:
    return {
        "id": case.id,
        "route": case.route,
        "task_type": case.task_type,
        "subtask_type": case.subtask_type,
        "language": case.language,
        "difficulty": case.difficulty,
        "check": case.check.kind,
    }


def render_case_list(cases: tuple[GoldenCase, ...]) -> str:
    rows = [[c.id, c.route, c.language, c.difficulty, c.check.kind] for c in cases]
    table = _table(["id", "route", "language", "difficulty", "check"], rows)
    return f"{table}\n{len(cases)} cases"


def render_check_report(checks: list[CaseCheck], tallies: list[RouteTally]) -> str:
    rows = [[t.route, t.cases, t.passed, t.failed, t.pending] for t in tallies]
    total = _total(tallies)
    rows.append(["total", total.cases, total.passed, total.failed, total.pending])
    lines = [_table(["route", "cases", "passed", "failed", "pending"], rows)]
    lines += [f"FAILED {c.case_id}: {c.detail}" for c in checks if c.status == "failed"]
    if total.pending:
        lines.append(f"{total.pending} cases need a sandbox (pending): program checks not run")
    return "\n".join(lines)


def _check_report(
    dataset: Dataset, checks: list[CaseCheck], tallies: list[RouteTally]
) -> dict[str, Any]:
    total = _total(tallies)
    return {
        "dataset": dataset.identity,
        "routes": [_tally_dict(tally) for tally in tallies],
        "total": _tally_dict(total),
        "cases": [
            {"id": c.case_id, "route": c.route, "status": c.status, "detail": c.detail}
            for c in checks
        ],
    }


def _tally_dict(tally: RouteTally) -> dict[str, Any]:
    return {
        "route": tally.route,
        "cases": tally.cases,
        "passed": tally.passed,
        "failed": tally.failed,
        "pending": tally.pending,
    }


def _total(tallies: list[RouteTally]) -> RouteTally:
    return RouteTally(
        "total",
        cases=sum(t.cases for t in tallies),
        passed=sum(t.passed for t in tallies),
        failed=sum(t.failed for t in tallies),
        pending=sum(t.pending for t in tallies),
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
