"""The package's imports: no cycle anywhere, and a core that needs none of the extras."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import policystore

#: The folder the package is imported from (the checkout's ``src``).
SOURCE = Path(policystore.__file__).parents[1]
#: What the extras bring: the core imports none of it.
EXTRAS = ("fastapi", "uvicorn", "starlette", "redis", "hiredis", "psycopg", "psycopg_pool", "matplotlib")
HEAVY = (*EXTRAS, "prometheus_client")
#: The core: these packages with every module below them, and these modules.
CORE_PACKAGES = ("policystore.model", "policystore.store")
CORE_MODULES = (
    "policystore",
    "policystore.errors",
    "policystore.redaction",
    "policystore.backends.base",
    "policystore.backends.memory",
    "policystore.backends.sqlite",
    "policystore.backends.registry",
)


def modules_of(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """Return every module of ``package`` under ``root``: its file, and whether it is a package's ``__init__``."""
    found = {}
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Return, for each module of ``package``, the modules of the package it imports.

    Every import statement counts, at the top, inside functions and under
    ``TYPE_CHECKING`` alike; ``from a import b`` counts ``a.b`` when it is a
    module, else ``a``.
    """
    modules = modules_of(root, package)

    def known(name: str) -> str:
        while name not in modules and "." in name:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == package)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's package, up level - 1 packages
                    here = module.split(".") if is_package else module.split(".")[:-1]
                    base = ".".join([*here[: len(here) - node.level + 1], *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                if base.split(".")[0] != package:
                    continue
                for alias in node.names:
                    name = f"{base}.{alias.name}"
                    imported.add(name if name in modules else known(base))
        graph[module] = imported - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return one cycle (as the path of modules that closes it) per group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Tarjan's strongly connected components, iteratively (no recursion limit on deep graphs).
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, edges = work[-1]
            step = next((e for e in edges if e not in index or e in stack), None)
            if step is not None and step not in index:
                index[step] = low[step] = len(index)
                stack.append(step)
                work.append((step, iter(sorted(graph.get(step, ())))))
                continue
            if step is not None:
                low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = stack[stack.index(node) :]
                del stack[stack.index(node) :]
                if len(group) > 1:
                    found.append(_path_through(graph, set(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A cycle inside ``group`` (modules that all reach each other), from its first module back to it."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for step in sorted(graph[node] & group):
            if step == start:
                return [*paths[node], start]
            if step not in paths:
                paths[step] = [*paths[node], step]
                queue.append(step)
    return sorted(group)


def run_python(code: str) -> list[str]:
    """Run ``code`` in a new interpreter on the checkout's package; return the JSON list it prints last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "POLICYSTORE_"))}
    env["PYTHONPATH"] = str(SOURCE)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert 0 == result.returncode, result.stderr
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


class TestNoImportCycle:
    """No module of policystore imports itself back through others, at any depth, even inside a function."""

    def test_package_has_no_import_cycle(self) -> None:
        """The import graph of every policystore module is acyclic."""
        assert [] == cycles(import_graph(SOURCE, "policystore"))

    def test_a_cycle_through_a_function_is_found(self, tmp_path: Path) -> None:
        """The check sees imports inside functions and relative ones: a planted cycle is reported as its path."""
        package = tmp_path / "planted"
        (package / "sub").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "sub" / "__init__.py").write_text("")
        (package / "a.py").write_text("from planted.sub import b\n")
        (package / "sub" / "b.py").write_text("def later():\n    from ..c import thing\n")
        (package / "c.py").write_text("import planted.a\nthing = 1\n")
        (package / "d.py").write_text("from planted import c\n")

        assert [["planted.a", "planted.sub.b", "planted.c", "planted.a"]] == cycles(import_graph(tmp_path, "planted"))


class TestCoreNeedsNoExtra:
    """The core (model, store, the memory and SQLite back ends, the registry) imports no extra."""

    def test_importing_the_core_imports_no_extra(self) -> None:
        """Every core module imported at once leaves FastAPI, uvicorn, redis, psycopg, matplotlib and prometheus out."""
        loaded = run_python(
            f"""
            import importlib, json, pkgutil, sys
            for name in {CORE_MODULES!r}:
                importlib.import_module(name)
            for name in {CORE_PACKAGES!r}:
                for info in pkgutil.walk_packages(importlib.import_module(name).__path__, name + "."):
                    importlib.import_module(info.name)
            print(json.dumps(sorted(sys.modules)))
            """
        )

        assert [] == [name for name in loaded if name.split(".")[0] in HEAVY]
        assert {"policystore.store.store", "policystore.model.policy", "policystore.backends.sqlite"} <= set(loaded)

    @pytest.mark.parametrize("url", ["sqlite:///{tmp}/policy.db", "memory://core"], ids=["sqlite", "memory"])
    def test_a_program_using_sqlite_or_memory_imports_no_extra(self, url: str, tmp_path: Path) -> None:
        """Opening, writing and closing a store of the core's back ends imports none of the extras."""
        loaded = run_python(
            f"""
            import asyncio, json, sys
            from policystore import PolicyStore

            async def main():
                store = await PolicyStore.open({url.format(tmp=tmp_path)!r}, lkg_path=None)
                await store.switch_mode("DEFENSIVE", reason="calm")
                await store.close()

            asyncio.run(main())
            print(json.dumps(sorted(sys.modules)))
            """
        )

        assert [] == [name for name in loaded if name.split(".")[0] in HEAVY]

    @pytest.mark.redis
    def test_opening_a_redis_url_imports_redis_and_not_psycopg(self) -> None:
        """A back end's libraries come with a URL of its own only: redis for redis://, never psycopg."""
        loaded = run_python(
            """
            import json, sys
            from policystore.store.urls import backend_for_url

            backend_for_url("redis://127.0.0.1:6379/0")
            print(json.dumps(sorted(sys.modules)))
            """
        )

        tops = {name.split(".")[0] for name in loaded}
        assert ("redis" in tops, "psycopg" in tops) == (True, False)
