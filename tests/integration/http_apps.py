"""Serve a test's ASGI app with uvicorn on 127.0.0.1, in a background thread: real HTTP, no Ray.

Binding the socket first (port 0) tells the test the port before the server starts, with no
race for it; the lifespan runs, so an app's startup and shutdown (an HTTP client it opens and
closes, as a Serve replica does) happen as they would in production.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` until the context exits; yields ``http://127.0.0.1:PORT``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "test app did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released), for connection-refused tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
