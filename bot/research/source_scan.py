"""What a strategy's source reads that may make it decide otherwise live than in its backtest
(issue 18): the clock, randomness, the environment, files, its own call stack. A static scan of
the modules of the strategy's class and its bases (strategies/base.py excepted): it names what
it finds for a warning line; the determinism check is the verdict, this only points at causes
it may miss (a clock read that changes nothing within the check's runs)."""

from __future__ import annotations

import ast
import inspect
import sys
from types import ModuleType

from strategies.base import Strategy

MODULES = {"time", "random", "inspect", "secrets", "uuid"}  # importing them is a finding
CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("os", "environ"),
    ("os", "getenv"),
    ("sys", "_getframe"),
    ("np", "random"),
    ("numpy", "random"),
    ("pd", "Timestamp.now"),
}
NAMES = {"open", "getenv"}


def risky_reads(strategy: Strategy) -> list[str]:
    """Each finding as "what (file:line)", in source order, none twice."""
    found: list[str] = []
    for module in _modules(type(strategy)):
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        path = getattr(module, "__file__", None) or module.__name__
        for node in ast.walk(ast.parse(source)):
            what = _finding(node)
            if what:
                found.append(f"{what} ({path.rsplit('/', 1)[-1]}:{getattr(node, 'lineno', 0)})")
    return list(dict.fromkeys(found))


def _modules(kind: type) -> list[ModuleType]:
    names = [cls.__module__ for cls in kind.__mro__]
    skipped = {"builtins", "abc", "strategies.base"}
    wanted = dict.fromkeys(name for name in names if name not in skipped)
    return [sys.modules[name] for name in wanted if name in sys.modules]


def _finding(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        hits = [alias.name for alias in node.names if alias.name.split(".")[0] in MODULES]
        return f"import {', '.join(hits)}" if hits else None
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in MODULES:
        return f"from {node.module} import"
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        if dotted and any(dotted.endswith(f"{owner}.{name}") for owner, name in CALLS):
            return dotted
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in NAMES:
        return f"{node.func.id}()"
    return None


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))
