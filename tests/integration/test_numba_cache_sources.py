"""numba's on-disk cache against a change to a rule a compiled function takes in from another
file (bot/core/compiled.py's ``sources``). numba alone keys a cached copy on its own file: a
kernel cached by `make setup` (scripts/warm-numba.sh) kept the rules of bot/risk/fills.py it
was compiled with after that file changed (a `git pull`), so backtests ran the old rule while
their receipts fingerprinted the new file (found by the session-22 review; it failed before).

A small compiled caller (kernel_trades.entry_coins, which takes in fills.capped) stands for the
kernel: the same cache, a few seconds of compiling instead of a minute."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import numpy as np
from bot.research.kernel_inputs import PARAMETERS, VOLUME_SHARE
from bot.research.kernel_trades import entry_coins
p = np.zeros(PARAMETERS)
p[VOLUME_SHARE] = 0.1
print(repr(entry_coins(1e9, 100.0, 0.0, 50.0, p)))  # capped at a tenth of 50 coins
"""


def coins(tree: Path, cache: Path) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(done.stdout.strip().splitlines()[-1])


def test_a_changed_rule_reaches_a_caller_already_in_numbas_cache(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc")
    for package in ("bot", "strategies", "storage"):
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    cache = tmp_path / "cache"
    assert coins(tree, cache) == 5.0  # compiled into the cache, as make setup does
    assert coins(tree, cache) == 5.0  # served from it
    fills = tree / "bot" / "risk" / "fills.py"
    rule = "    return min(wanted, volume * share) if share > 0.0 else wanted\n"
    assert fills.read_text().count(rule) == 1
    fills.write_text(fills.read_text().replace(rule, rule.replace("* share", "* share / 2")))
    assert coins(tree, cache) == 2.5, "the cached caller still caps with the old rule"
