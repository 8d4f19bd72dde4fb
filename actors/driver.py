"""What ``autoray bench …`` and ``python -m actors.job …`` share: connect to Ray, reach the
coordinator, start or resume a run, and follow its progress until it ends.

Everything a user can get wrong (the config, the budget, the sandbox backend) is checked here,
before Ray starts, so mistakes cost a second rather than a cluster start.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import ray

from actors.clients import (
    DEFAULT_NAMESPACE,
    CoordinatorClient,
    find_coordinator,
    get_or_create_coordinator,
)
from autoray.config import config_snapshot, load_config
from autoray.errors import InfrastructureError
from autoray.planning import check_budget
from autoray.progress import RunProgress, render_progress
from autoray.sandbox import BACKENDS
from autoray.settings import Settings, resolve_database_url

_POLL_S = 0.5
_PLAIN_EVERY_S = 5.0


@dataclass(frozen=True)
class DriverOptions:
    address: str | None = None
    database_url: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    log_to_driver: bool = False


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


def connect(options: DriverOptions, settings: Settings) -> None:
    if ray.is_initialized():
        return
    address = options.address or settings.ray_address
    ray.init(
        address=address,
        namespace=options.namespace,
        log_to_driver=options.log_to_driver,
        configure_logging=False,
    )


def coordinator(options: DriverOptions, database_url: str) -> CoordinatorClient:
    return get_or_create_coordinator(database_url, namespace=options.namespace)


def existing_coordinator(options: DriverOptions) -> CoordinatorClient | None:
    return find_coordinator(options.namespace)


def start(
    config_path: str, options: DriverOptions, settings: Settings
) -> tuple[CoordinatorClient, str, str]:
    """Check the config, reach the cluster and start a run; returns (client, run id, db URL)."""
    snapshot, url = prepare(config_path, options, settings)
    connect(options, settings)
    client = coordinator(options, url)
    return client, client.start_run(snapshot, sim_url=settings.sim_url), url


def resume(
    run_id: str, options: DriverOptions, settings: Settings
) -> tuple[CoordinatorClient, str]:
    """Reach the cluster and resume a run still marked running; returns (client, db URL)."""
    url = absolute_sqlite_url(resolve_database_url(options.database_url, settings))
    connect(options, settings)
    client = coordinator(options, url)
    client.resume_run(run_id, sim_url=settings.sim_url)
    return client, url


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
