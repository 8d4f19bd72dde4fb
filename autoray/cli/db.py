"""``autoray db``: bring the database schema up to date, or say where it stands."""

from __future__ import annotations

import typer

from autoray.cli._common import DatabaseUrlOption, fail
from autoray.cli._common import database_url as database_url_of
from autoray.errors import StoreError


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(
        name="db", help="Database schema: migrate and inspect.", no_args_is_help=True
    )
    db_app.command("upgrade")(upgrade_command)
    db_app.command("current")(current_command)
    app.add_typer(db_app, name="db")


def upgrade_command(database_url: DatabaseUrlOption = None) -> None:
    """Apply every pending migration (safe to repeat); prints the revision reached."""
    # SQLAlchemy and Alembic load only when a db command runs, not for every CLI call.
    from autoray.store.engine import redact_url
    from autoray.store.migrate import upgrade

    url = database_url_of(database_url)
    try:
        revision = upgrade(url)
    except StoreError as exc:
        fail(str(exc))
    typer.echo(f"database {redact_url(url)} is at revision {revision} (head)")


def current_command(database_url: DatabaseUrlOption = None) -> None:
    """Print the schema revision of the database and whether it is up to date."""
    from autoray.store.engine import redact_url
    from autoray.store.migrate import current_revision, head_revision

    url = database_url_of(database_url)
    try:
        revision = current_revision(url)
    except StoreError as exc:
        fail(str(exc))
    head = head_revision()
    state = "up to date" if revision == head else f"not at {head}; run `autoray db upgrade`"
    typer.echo(f"database {redact_url(url)} is at revision {revision or 'none'} ({state})")
