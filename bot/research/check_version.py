"""Which version of the strategy check's own code made a stored result (issue 18): a hash of
the modules that decide a verdict. A pass stored by an older check (one that caught less) does
not clear a strategy for live trading; the check must run again."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

RESEARCH = Path(__file__).resolve().parent
MODULES = (
    "strategy_check.py",
    "signal_stability.py",
    "signal_output.py",
    "live_replay.py",
    "check_verdicts.py",
    "check_worker.py",
    "check_processes.py",
)


@cache
def check_version() -> str:
    """16 hex digits of the SHA-256 of those modules' text, in that order."""
    digest = hashlib.sha256()
    for name in MODULES:
        digest.update(name.encode())
        digest.update((RESEARCH / name).read_bytes())
    return digest.hexdigest()[:16]
