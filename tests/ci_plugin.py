"""Pytest plugin: in CI a skipped test is a failed test.

Locally, tests that need something this machine may lack (a Docker engine, PostgreSQL) skip
with the reason. CI installs and starts all of it, so a skip there means the suite silently
tested less than it claims: with ``AUTORAY_STRICT_SKIPS=1`` (set by ``.ci/run``) every skip is
reported as a failure naming the reason.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from autoray.settings import Settings


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and Settings.from_env().strict_skips:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may skip: {reason}"
