"""Logging inside actor processes.

Ray leaves the root logger of a worker at WARNING, which would swallow the one structured line
per lane transition that operators read in the dashboard and in job logs. Actors call
:func:`configure` once at construction; it touches only the ``autoray`` logger tree.
"""

from __future__ import annotations

import logging
import sys

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int = logging.INFO) -> None:
    logger = logging.getLogger("autoray")
    logger.setLevel(level)
    if not any(getattr(h, "_autoray", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._autoray = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
