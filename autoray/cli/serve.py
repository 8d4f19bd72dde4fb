"""``autoray serve``: run the decision endpoint on Ray Serve in the foreground until Ctrl-C.

It connects to ``--address`` / ``RAY_ADDRESS`` or starts a local Ray, migrates the database
(so a fresh one answers "no table yet" rather than failing), starts Serve's HTTP proxy on
``--host:--port`` and runs the application :func:`serve.app.build_app` builds. Ctrl-C (or
SIGTERM) removes it: on a Ray this command started, Serve and Ray are shut down; on a cluster it
only connected to, just this application is deleted, so other Serve apps keep running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from pydantic import ValidationError

from autoray.cli._common import DatabaseUrlOption, fail, in_store
from autoray.cli._common import database_url as _database_url
from autoray.settings import Settings, resolve_database_url

APP_IMPORT_PATH = "serve.app:build_app"
INGRESS_CHOICES = ("haproxy", "proxy")
HAPROXY_SWITCH = "RAY_SERVE_ENABLE_HA_PROXY"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)


def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTP port.")] = 8000,
    replicas: Annotated[
        int | None, typer.Option("--replicas", min=1, help="Replicas of the endpoint (1).")
    ] = None,
    database_url: DatabaseUrlOption = None,
    classifier: Annotated[
        str | None, typer.Option("--classifier", help="embedded (default) or llm.")
    ] = None,
    fallback_model: Annotated[
        str | None,
        typer.Option("--fallback-model", help="Model for autoray/auto when no decision is made."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML with the app's arguments (AppArgs fields), or a Serve config file such "
            "as serve/config.yaml; the options above override it.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster address (else RAY_ADDRESS, else a local Ray)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The Serve application's name.")] = "autoray",
    ingress: Annotated[
        str,
        typer.Option(
            "--ingress",
            help="On a Ray this command starts: 'haproxy' (HAProxy sends HTTP straight to the "
            "replicas) or 'proxy' (Serve's Python proxy actor). A cluster uses its own setting.",
        ),
    ] = "haproxy",
) -> None:
    """Serve POST /v1/decide, /v1/chat/completions (autoray/auto) and friends until Ctrl-C."""
    from actors.driver import absolute_sqlite_url
    from autoray.store import repo

    overrides: dict[str, Any] = {
        "num_replicas": replicas,
        "classifier": _classifier(classifier),
        "fallback_model": fallback_model,
    }
    file_args = _read_args(config)
    _database_url(database_url)  # refuses an empty --database-url
    file_url = file_args.get("database_url")
    url = absolute_sqlite_url(
        resolve_database_url(
            database_url, Settings.from_env(), file_url if isinstance(file_url, str) else None
        )
    )
    args = _app_args({**file_args, **_given(overrides), "database_url": url})
    version = in_store(url, lambda s: repo.active_version(s))
    _choose_ingress(ingress, address)
    _run(args, host=host, port=port, address=address, name=name, version=version)


def _run(
    args: Any, *, host: str, port: int, address: str | None, name: str, version: str | None
) -> None:
    from serve.foreground import ForegroundOptions, run_foreground

    options = ForegroundOptions(host=host, port=port, address=address, name=name)
    try:
        run_foreground(args, options, on_ready=lambda: _announce(host, port, args, version))
    except ConnectionError as err:
        fail(f"cannot reach the Ray cluster ({err}); check --address or RAY_ADDRESS")
    typer.echo("autoray serve stopped", err=True)


def _choose_ingress(ingress: str, address: str | None) -> None:
    """Pick Serve's HTTP ingress for a Ray this command starts (before Ray or Serve load).

    Serve's default proxy is a Python actor that hands each request to a replica and lets the
    replica call back for the body: one more actor round trip for every POST. With HAProxy the
    replicas read HTTP themselves (benchmarks/serve_latency.py measures both). Ray reads the
    switch from the environment of the processes it starts, so it is set here, before Ray is
    imported; a cluster this command only joins keeps the ingress it was started with.
    """
    if ingress not in INGRESS_CHOICES:
        fail(f"--ingress {ingress!r} is not an ingress; use one of {', '.join(INGRESS_CHOICES)}")
    if (address or Settings.from_env().ray_address) not in (None, "local"):
        return
    os.environ[HAPROXY_SWITCH] = "1" if ingress == "haproxy" else "0"


def _announce(host: str, port: int, args: Any, version: str | None) -> None:
    base = f"http://{host}:{port}"
    typer.echo(f"autoray serve: {args.num_replicas} replica(s) on {base}", err=True)
    typer.echo(f"  routing table  {version or 'none active yet (autoray bench run publishes one)'}")
    typer.echo(f"  decide         POST {base}/v1/decide")
    typer.echo(f"  OpenAI API     {base}/v1  (model: autoray/auto)")
    typer.echo(f"  health         {base}/healthz   docs {base}/docs")
    typer.echo("Ctrl-C stops it.", err=True)


def _classifier(value: str | None) -> Literal["embedded", "llm"] | None:
    if value is None or value in ("embedded", "llm"):
        return value  # type: ignore[return-value]
    fail(f"--classifier {value!r} is not a classifier; use 'embedded' or 'llm'")


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _app_args(values: dict[str, Any]) -> Any:
    from serve.args import AppArgs

    try:
        return AppArgs.model_validate(values)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in err.errors()
        )
        fail(f"invalid serve arguments: {problems}")


def _read_args(path: Path | None) -> dict[str, Any]:
    """The app's arguments from ``--config``: AppArgs fields, or a Serve config's app args."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        fail(f"--config {str(path)!r} cannot be read ({err}); pass a YAML file")
    if not isinstance(data, dict):
        fail(f"--config {str(path)!r} must be a YAML mapping of the app's arguments")
    if "applications" not in data:
        return data
    for application in data.get("applications") or []:
        if isinstance(application, dict) and application.get("import_path") == APP_IMPORT_PATH:
            return dict(application.get("args") or {})
    fail(f"--config {str(path)!r} has no application with import_path {APP_IMPORT_PATH!r}")
