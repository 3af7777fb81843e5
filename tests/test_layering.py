"""The layout's rules, checked on the code: every module imports, no import circle, imports point down.

The graph is read from the source (every `import` and `from … import`, also inside functions and under
`TYPE_CHECKING`), so a circle that only type checkers see fails here too. The floors, top first:
`app.main`/`app.__main__` -> `app.web` -> `jobs` -> `app.wallet`.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "jobs")

#: The queue's own modules: they run any kind and know none.
QUEUE = (
    "jobs.models",
    "jobs.store",
    "jobs.runner",
    "jobs.history",
    "jobs.intake",
    "jobs.lanes",
    "jobs.watchers",
    "jobs.progress",
    "jobs.endings",
    "jobs.context",
    "jobs.errors",
    "jobs.services",
)
KINDS = ("jobs.kinds", "jobs.shape", "jobs.backup", "jobs.restore", "jobs.rename")

#: What each part may never import (a module name or a package prefix).
FORBIDDEN = {
    "jobs": ("app.web", "app.main", "app.__main__", "aiohttp"),
    "app.wallet": ("app.web", "app.main", "app.__main__", "jobs", "aiohttp"),
    "app.web": ("app.main", "app.__main__"),
    # The ZIP library stands alone.
    "jobs.zip": ("app", *QUEUE, *KINDS),
    # The restore side reads the manifest's constants from the manifest module, not from the backup job.
    "jobs.restore": ("jobs.backup.backup",),
    **{module: KINDS for module in QUEUE},
}


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own name)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules (of `known`, or foreign, by full name) that module `name` imports anywhere in its text."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)
    return found - {name}


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """`importer -> imported` for every import that FORBIDDEN rules out."""
    wrong = []
    for importer, targets in sorted(graph.items()):
        for part, banned in FORBIDDEN.items():
            if not _within(importer, part):
                continue
            wrong.extend(
                f"{importer} -> {target}"
                for target in sorted(targets)
                if any(_within(target, prefix) for prefix in banned)
            )
    return wrong


# -- the rules on this project ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(module_files(ROOT)))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_import_circle() -> None:
    assert circles(import_graph(ROOT)) == []


def test_imports_point_down() -> None:
    assert upward_imports(import_graph(ROOT)) == []


# -- the checker itself finds what it is meant to find ----------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_circle_under_type_checking_is_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/wallet/__init__.py": "",
            "app/wallet/a.py": "from app.wallet.b import B\n",
            "app/wallet/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.wallet import a\n",
            "jobs/__init__.py": "",
        },
    )
    assert circles(import_graph(tmp_path)) == [["app.wallet.a", "app.wallet.b"]]


def test_a_relative_circle_inside_a_function_is_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "jobs/__init__.py": "",
            "jobs/runner.py": "from .context import C\n",
            "jobs/context.py": "def f():\n    from . import runner\n",
        },
    )
    assert circles(import_graph(tmp_path)) == [["jobs.context", "jobs.runner"]]


def test_upward_imports_are_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/web/__init__.py": "",
            "app/web/state.py": "",
            "app/wallet/__init__.py": "",
            "app/wallet/paths.py": "import jobs.models\n",
            "jobs/__init__.py": "",
            "jobs/models.py": "from app.web.state import x\nfrom aiohttp import web\nfrom app.wallet import paths\n",
        },
    )
    assert upward_imports(import_graph(tmp_path)) == [
        "app.wallet.paths -> jobs.models",
        "jobs.models -> aiohttp",
        "jobs.models -> app.web.state",
    ]
