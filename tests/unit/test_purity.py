"""The core stays pure: nothing under autoray/ imports Ray; domain modules import no adapters.

Checked two ways: statically (every import statement, including ones inside functions) and
by importing the domain modules in a fresh interpreter and looking at ``sys.modules``, which
also catches an adapter pulled in indirectly.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "autoray"
DOMAIN_MODULES = (
    "taxonomy",
    "config",
    "planning",
    "summaries",
    "ranking",
    "table",
    "checks",
    "cases",
    "results",
    "errors",
    "identity",
    "decision",
)
ADAPTER_LIBRARIES = ("fastapi", "sqlalchemy", "docker", "httpx", "uvicorn")


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _top(name: str) -> str:
    return name.partition(".")[0]


def _existing_domain_modules() -> list[str]:
    return [name for name in DOMAIN_MODULES if (PACKAGE / f"{name}.py").is_file()]


def test_the_walk_finds_the_package() -> None:
    files = list(PACKAGE.rglob("*.py"))
    assert PACKAGE / "taxonomy.py" in files and PACKAGE / "planning.py" in files


def test_import_scanner_sees_nested_and_dotted_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import ray.util\n    from ray import serve\nfrom . import x\n")
    assert {_top(name) for name in _imported_names(sample)} == {"ray"}


def test_nothing_under_autoray_imports_ray() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in sorted(_imported_names(path))
        if _top(name) == "ray"
    ]
    assert offenders == [], "autoray/ must not import ray; move Ray code to actors/ or serve/"


def test_domain_modules_import_no_adapter_library() -> None:
    offenders = [
        f"autoray/{module}.py: {name}"
        for module in _existing_domain_modules()
        for name in sorted(_imported_names(PACKAGE / f"{module}.py"))
        if _top(name) in ADAPTER_LIBRARIES or _top(name) == "ray"
    ]
    assert offenders == []


def test_domain_modules_pull_in_no_adapter_at_import() -> None:
    modules = _existing_domain_modules()
    assert "planning" in modules and "table" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module('autoray.' + name)\n"
        f"print(json.dumps(sorted(m for m in {list(ADAPTER_LIBRARIES) + ['ray']!r} "
        "if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
