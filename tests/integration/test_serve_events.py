"""Table events on the shared local Ray: the actor replicas long-poll, and the notices the
coordinator and ``autoray table activate --address`` send after activating a table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.integration.serve_support import CHEAP, PRICEY, seed, table_of

pytestmark = pytest.mark.ray


@pytest.fixture
def events(ray_cluster: None) -> Any:
    """A fresh events actor (any left by an earlier test is replaced)."""
    import ray

    from actors.table_events import events_actor

    old = events_actor(create=False)
    if old is not None:
        ray.kill(old)
        _until(lambda: events_actor(create=False) is None)
    return events_actor(create=True)


def _until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_waiter_wakes_on_a_notice_and_times_out_without_one(events: Any) -> None:
    import ray

    from actors.table_events import notify_table_activated

    current = ray.get(events.wait.remote(-1, 5))  # returns the generation at once
    started = time.monotonic()
    assert ray.get(events.wait.remote(current, 0.3)) == current
    assert time.monotonic() - started >= 0.3
    pending = events.wait.remote(current, 30)
    assert notify_table_activated("rt-x", wait_s=10) is True
    assert ray.get(pending, timeout=10) == current + 1
    assert ray.get(events.current.remote()) == {"generation": current + 1, "version": "rt-x"}


def test_nobody_to_tell_without_the_actor(events: Any) -> None:
    import ray

    from actors.table_events import events_actor, notify_table_activated

    ray.kill(events)
    _until(lambda: events_actor(create=False) is None)
    assert notify_table_activated("rt-x", wait_s=5) is False
    assert events_actor(create=False) is None  # a notifier never creates it


def test_table_activate_with_an_address_notifies_the_replicas(events: Any, tmp_path: Path) -> None:
    import ray

    from autoray.cli.main import _register, app

    url = f"sqlite+aiosqlite:///{tmp_path / 'autoray.db'}"
    first, second = table_of(), table_of(default=(PRICEY, CHEAP))
    seed(url, [first, second], activate=first)
    before = ray.get(events.current.remote())["generation"]
    _register()
    address = ray.get_runtime_context().gcs_address
    result = CliRunner().invoke(
        app, ["table", "activate", second.version, "--database-url", url, "--address", address]
    )
    assert result.exit_code == 0, result.output
    assert "Serve replicas notified" in result.stdout
    assert ray.get(events.current.remote()) == {
        "generation": before + 1,
        "version": second.version,
    }
