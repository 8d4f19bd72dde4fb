from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

_SKIPPING = """
import pytest

def test_needs_engine():
    pytest.skip("no Docker engine")

def test_fine():
    assert True
"""


def test_skip_is_a_skip_locally(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("AUTORAY_STRICT_SKIPS", raising=False)
    pytester.makepyfile(_SKIPPING)
    pytester.runpytest("-p", "tests.ci_plugin", "-p", "no:asyncio").assert_outcomes(
        passed=1, skipped=1
    )


def test_skip_fails_in_ci(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("AUTORAY_STRICT_SKIPS", "1")
    pytester.makepyfile(_SKIPPING)
    result = pytester.runpytest("-p", "tests.ci_plugin", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*skipped in CI, where nothing may skip*no Docker engine*"])
