"""Run the Serve application in the foreground until SIGINT or SIGTERM (``autoray serve``).

Kept out of the CLI module because the core package never imports Ray; the CLI hands the
validated arguments here. On a Ray this process started, Serve and Ray are shut down at the end;
on a cluster it only connected to, just this application is deleted, so other Serve apps and
the cluster keep running.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve

from actors.driver import DriverOptions, connect
from autoray.settings import Settings
from serve.app import build_app
from serve.args import AppArgs


@dataclass(frozen=True, slots=True)
class ForegroundOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    name: str = "autoray"


def run_foreground(
    args: AppArgs, options: ForegroundOptions, *, on_ready: Callable[[], None]
) -> None:
    """Start Serve and the app, call ``on_ready``, block until a signal, then clean up.

    Raises ``ConnectionError`` when the given cluster cannot be reached.
    """
    settings = Settings.from_env()
    connect(DriverOptions(address=options.address), settings)
    address = options.address or settings.ray_address
    local = address in (None, "local")  # a Ray this process starts, not a cluster it joins
    stop = _stop_on_signals()
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        serve.run(build_app(args), name=options.name, route_prefix="/", blocking=False)
        on_ready()
        while not stop.wait(0.5):
            pass
    finally:
        _clean_up(options.name, local)


def _clean_up(name: str, local: bool) -> None:
    # Serve's controller can take its full 30 s grace period to stop behind HAProxy: say so,
    # so that a quiet terminal after Ctrl-C does not look like a hang.
    print("autoray serve: stopping (Serve may take up to 30 s)...", file=sys.stderr, flush=True)
    if local:
        serve.shutdown()
    else:
        serve.delete(name)
    ray.shutdown()


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so the clean-up always runs (no traceback on Ctrl-C)."""
    stop = threading.Event()

    def _handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop
