"""The dependency rules of DESIGN.md, checked on the source with ast."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "strategies", "storage")
# the packages the graph covers: what ships, and tests (its rigs import each other and the bot)
GRAPHED = (*PACKAGES, "tests", "bench")
# calls that import the module named by their string arguments; a helper of our own that wraps
# importlib must be listed here (test_every_lazy_import_helper_is_known keeps that true)
STRING_IMPORTERS = frozenset({"import_module", "__import__", "import_off_loop"})

# source module -> imported module -> where ("bot/cli/main.py:279")
Graph = dict[str, dict[str, list[str]]]


def sources(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


@cache
def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", list(sources("strategies")), ids=lambda p: p.name)
def test_strategies_import_only_pandas_numpy_pandas_ta_and_their_base(path: Path) -> None:
    allowed = {
        "__future__",
        "abc",
        "collections",
        "dataclasses",
        "difflib",
        "typing",
        "numpy",
        "pandas",
        "pandas_ta",
        "strategies",
    }
    extra = {name for name in imported_modules(path) if top(name) not in allowed}
    assert extra <= {"bot.core.domain"}, f"{path.name} imports {extra}"


@pytest.mark.parametrize("path", list(sources("storage")), ids=lambda p: p.name)
def test_storage_imports_no_bot_logic(path: Path) -> None:
    ours = {name for name in imported_modules(path) if top(name) in {"bot", "handlers"}}
    assert ours <= {"bot.core.domain"}, f"{path.name} imports {ours}"


def under(path: Path, folder: str) -> bool:
    return path.is_relative_to(ROOT / folder)


@pytest.mark.parametrize("path", list(sources("bot")), ids=lambda p: str(p.relative_to(ROOT)))
def test_bot_reaches_telegram_ccxt_and_sqlite_only_through_its_adapters(path: Path) -> None:
    tops = {top(name) for name in imported_modules(path)}
    assert "telegram" not in tops
    if not under(path, "bot/exchange"):
        assert "ccxt" not in tops
    if not under(path, "bot/app"):
        assert "aiosqlite" not in tops


@pytest.mark.parametrize(
    "path",
    [p for package in PACKAGES for p in sources(package) if p != ROOT / "bot/core/clock.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_nothing_but_the_clock_reads_the_time(path: Path) -> None:
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            call = f"{node.value.id}.{node.attr}"
            assert call not in {"datetime.now", "datetime.utcnow", "date.today", "time.time"}, (
                f"{path.name}:{node.lineno} reads the time; take a Clock instead"
            )


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    return {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def _base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from`` import reads from (relative levels resolved)."""
    if node.level == 0:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _string_imports(node: ast.Call) -> list[str]:
    """The literal module names a call imports by string (importlib, lazy helpers, resources)."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    by_resources = (
        name == "files"
        and isinstance(func, ast.Attribute)
        and ast.unparse(func.value).endswith("resources")
    )
    if name not in STRING_IMPORTERS and not by_resources:
        return []
    return [
        arg.value
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ]


def imports_of(path: Path, module: str, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every module of ``modules`` that ``path`` imports, with the line: every import node counts,
    at module level, inside functions and under ``if TYPE_CHECKING:``, and imports by string.

    A name of ours that names no module is yielded as it is, so the caller can report it: inside a
    function or in a string it would fail only at run time, when the command first runs.
    """
    ours = {name.split(".")[0] for name in modules}
    is_package = path.name == "__init__.py"
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(node, module, is_package)
            # `from package import module` imports the module; `from module import name`, the module
            names = [
                base if f"{base}.{a.name}" not in modules else f"{base}.{a.name}"
                for a in node.names
            ]
        elif isinstance(node, ast.Call):
            names = _string_imports(node)
        else:
            continue
        for name in names:
            if name.split(".")[0] in ours:
                yield name, node.lineno


def import_graph(root: Path, packages: tuple[str, ...]) -> Graph:
    modules = project_modules(root, packages)
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        for target, line in imports_of(path, name, modules):
            if target != name:
                where = f"{path.relative_to(root).as_posix()}:{line}"
                wheres = graph[name].setdefault(target, [])
                if where not in wheres:  # `from m import a, b` is one edge
                    wheres.append(where)
    for edges in graph.values():
        for wheres in edges.values():
            wheres.sort(key=lambda where: int(where.rpartition(":")[2]))
    return graph


@cache
def project_graph() -> Graph:
    return import_graph(ROOT, GRAPHED)


def reachable(graph: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    queue = deque([start])
    while queue:
        for target in graph[queue.popleft()]:
            if target in graph and target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def strongly_connected(graph: Graph) -> list[list[str]]:
    """The components of more than one module (each reaches every other), each sorted.

    Plain reachability from every module: a few hundred modules make it instant.
    """
    reach = {node: reachable(graph, node) for node in graph}
    components = {
        frozenset(other for other in reach[node] if node in reach[other]) for node in graph
    }
    return sorted(sorted(component) for component in components if len(component) > 1)


def shortest_cycle(graph: Graph, start: str, within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside one component (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in graph[node]:
            if target == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if target in within and target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{start} is on no cycle")


def cycle_report(graph: Graph, components: list[list[str]]) -> list[str]:
    """One line per cycle, every module of every component on at least one, edges with file:line."""
    lines = []
    for component in components:
        covered: set[str] = set()
        for start in component:
            if start in covered:
                continue
            cycle = shortest_cycle(graph, start, set(component))
            covered.update(cycle)
            edges = ", ".join(
                f"{a} -> {b} ({' '.join(graph[a][b])})"
                for a, b in zip(cycle, cycle[1:], strict=False)
            )
            lines.append(f"{' -> '.join(cycle)}: {edges}")
    return lines


def test_no_import_cycles() -> None:
    """Every import counts, also those inside functions or under TYPE_CHECKING: a cycle hidden
    in a function still ties the modules together, and a move that hoists the import breaks."""
    graph = project_graph()
    cycles = cycle_report(graph, strongly_connected(graph))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The checker itself: cycles through TYPE_CHECKING, function-level and relative imports,
    `from package import module`, and a lazy import by string, each reported with file:line."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n",
        "pkg/b.py": "def f():\n    from . import c\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "async def g():\n    await import_off_loop('pkg.sub.e', 'pandas')\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/e.py": "from ..d import g\nimport_module('pkg.gone')\n",
        "pkg/leaf.py": "import pkg\nfrom pkg.a import x\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path, ("pkg",))
    assert sorted(map(sorted, strongly_connected(graph))) == [
        ["pkg.a", "pkg.b", "pkg.c"],
        ["pkg.d", "pkg.sub.e"],
    ]
    assert cycle_report(graph, strongly_connected(graph)) == [
        "pkg.a -> pkg.b -> pkg.c -> pkg.a: pkg.a -> pkg.b (pkg/a.py:3), "
        "pkg.b -> pkg.c (pkg/b.py:2), pkg.c -> pkg.a (pkg/c.py:1)",
        "pkg.d -> pkg.sub.e -> pkg.d: pkg.d -> pkg.sub.e (pkg/d.py:2), "
        "pkg.sub.e -> pkg.d (pkg/sub/e.py:1)",
    ]
    assert graph["pkg.sub.e"]["pkg.gone"] == ["pkg/sub/e.py:2"]  # reported by the test below
    assert "pandas" not in graph["pkg.d"]
    assert graph["pkg.leaf"] == {"pkg": ["pkg/leaf.py:1"], "pkg.a": ["pkg/leaf.py:2"]}


def test_every_import_of_ours_names_a_module() -> None:
    """`import_off_loop("bot.research.backtest")` or an import inside a function fails only
    when the command first runs, so check here that every module named exists."""
    graph = project_graph()
    missing = [
        f"{where}: {target}"
        for edges in graph.values()
        for target, wheres in edges.items()
        if target not in graph
        for where in wheres
    ]
    assert not missing, f"imports of modules that do not exist: {missing}"


# The layers, lowest first: a package imports only its own modules and lower rows (packages of
# one row do not import each other). The composition root (app) and the entry point (cli) sit on
# top; storage, the SQLite adapters, is named only by them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bot.core", "bot.sample_data"),
    ("strategies", "storage"),
    ("bot.ops",),
    ("bot.alerts",),
    ("bot.market", "bot.portfolio", "bot.risk"),
    ("bot.charts",),
    ("bot.execution", "bot.exchange"),
    ("bot.trading", "bot.research"),
    ("bot.chat",),
    ("handlers",),
    ("bot.app",),
    ("bot.cli",),
)
ONLY_FOR = {"storage": {"bot.app", "bot.cli"}}  # a package -> the only packages that import it
# Imports against the order that are still to be undone (issue 16): this list may only shrink.
AGAINST_ORDER: frozenset[tuple[str, str]] = frozenset()


def layer_package(module: str) -> str | None:
    """The package of LAYERS ``module`` belongs to (None: outside the layers, e.g. tests)."""
    for row in LAYERS:
        for package in row:
            if module == package or module.startswith(f"{package}."):
                return package
    return None


def against_order(graph: Graph) -> dict[tuple[str, str], list[str]]:
    """Every edge from one layer package to another that the order does not allow."""
    rank = {package: number for number, row in enumerate(LAYERS) for package in row}
    wrong: dict[tuple[str, str], list[str]] = {}
    for source, edges in graph.items():
        mine = layer_package(source)
        for target, wheres in edges.items():
            theirs = layer_package(target)
            if mine is None or theirs is None or mine == theirs:
                continue
            allowed = rank[theirs] < rank[mine] and mine in ONLY_FOR.get(theirs, {mine})
            if not allowed:
                wrong[(source, target)] = wheres
    return wrong


def test_every_module_of_ours_has_a_layer() -> None:
    graph = project_graph()
    loose = [m for m in graph if top(m) in PACKAGES and m != "bot" and not layer_package(m)]
    assert not loose, f"modules in no layer (add their package to LAYERS): {loose}"


def test_imports_follow_the_layer_order() -> None:
    wrong = against_order(project_graph())
    new = {edge: wheres for edge, wheres in wrong.items() if edge not in AGAINST_ORDER}
    assert not new, "imports against the layer order:\n" + "\n".join(
        f"{a} -> {b} ({' '.join(wheres)})" for (a, b), wheres in sorted(new.items())
    )
    undone = sorted(AGAINST_ORDER - wrong.keys())
    assert not undone, f"undone, so remove from AGAINST_ORDER: {undone}"


def test_the_layer_check_refuses_a_higher_row_a_same_row_and_storage_outside_the_root() -> None:
    graph: Graph = {
        "bot.core.domain": {"bot.trading.engine": ["core:1"]},
        "bot.market.store": {"bot.risk.rules": ["market:1"], "storage.candles": ["market:2"]},
        "bot.trading.engine": {"bot.core.domain": ["trading:1"], "bot.trading.dust": ["t:2"]},
        "bot.app.bootstrap": {"storage.candles": ["app:1"], "handlers.frontend": ["app:2"]},
        "tests.rig": {"bot.cli.main": ["tests:1"]},
    }
    assert sorted(against_order(graph)) == [
        ("bot.core.domain", "bot.trading.engine"),
        ("bot.market.store", "bot.risk.rules"),
        ("bot.market.store", "storage.candles"),
    ]


def test_shipped_code_imports_no_tests() -> None:
    graph = project_graph()
    wrong = [
        where
        for source, edges in graph.items()
        if top(source) in PACKAGES
        for target, wheres in edges.items()
        if top(target) == "tests"
        for where in wheres
    ]
    assert not wrong, f"shipped code imports tests: {wrong}"


def test_every_lazy_import_helper_is_known() -> None:
    """A function of the shipped code that imports a module named by its caller must be in
    STRING_IMPORTERS, or the strings its callers pass would escape the graph. (Tests may import
    the modules they are parametrized with.)"""
    importers = {"import_module", "__import__"}
    unknown = []
    for path in (p for package in PACKAGES for p in sources(package)):
        for node, function in _with_function(parsed(path)):
            if not isinstance(node, ast.Call) or function in STRING_IMPORTERS:
                continue
            by_variable = _name(node.func) in importers and not (
                node.args and isinstance(node.args[0], ast.Constant)
            )
            # to_thread(import_module, name)
            handed_on = any(_name(arg) in importers for arg in node.args)
            if by_variable or handed_on:
                unknown.append(f"{path.relative_to(ROOT)}:{node.lineno} in {function}")
    assert not unknown, f"imports a module named by a variable; add to STRING_IMPORTERS: {unknown}"


def _with_function(
    tree: ast.AST, function: str | None = None
) -> Iterator[tuple[ast.AST, str | None]]:
    for child in ast.iter_child_nodes(tree):
        yield child, function
        inner = (
            child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
        )
        yield from _with_function(child, inner)


def _name(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")


def directories_without_init(package: Path) -> list[str]:
    return sorted(
        str(directory.relative_to(package.parent))
        for directory in {path.parent for path in package.rglob("*.py")}
        if not (directory / "__init__.py").exists()
    )


@pytest.mark.parametrize("package", GRAPHED)
def test_every_package_directory_has_an_init(package: str) -> None:
    """setuptools' find skips a directory without __init__.py: the editable venv still imports it,
    the wheel and the Docker image ship without it."""
    missing = directories_without_init(ROOT / package)
    assert not missing, f"directories with .py files but no __init__.py: {missing}"


def test_a_directory_without_init_is_found(tmp_path: Path) -> None:
    for name in ("pkg/__init__.py", "pkg/sub/mod.py", "pkg/data/notes.txt", "pkg/ok/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert directories_without_init(tmp_path / "pkg") == ["pkg/sub"]


def test_the_replay_service_and_the_demo_load_no_ccxt() -> None:
    """bot.app.serve imports the exchange loop only when it runs: ccxt takes seconds to import."""
    code = (
        "import sys, bot.app.serve, bot.cli.demo;"
        " print(sorted(m for m in sys.modules if 'ccxt' in m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
