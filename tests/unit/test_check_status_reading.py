"""What stored strategy checks clear (bot/research/check_status.py, issue 18): a pass only at
its parameters and by the current check's code, a failure sticks at its parameters; and the
source scan's warning names what a strategy reads that it should not."""

from __future__ import annotations

from typing import Any

from bot.research.check_status import check_status
from bot.research.check_version import check_version
from bot.research.source_scan import risky_reads
from strategies import BUILT_INS, build_strategy
from tests.review_check_fixtures import HourlySeed
from tests.strategy_fixtures import CoinFlip

DAY_MS = 86_400_000
DEFAULTS = {"length": 10, "atr_stop": False}


def row(
    params: dict[str, Any], failed: str = "", version: str = "", day: int = 1
) -> dict[str, Any]:
    """A stored check as storage/strategy_checks.py reads it back."""
    checks = ("bad output", "determinism", "look-ahead", "warm-up", "cost")
    return {
        "params": params,
        "passed": not failed,
        "verdicts": [{"check": c, "passed": c != failed, "detail": ""} for c in checks],
        "check_version": version or check_version(),
        "created_ms": day * DAY_MS,
        "first_ms": 0,
        "last_ms": DAY_MS,
        "pair": "BTC/USDT",
        "timeframe": "1h",
    }


TUNED = {"length": 60, "atr_stop": False}


def test_a_pass_clears_only_its_parameters() -> None:
    rows = [row(DEFAULTS)]
    assert check_status(rows, None, DEFAULTS, DEFAULTS).state == "passed"
    tuned = check_status(rows, None, TUNED, DEFAULTS)
    assert tuned.state == "other params"
    assert tuned.text() == "not checked with these parameters (checked for defaults)"


def test_a_failure_sticks_through_a_later_pass_at_the_same_parameters() -> None:
    rows = [row(TUNED, failed="warm-up", day=1), row(TUNED, day=2), row(DEFAULTS, day=3)]
    status = check_status(rows, None, TUNED, DEFAULTS)
    assert status.state == "failed"
    assert status.text() == (
        "FAILED (warm-up, length=60) 1970-01-02: sticks until the source changes; "
        "passed for length=60"
    )
    assert check_status(rows, None, DEFAULTS, DEFAULTS).state == "passed"
    assert check_status(rows, None, None, DEFAULTS).state == "failed"  # the listing


def test_a_pass_by_an_older_check_is_stale() -> None:
    status = check_status([row(DEFAULTS, version="0" * 16)], None, DEFAULTS, DEFAULTS)
    assert status.state == "stale"
    assert status.text().endswith("by an older version of the check: run it again")


def test_the_source_scan_names_clock_and_randomness_and_nothing_in_the_built_ins() -> None:
    found = risky_reads(HourlySeed())
    assert any(item.startswith("import time (review_check_fixtures.py:") for item in found)
    found = risky_reads(CoinFlip())
    assert any(item.startswith("np.random (strategy_fixtures.py:") for item in found)
    assert all(risky_reads(build_strategy(name)) == [] for name in BUILT_INS)
