"""Run the strategy check's jobs (bot/research/check_worker.py) in two fresh processes at once.

Two processes use this machine's two cores, and each is a second opinion on determinism: its
own hash seed (``PYTHONHASHSEED`` 1 and 2: a set of strings iterates in another order) and, for
the second, a clock ``CLOCK_SHIFT`` seconds ahead (a strategy seeding randomness from the hour
or the day decides otherwise there). Each loads the strategies as the service does (the
registry's recipe), so a user strategy from the folder or an entry point runs there too.

A strategy object that cannot be pickled (a class made inside a function, state that does not
pickle) cannot run in another process, nor in the service's (which builds it by name): its
jobs then run in this process, one after the other, and the verdict says so.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from bot.research.check_worker import Findings, Job, examine
from strategies.registry import StrategyRegistry

HASH_SEEDS = (1, 2)
CLOCK_SHIFT = 25 * 3600 + 7 * 60  # a day, an hour and 7 minutes
TIMEOUT = 600.0

Recipe = Callable[[], StrategyRegistry] | None


def run_jobs(jobs: Sequence[Job], recipe: Recipe) -> list[Findings]:
    """Each of ``jobs`` (two at most) in a fresh process; in this one when they cannot go."""
    try:
        payloads = [pickle.dumps(job) for job in jobs]
        header = [
            pickle.dumps((sys.path, recipe, CLOCK_SHIFT * index, _place(index)))
            for index in range(len(jobs))
        ]
    except (pickle.PicklingError, AttributeError, TypeError):
        return [examine(job) for job in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(_in_process, range(len(jobs)), header, payloads))


def _place(index: int) -> str:
    shift = f", clock +{CLOCK_SHIFT * index / 3600:.1f} h" if index else ""
    return f"another process (hash seed {HASH_SEEDS[index]}{shift})"


def _in_process(index: int, header: bytes, payload: bytes) -> Findings:
    paths = [path for path in sys.path if path and os.path.isdir(path)]
    env = {
        **os.environ,
        "PYTHONHASHSEED": str(HASH_SEEDS[index]),
        "PYTHONPATH": os.pathsep.join(paths),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot.research.check_worker"],
        input=header + payload,
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
        return Findings(None, None, None, None, None, _place(index), crashed=lines[-1])
    findings: Findings = pickle.loads(done.stdout)  # noqa: S301  (our own child's answer)
    return findings
