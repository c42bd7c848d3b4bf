"""bench/ is a package: every bench runs as ``python -m bench.NAME`` from the repository root.

No path hacks (the package's imports resolve because the root is the cwd of ``-m``), no data
found from the cwd, importing a bench runs nothing, and every text that names a bench command
names it the way it runs.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys
import types
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
MODULES = sorted(path.stem for path in BENCH.glob("*.py") if path.stem != "__init__")
# vectorbt runs from its own venv (its numba clashes with pandas-ta's): absent here.
OWN_VENV = {"reference_vectorbt": "vectorbt"}
# Reaching for the import path or the cwd: what makes a script work only from one place.
PATH_HACKS = {"sys.path", "os.chdir", "os.getcwd", "Path.cwd", "site.addsitedir"}
# `python bench/NAME.py`, or a backticked `bench/NAME.py --option`: the old way to run one.
OLD_COMMAND = re.compile(r"python[\w.]*\s+(?:\./)?bench/\w+\.py|`bench/\w+\.py\s+-")
TEXTS = {".md", ".py", ".toml", ".sh", ".txt", ".yaml", ".yml", ".service", ".cfg"}
TEXT_NAMES = {"Makefile", "Dockerfile", "run"}
UNTRACKED = {
    ".git",
    ".venv",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".hypothesis",
    ".cache",
    "__pycache__",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_bench_is_a_package_of_modules() -> None:
    assert (BENCH / "__init__.py").is_file()
    assert {"backtest_speed", "tick_speed", "series", "paths"} <= set(MODULES)


@pytest.mark.parametrize("name", ["__init__", *MODULES])
def test_no_bench_module_touches_the_import_path_or_the_cwd(name: str) -> None:
    source = BENCH / f"{name}.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found = [
        f"{source.name}:{node.lineno} {dotted(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and dotted(node) in PATH_HACKS
    ]
    assert not found, f"run it as python -m bench.{name} instead: {found}"


@pytest.mark.parametrize("name", MODULES)
def test_importing_a_bench_runs_nothing(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, f"bench.{name}", raising=False)  # its top level runs again
    needs = OWN_VENV.get(name)
    stand_in = needs is not None and find_spec(needs) is None
    if stand_in:
        # Only its main() touches the library: a bare module stands in for the import.
        monkeypatch.setitem(sys.modules, needs, types.ModuleType(needs))
    # A bench that ran on import would parse this and exit.
    monkeypatch.setattr(sys, "argv", ["pytest", "--no-such-option"])
    try:
        module = importlib.import_module(f"bench.{name}")
    finally:
        if stand_in:
            sys.modules.pop(f"bench.{name}", None)
    assert capsys.readouterr() == ("", "")
    assert module.__name__ == f"bench.{name}"


@pytest.mark.parametrize(
    "name", [name for name in MODULES if "argparse" in (BENCH / f"{name}.py").read_text()]
)
def test_each_bench_cli_answers_help(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"bench.{name}")
    monkeypatch.setattr(sys, "argv", [f"{name}.py", "--help"])
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    assert " ".join(module.__doc__.splitlines()[0].split()) in " ".join(usage.split())


def test_the_smallest_bench_runs_end_to_end_as_a_module() -> None:
    """The backtesting.py reference, about 2 s (the benchmarks themselves run for minutes)."""
    sample = ROOT / "bot" / "sample_data" / "BTC_USDT-1h.csv.gz"
    done = subprocess.run(
        [sys.executable, "-m", "bench.reference_backtesting_py", str(sample), "1000000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["trades"] > 0
    assert result["final_equity"] > 0


def test_backtest_speed_finds_the_reference_engines_from_the_package() -> None:
    from bench.backtest_speed import BACKTESTING_PY, VECTORBT

    for script in (BACKTESTING_PY, VECTORBT):
        assert script.is_absolute()
        assert script.is_file()
        assert script.parent == BENCH


def texts() -> list[Path]:
    """The repository's text files (not the venv, caches or build metadata)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in UNTRACKED and not d.endswith(".egg-info")]
        found += [
            Path(folder, name) for name in files if Path(name).suffix in TEXTS or name in TEXT_NAMES
        ]
    return sorted(found)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def test_every_text_names_a_bench_command_as_a_module() -> None:
    stale = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in texts()
        if path != Path(__file__).resolve()
        for number, line in enumerate(lines(path), 1)
        if OLD_COMMAND.search(line)
    ]
    assert not stale, "say python -m bench.NAME:\n" + "\n".join(stale)
