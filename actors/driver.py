"""What ``autoray bench …`` and ``python -m actors.job …`` share: connect to Ray, reach the
coordinator, start or resume a run, and follow its progress until it ends.

Everything a user can get wrong (the config, the budget, the sandbox backend) is checked here,
before Ray starts, so mistakes cost a second rather than a cluster start.

Without an address (or with ``local``) the driver starts a local Ray of its own, which declares
the run's budget of live containers as the custom resource lanes ask for
(:data:`actors.placement.CONTAINER_RESOURCE`); a cluster the driver joins declares its own.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import ray

from actors.clients import DEFAULT_NAMESPACE, CoordinatorClient
from actors.coordinator import find_coordinator, get_or_create_coordinator
from actors.placement import CONTAINER_RESOURCE
from autoray.config import BenchConfig, config_snapshot, load_config
from autoray.engine.progress import RunProgress, render_progress
from autoray.errors import InfrastructureError
from autoray.planning import check_budget
from autoray.sandbox import BACKENDS
from autoray.settings import Settings, resolve_database_url
from autoray.store import in_migrated_store, repo

_POLL_S = 0.5
_PLAIN_EVERY_S = 5.0
DEFAULT_BUDGET = BenchConfig.model_fields["max_live_containers"].default


@dataclass(frozen=True)
class DriverOptions:
    """How to reach Ray. ``local_containers`` raises what a local Ray started here declares
    above the run's own budget, so runs started later on the same cluster fit beside it."""

    address: str | None = None
    database_url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    log_to_driver: bool = False
    local_containers: int | None = None


def prepare(
    config_path: str, options: DriverOptions, settings: Settings
) -> tuple[dict[str, Any], str]:
    """Load and check a config before any cluster starts; returns (snapshot, database URL)."""
    cfg = load_config(config_path)
    check_budget(len(cfg.models), cfg.repetitions, cfg.max_live_containers)
    BACKENDS[cfg.sandbox.backend].preflight(cfg.sandbox)
    snapshot = config_snapshot(cfg)  # load_config made a relative dataset path absolute
    url = absolute_sqlite_url(
        resolve_database_url(options.database_url, settings, cfg.database_url)
    )
    return snapshot, url


def absolute_sqlite_url(url: str) -> str:
    """Pin a relative SQLite path to the caller's directory: the coordinator runs elsewhere."""
    scheme, sep, path = url.partition(":///")
    if scheme not in ("sqlite", "sqlite+aiosqlite") or not sep:
        return url
    if path.startswith("/") or path.startswith(":memory:") or not path:
        return url
    return f"{scheme}:///{Path(path).resolve()}"


def connect(options: DriverOptions, settings: Settings, *, budget: int | None = None) -> None:
    """Join the cluster at the address given, or start a local Ray that declares
    :func:`local_containers` live containers for ``budget`` (the run's max_live_containers)."""
    if ray.is_initialized():
        return
    common: dict[str, Any] = {
        "namespace": options.namespace,
        "log_to_driver": options.log_to_driver,
        "configure_logging": False,
    }
    if not starts_local_ray(options, settings):
        ray.init(address=options.address or settings.ray_address, **common)
        return
    containers = local_containers(budget, options.local_containers)
    ray.init(address="local", resources={CONTAINER_RESOURCE: containers}, **common)


def starts_local_ray(options: DriverOptions, settings: Settings) -> bool:
    """Whether :func:`connect` would start a Ray of its own (no address, or ``local``)."""
    address = options.address or settings.ray_address
    return not ray.is_initialized() and address in (None, "local")


def local_containers(budget: int | None, configured: int | None = None) -> int:
    """What a local Ray declares: the run's budget (else the default budget of 100), or the
    configured number when that is larger."""
    return max(budget or DEFAULT_BUDGET, configured or 0)


def coordinator(options: DriverOptions, database_url: str) -> CoordinatorClient:
    return get_or_create_coordinator(database_url, namespace=options.namespace)


def existing_coordinator(options: DriverOptions) -> CoordinatorClient | None:
    return find_coordinator(options.namespace)


def start(
    config_path: str, options: DriverOptions, settings: Settings
) -> tuple[CoordinatorClient, str, str]:
    """Check the config, reach the cluster and start a run; returns (client, run id, db URL)."""
    snapshot, url = prepare(config_path, options, settings)
    connect(options, settings, budget=snapshot["max_live_containers"])
    client = coordinator(options, url)
    return client, client.start_run(snapshot, sim_url=settings.sim_url), url


def resume(
    run_id: str, options: DriverOptions, settings: Settings
) -> tuple[CoordinatorClient, str]:
    """Reach the cluster and resume a run still marked running; returns (client, db URL)."""
    url = absolute_sqlite_url(resolve_database_url(options.database_url, settings))
    budget = stored_budget(url, run_id) if starts_local_ray(options, settings) else None
    connect(options, settings, budget=budget)
    client = coordinator(options, url)
    client.resume_run(run_id, sim_url=settings.sim_url)
    return client, url


def stored_budget(url: str, run_id: str) -> int | None:
    """The max_live_containers the run was started with, so that a local Ray started to resume
    it declares enough containers; None for a run the database does not hold."""

    record = asyncio.run(in_migrated_store(url, lambda s: repo.get_run(s, run_id=run_id)))
    budget = None if record is None else record.config.get("max_live_containers")
    return budget if isinstance(budget, int) else None


def follow(
    client: CoordinatorClient, run_id: str, *, out: TextIO = sys.stderr, live: bool | None = None
) -> RunProgress:
    """Poll the coordinator until the run is terminal, drawing progress as it goes."""
    live = out.isatty() if live is None else live
    last_plain = 0.0
    progress = _status(client, run_id)
    while progress.status in ("running", "finalizing"):
        now = time.monotonic()
        if live:
            out.write("\r" + render_progress(progress) + "\033[K")
            out.flush()
        elif now - last_plain >= _PLAIN_EVERY_S:
            out.write(render_progress(progress) + "\n")
            out.flush()
            last_plain = now
        time.sleep(_POLL_S)
        progress = _status(client, run_id)
    out.write(("\r" if live else "") + render_progress(progress) + ("\033[K\n" if live else "\n"))
    out.flush()
    return progress


def _status(client: CoordinatorClient, run_id: str, attempts: int = 20) -> RunProgress:
    """Status, riding out a coordinator restart (Ray restarts it and retries the call)."""
    for attempt in range(attempts):
        try:
            return client.status(run_id)
        except InfrastructureError:
            if attempt == attempts - 1:
                raise
            time.sleep(min(5.0, 0.5 * 2**attempt))
    raise AssertionError("unreachable")


def final_summary(progress: RunProgress) -> dict[str, Any]:
    return {
        "run_id": progress.run_id,
        "status": progress.status,
        "cases": progress.cases_done,
        "errors": progress.errors,
        "dead_lanes": progress.dead_lanes,
        "table_version": progress.table_version,
        "reason": progress.reason,
    }
