"""``autoray table``: show, list and activate (roll back to) routing tables."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from autoray.cli._common import DatabaseUrlOption, JsonOption, fail, in_store, print_json
from autoray.cli._common import database_url as _url
from autoray.table import RoutingTable

table_app = typer.Typer(help="Routing tables: show, list, activate.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(table_app, name="table")


@table_app.command("show")
def show(
    version: Annotated[
        str | None, typer.Option("--version", help="A version (default: the active table).")
    ] = None,
    database_url: DatabaseUrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The active routing table (or VERSION): routes with their ranked candidates.

    ``--json`` prints the table's JSON form, described by the JSON Schema shipped in the
    package as ``autoray/schemas/routing_table.schema.json``.
    """
    from autoray.store import repo

    async def _load(session: Any) -> RoutingTable | None:
        if version is None:
            return await repo.active_table(session)
        return await repo.get_table(session, version=version)

    table = in_store(_url(database_url), _load)
    if table is None:
        what = f"no routing table with version {version!r}" if version else "no active table"
        fail(f"{what}; `autoray table list` shows the versions, `autoray bench run` makes one")
    if as_json:
        print_json(table.as_dict())
    else:
        typer.echo(render_table(table))


def render_table(table: RoutingTable) -> str:
    lines = [
        f"routing table {table.version}  generated {table.generated_at}  run {table.run_id or '-'}",
        f"min_accuracy {table.min_accuracy:g}  switch_cost_factor {table.switch_cost_factor:g}  "
        f"best_accuracy_gap {table.best_accuracy_gap:g}",
        f"dataset {table.dataset_identity or '-'}",
        "",
    ]
    for route, candidates in table.routes.items():
        lines.append(route)
        if not candidates:
            lines.append("   (no candidate)")
        for rank, cand in enumerate(candidates, start=1):
            label = f"{cand.model_id}[{cand.variant}]" if cand.variant else cand.model_id
            mark = "meets" if cand.meets_threshold else "below"
            lines.append(
                f"  {rank}. {label:<32} acc {cand.accuracy:.4f}  "
                f"avg ${cand.avg_cost_usd:.6f}  {mark}"
            )
    return "\n".join(lines)


@table_app.command("list")
def list_tables(database_url: DatabaseUrlOption = None, as_json: JsonOption = False) -> None:
    """Published routing tables, newest first; the active one is marked."""
    from autoray.store import repo

    infos = in_store(_url(database_url), lambda s: repo.list_tables(s))
    rows = [
        {
            "version": i.version,
            "generated_at": i.generated_at,
            "run_id": i.run_id,
            "active": i.active,
        }
        for i in infos
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no routing tables yet; `autoray bench run CONFIG` publishes one")
    for row in rows:
        typer.echo(
            f"{'*' if row['active'] else ' '} {row['version']:<22} "
            f"{row['generated_at']:<34} {row['run_id'] or '-'}"
        )


@table_app.command("activate")
def activate(
    version: Annotated[str, typer.Argument(help="The version to make active (rollback).")],
    database_url: DatabaseUrlOption = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster whose Serve replicas to tell at once."),
    ] = None,
) -> None:
    """Make VERSION the active routing table; Serve replicas load it within seconds."""
    from autoray.store import repo

    previous = in_store(_url(database_url), lambda s: repo.activate_table(s, version=version))
    typer.echo(f"active routing table: {version} (was {previous or 'none'})")
    _notify_serve(version, address)


def _notify_serve(version: str, address: str | None) -> None:
    """Wake running Serve replicas now; without a cluster address their periodic check (2 s by
    default) finds the new version anyway."""
    from autoray.settings import Settings

    settings = Settings.from_env()
    if not (address or settings.ray_address):
        typer.echo("Serve replicas load it at their next version check (--address tells them now)")
        return
    from actors.driver import DriverOptions, connect
    from actors.table_events import notify_table_activated

    try:
        connect(DriverOptions(address=address), settings)
    except ConnectionError:
        typer.echo("no Ray cluster at that address; Serve replicas load it at their next check")
        return
    told = notify_table_activated(version, wait_s=5.0)
    typer.echo("Serve replicas notified" if told else "no Serve replicas run on that cluster")
