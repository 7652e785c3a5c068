"""pyproject.toml declares what ``backend/loom`` imports, and nothing it does not.

Every top-level module imported by Loom's code (outside the standard library and Loom) must
come from a declared runtime dependency, each dependency must be imported somewhere (or be
listed below with the reason it is needed without an import), and none is declared twice.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend" / "loom"

# Needed at run time without being imported by name.
NOT_IMPORTED = {
    # the ASGI server `loom serve` runs (imported as uvicorn, declared with its extras)
    "uvicorn": "imported as uvicorn",
    # FastAPI parses multipart bodies with it (POST /ingest, /v1/files, ChatKit uploads)
    "python-multipart": "FastAPI's form parser",
    # the binary wheels of psycopg (libpq bundled)
    "psycopg-pool": "imported as psycopg_pool",
}


def _name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert found is not None, requirement
    return found.group(0).lower().replace("_", "-")


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _declared() -> list[str]:
    return [_name(r) for r in _project()["dependencies"]]


def _optional() -> set[str]:
    """The extras' packages (``otel``: Loom imports them when tracing is on); not ``dev``."""
    extras = _project()["optional-dependencies"]
    return {_name(r) for name, reqs in extras.items() if name != "dev" for r in reqs}


def _imported_modules() -> set[str]:
    modules: set[str] = set()
    for path in BACKEND.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "loom"}


def _distributions_of(modules: set[str]) -> dict[str, set[str]]:
    known = packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in known.get(m, [])} for m in modules}


def test_no_dependency_is_declared_twice() -> None:
    declared = _declared()
    twice = sorted({name for name in declared if declared.count(name) > 1})
    assert twice == []


def test_every_import_is_declared() -> None:
    declared = set(_declared()) | _optional()
    missing = {
        module: dists
        for module, dists in _distributions_of(_imported_modules()).items()
        if not dists & declared
    }
    assert missing == {}


def test_every_dependency_is_imported() -> None:
    used: set[str] = set()
    for dists in _distributions_of(_imported_modules()).values():
        used |= dists
    unused = sorted(
        name for name in _declared() if name not in used and name.split("[")[0] not in used
    )
    unused = [name for name in unused if name not in NOT_IMPORTED]
    assert unused == []
