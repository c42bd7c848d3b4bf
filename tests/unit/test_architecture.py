"""The dependency rules of DESIGN.md, checked on the source with ast."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "strategies", "storage")


def sources(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
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
    assert extra <= {"bot.domain"}, f"{path.name} imports {extra}"


@pytest.mark.parametrize("path", list(sources("storage")), ids=lambda p: p.name)
def test_storage_imports_no_bot_logic(path: Path) -> None:
    ours = {name for name in imported_modules(path) if top(name) in {"bot", "handlers"}}
    assert ours <= {"bot.domain"}, f"{path.name} imports {ours}"


@pytest.mark.parametrize("path", list(sources("bot")), ids=lambda p: str(p.relative_to(ROOT)))
def test_bot_reaches_telegram_and_ccxt_only_through_its_adapters(path: Path) -> None:
    tops = {top(name) for name in imported_modules(path)}
    if path.name != "cli.py":  # the entry point plugs the Telegram front end in
        assert "handlers" not in tops
    assert "telegram" not in tops
    if path.parent.name != "exchange":
        assert "ccxt" not in tops
    if path.name not in {"app.py"}:
        assert "aiosqlite" not in tops


@pytest.mark.parametrize(
    "path",
    [p for package in PACKAGES for p in sources(package) if p.name != "clock.py"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_nothing_but_the_clock_reads_the_time(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            call = f"{node.value.id}.{node.attr}"
            assert call not in {"datetime.now", "datetime.utcnow", "date.today", "time.time"}, (
                f"{path.name}:{node.lineno} reads the time; take a Clock instead"
            )
