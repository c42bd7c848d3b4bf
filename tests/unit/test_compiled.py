"""bot.core.compiled: numba's on-disk cache keyed on the compile options too. numba keys a
cached copy on the function's bytecode and its file's timestamp only: a change to the options
in compiled.py (nogil, which lets a worker thread's kernel run leave the loop serving) would
otherwise be served the copies compiled under the old ones, beside kernel.py untouched."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.core import compiled

SOURCE = """
from bot.core.compiled import compiled


@compiled
def doubled(x: float) -> float:
    return 2.0 * x
"""
_loads = itertools.count()


def _load(folder: Path) -> Any:
    """The module in ``folder`` imported afresh: a new dispatcher, reading numba's cache."""
    spec = importlib.util.spec_from_file_location(f"compiled_probe_{next(_loads)}", folder / "m.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.doubled


def _hits(function: Any) -> int:
    assert function(2.0) == 4.0
    return sum(function.stats.cache_hits.values())


def test_a_cached_copy_is_not_served_under_other_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "m.py").write_text(SOURCE)
    assert _hits(_load(tmp_path)) == 0  # compiled and written to the cache
    assert _hits(_load(tmp_path)) == 1  # the cache serves the same options
    monkeypatch.setitem(compiled.OPTIONS, "nogil", not compiled.OPTIONS["nogil"])
    assert _hits(_load(tmp_path)) == 0  # the source unchanged, the options not: compiled anew
    monkeypatch.undo()
    assert _hits(_load(tmp_path)) == 1
