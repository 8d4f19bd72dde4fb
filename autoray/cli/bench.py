"""``autoray bench``: run, resume, follow, list and cancel benchmark runs on Ray.

The commands reach Ray through :mod:`actors.driver`, imported inside each command so that the
core package stays importable, and testable, without Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from autoray.cli._common import DatabaseUrlOption, JsonOption, fail, in_store, print_json
from autoray.cli._common import database_url as _db_url
from autoray.engine.progress import RunProgress, render_progress
from autoray.errors import AutorayError
from autoray.settings import Settings

if TYPE_CHECKING:
    from actors.driver import DriverOptions

bench_app = typer.Typer(help="Run benchmarks on Ray and follow them.", no_args_is_help=True)

AddressOpt = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster address (else RAY_ADDRESS, else a local Ray)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def _options(address: str | None, database_url: str | None) -> DriverOptions:
    from actors.driver import DriverOptions

    return DriverOptions(address=address, database_url=database_url)


@bench_app.command("run")
def run(
    config: Annotated[str, typer.Argument(help="Benchmark config (YAML).")],
    address: AddressOpt = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
    detach: Annotated[bool, typer.Option("--detach", help="Start the run and return.")] = False,
) -> None:
    """Start a run through the coordinator and follow it until it ends (exit 0 if completed)."""
    from actors import driver, preflight

    settings = Settings.from_env()
    options = _options(address, database_url)
    try:
        preflight.check_config(config, options, settings)  # keys and endpoints; creates nothing
        client, run_id, url = driver.start(config, options, settings)
    except AutorayError as err:
        fail(str(err))
    _report_started(run_id, url)
    if detach:
        print_json({"run_id": run_id}) if as_json else typer.echo(run_id)
        return
    _follow_and_exit(client, run_id, as_json)


@bench_app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to resume.")],
    address: AddressOpt = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a run: one still running carries on (only the cases without a row run again), a
    finalizing one finalizes again, and a completed one with dead lanes revives them and is
    finalized again with its entries whole."""
    from actors import driver

    settings = Settings.from_env()
    options = _options(address, database_url)
    try:
        client, _ = driver.resume(run_id, options, settings)
    except AutorayError as err:
        fail(str(err))
    _follow_and_exit(client, run_id, as_json)


def _report_started(run_id: str, url: str) -> None:
    from autoray.store.engine import redact_url

    typer.echo(f"run {run_id} started (database {redact_url(url)})", err=True)


def _follow_and_exit(client: Any, run_id: str, as_json: bool) -> None:
    from actors import driver

    try:
        progress = driver.follow(client, run_id)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted; resume with `autoray bench resume {run_id}`", err=True)
        raise typer.Exit(code=130) from None
    except AutorayError as err:
        fail(str(err))
    _print_final(progress, as_json)
    raise typer.Exit(code=0 if progress.status == "completed" else 1)


def _print_final(progress: RunProgress, as_json: bool) -> None:
    from actors.driver import final_summary

    summary = final_summary(progress)
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        if value is not None:
            typer.echo(f"{key:>13}: {value}")
    if progress.table_version:
        typer.echo("see it with: autoray table show")


@bench_app.command("status")
def status(
    run_id: Annotated[
        str | None, typer.Argument(help="A run id (default: the newest run).")
    ] = None,
    address: AddressOpt = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Progress of a run: live from the coordinator when a cluster address is given (lane
    states included), else from the database (what the coordinator persisted)."""
    from autoray.engine.stored import load_progress

    progress = in_store(_db_url(database_url), lambda s: load_progress(s, run_id))
    if address or Settings.from_env().ray_address:
        progress = _live_progress(address, progress)
    if as_json:
        print_json(progress.as_dict())
    else:
        typer.echo(render_progress(progress))
        if progress.reason:
            typer.echo(f"reason: {progress.reason}")


def _live_progress(address: str | None, stored: RunProgress) -> RunProgress:
    """The coordinator's view of a run, or the stored one when no coordinator holds it."""
    from actors import driver

    settings = Settings.from_env()
    options = _options(address, None)
    try:
        driver.connect(options, settings)
        client = driver.existing_coordinator(options)
        return stored if client is None else client.status(stored.run_id)
    except ConnectionError:
        fail("no Ray cluster at that address; drop --address to read the database alone")
    except AutorayError:
        return stored


@bench_app.command("list")
def list_runs(database_url: DatabaseUrlOption = None, as_json: JsonOption = False) -> None:
    """Runs, newest first."""
    from autoray.engine.stored import run_summary
    from autoray.store import repo

    records = in_store(_db_url(database_url), lambda s: repo.list_runs(s))
    runs = [run_summary(record) for record in records]
    if as_json:
        print_json(runs)
        return
    if not runs:
        typer.echo("no runs yet; start one with `autoray bench run CONFIG`")
    for run in runs:
        typer.echo(
            f"{run['run_id']:<44} {run['status']:<10} {run['created_at']:<32} "
            f"{run['table_version'] or '-'}"
        )


@bench_app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")],
    address: AddressOpt = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Stop a run's lanes, destroy their sandboxes, mark it cancelled; nothing is published."""
    from actors import driver

    settings = Settings.from_env()
    options = _options(address or settings.ray_address or "auto", database_url)
    try:
        driver.connect(options, settings)
        client = driver.existing_coordinator(options)
        if client is None:
            fail("no autoray coordinator runs on this cluster; the run is not in flight here")
        progress = client.cancel(run_id)
    except ConnectionError:
        fail("no Ray cluster found; pass --address or set RAY_ADDRESS to the run's cluster")
    except AutorayError as err:
        fail(str(err))
    typer.echo(f"run {run_id}: {progress.status}")


@bench_app.command("shutdown")
def shutdown(address: AddressOpt = None) -> None:
    """Stop the detached coordinator (runs in flight resume when it is started again)."""
    from actors import driver

    settings = Settings.from_env()
    options = _options(address or settings.ray_address or "auto", None)
    try:
        driver.connect(options, settings)
    except ConnectionError:
        fail("no Ray cluster found; pass --address or set RAY_ADDRESS")
    client = driver.existing_coordinator(options)
    if client is None:
        typer.echo("no coordinator is running")
        return
    client.shutdown()
    typer.echo("coordinator stopped")
