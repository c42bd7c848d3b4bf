"""Run the strategy check's jobs (bot/research/check_worker.py) in two fresh processes at once.

Two processes use this machine's two cores, and each is a second opinion on determinism: its
own hash seed (``PYTHONHASHSEED`` 1 and 2: a set of strings iterates in another order) and its
own clock ahead (``CLOCK_SHIFTS``: a strategy seeding randomness from the hour or the day, or
deciding by the hour's parity, the hour of the day or the minute of the hour, decides otherwise
in one of them, whatever minute the check starts at; the day's parity slips only in the last 7
minutes of a UTC day). Each loads the strategies as the service does (the
registry's recipe), so a user strategy from the folder or an entry point runs there too.

``Workers`` starts the processes before their jobs are known: each imports pandas, pandas-ta
and the strategies and runs the recipe (about a second of CPU) while the check computes the
whole history its jobs are planned from; the job itself, and with it the strategy object,
reaches a process only then. A check that needs no job (bad output or no determinism in the
check's own runs) ends them unused.

A strategy object that cannot be pickled (a class made inside a function, state that does not
pickle) cannot run in another process, nor in the service's (which builds it by name): no
process is started, its jobs run in this process one after the other, and the verdict says so.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

from bot.research.check_worker import Findings, Job, examine
from strategies.base import Strategy
from strategies.registry import StrategyRegistry

HASH_SEEDS = (1, 2)
# a day and 7 minutes; a day and an hour: an odd number of hours exactly, so the hour's parity
# always differs (25 h 7 min alone kept it when the check started in an hour's last 7 minutes)
CLOCK_SHIFTS = (24 * 3600 + 7 * 60, 25 * 3600)
TIMEOUT = 600.0

Recipe = Callable[[], StrategyRegistry] | None
_UNPICKLABLE = (pickle.PicklingError, AttributeError, TypeError)


class Workers:
    """The two processes, started on entering (module doc); ``run`` hands them their jobs.
    Leaving the ``with`` block ends a process still running (a job never handed)."""

    def __init__(self, strategy: Strategy, recipe: Recipe) -> None:
        self._strategy = strategy
        self._recipe = recipe
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        try:
            pickle.dumps(self._strategy)
            headers = [
                pickle.dumps((sys.path, self._recipe, CLOCK_SHIFTS[index], _place(index)))
                for index in range(len(HASH_SEEDS))
            ]
        except _UNPICKLABLE:
            return self  # no process: the jobs run here
        self._processes = [_start(index, header) for index, header in enumerate(headers)]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for process in self._processes:
            if process.returncode is None:  # never handed its job (or not yet done with it)
                process.kill()
                process.communicate()  # reaps it and closes its pipes

    def run(self, jobs: Sequence[Job]) -> list[Findings]:
        """Each of ``jobs`` (one per process) in its process; in this one when they cannot go."""
        try:
            payloads = [pickle.dumps(job) for job in jobs]
        except _UNPICKLABLE:
            payloads = []
        if not self._processes or not payloads:
            return [examine(job) for job in jobs]
        if len(jobs) != len(self._processes):
            raise ValueError(f"{len(jobs)} jobs for {len(self._processes)} processes")
        with ThreadPoolExecutor(len(jobs)) as pool:
            return list(pool.map(_finished, range(len(jobs)), self._processes, payloads))


def _place(index: int) -> str:
    hours, minutes = divmod(CLOCK_SHIFTS[index] // 60, 60)
    return f"another process (hash seed {HASH_SEEDS[index]}, clock +{hours} h {minutes:02d} min)"


def _start(index: int, header: bytes) -> subprocess.Popen[bytes]:
    """A worker process, given its header (module path, recipe, clock): it imports and loads
    the strategies, then waits for its job on stdin."""
    paths = [path for path in sys.path if path and os.path.isdir(path)]
    env = {
        **os.environ,
        "PYTHONHASHSEED": str(HASH_SEEDS[index]),
        "PYTHONPATH": os.pathsep.join(paths),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.research.check_worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(header)
        process.stdin.flush()
    except BrokenPipeError:  # it died at once: its exit status and stderr say why, in _finished
        pass
    return process


def _finished(index: int, process: subprocess.Popen[bytes], payload: bytes) -> Findings:
    try:
        out, err = process.communicate(payload, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines() or ["(no output)"]
        return Findings(None, None, None, None, None, _place(index), crashed=lines[-1])
    findings: Findings = pickle.loads(out)  # noqa: S301  (our own child's answer)
    return findings
