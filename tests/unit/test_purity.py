"""The core stays pure, and actors/ has no import circle.

* Nothing under autoray/ but the CLI (the composition root on the top floor) imports ``ray``,
  ``actors`` or ``serve``.
* Domain modules, the run controller among them, import no adapter library.
* ``actors/`` modules import each other without a circle (it was clients <-> coordinator, and
  the run state imported the lane actor's module).

Checked two ways: statically (every import statement, including ones inside functions and
under ``TYPE_CHECKING``) and by importing the domain modules in a fresh interpreter and looking
at ``sys.modules``, which also catches an adapter pulled in indirectly.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "autoray"
ACTORS = ROOT / "actors"
SHELL_PACKAGES = ("ray", "actors", "serve")
COMPOSITION_ROOT = PACKAGE / "cli"
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
    "engine/states",
    "engine/policy",
    "engine/run",
    "engine/progress",
    "engine/controller",
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


def _dotted(module: str) -> str:
    return "autoray." + module.replace("/", ".")


def test_the_walk_finds_the_package() -> None:
    files = list(PACKAGE.rglob("*.py"))
    assert PACKAGE / "taxonomy.py" in files and PACKAGE / "planning.py" in files


def test_import_scanner_sees_nested_and_dotted_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import ray.util\n    from ray import serve\nfrom . import x\n")
    assert {_top(name) for name in _imported_names(sample)} == {"ray"}


def test_the_core_imports_neither_ray_nor_actors_nor_serve() -> None:
    core = [p for p in sorted(PACKAGE.rglob("*.py")) if COMPOSITION_ROOT not in p.parents]
    assert PACKAGE / "engine" / "controller.py" in core
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in core
        for name in sorted(_imported_names(path))
        if _top(name) in SHELL_PACKAGES
    ]
    assert offenders == [], (
        "autoray/ (but its CLI) must not import ray, actors or serve; move that code to "
        "actors/ or serve/, or into the CLI that composes them"
    )


def test_the_scanner_sees_a_core_module_that_imports_the_shell(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from actors.coordinator import Coordinator\nimport serve.app\n")
    assert {_top(name) for name in _imported_names(sample)} == {"actors", "serve"}


def _actor_imports() -> dict[str, set[str]]:
    modules = {path.stem for path in ACTORS.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for module in modules:
        names = _imported_names(ACTORS / f"{module}.py")
        graph[module] = {
            name.split(".")[1] for name in names if name.startswith("actors.")
        } & modules
        tree = ast.parse((ACTORS / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):  # "from actors import logs, placement"
            if isinstance(node, ast.ImportFrom) and node.module == "actors":
                graph[module] |= {alias.name for alias in node.names} & modules
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            found = visit(target, [*path, node])
            if found:
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return None


def test_actors_have_no_import_circle() -> None:
    graph = _actor_imports()
    assert "coordinator" in graph and "clients" in graph["coordinator"]
    assert _cycle(graph) is None, f"import circle in actors/: {' -> '.join(_cycle(graph) or [])}"


def test_the_circle_finder_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_domain_modules_import_no_adapter_library() -> None:
    assert "engine/controller" in _existing_domain_modules()
    offenders = [
        f"autoray/{module}.py: {name}"
        for module in _existing_domain_modules()
        for name in sorted(_imported_names(PACKAGE / f"{module}.py"))
        if _top(name) in ADAPTER_LIBRARIES or _top(name) == "ray"
    ]
    assert offenders == []


def test_domain_modules_pull_in_no_adapter_at_import() -> None:
    modules = [_dotted(module) for module in _existing_domain_modules()]
    assert "autoray.planning" in modules and "autoray.engine.controller" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {list(ADAPTER_LIBRARIES) + ['ray']!r} "
        "if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []
