"""The user's own holdings beside the books (bot/portfolio/outside.py) on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.clock import FakeClock
from bot.portfolio.outside import OutsideHoldings
from storage.db import Database
from storage.state import SqliteStateRepository

NOW = datetime(2025, 7, 1, tzinfo=UTC)


async def test_a_doubted_figure_is_alerted_once_until_it_is_recorded_again(db: Database) -> None:
    """A figure that no longer adds up is alerted once, not at every fee; once recorded again
    (/holdings accept, or measured again), a new doubt is alerted again."""
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    await outside.accept({"USDT": 500.0, "BNB": 0.4}, {"USDT": 600.0, "BNB": 0.4})
    assert await outside.doubt("BNB") is True
    assert await outside.doubt("BNB") is False  # the same doubt, a later fee
    assert await outside.get() == {"USDT": 100.0, "BNB": 0.0}  # the figures are kept
    await outside.accept({"USDT": 500.0, "BNB": 0.4}, {"USDT": 600.0, "BNB": 0.45})
    assert await outside.get() == {"USDT": 100.0, "BNB": 0.05}
    assert await outside.doubt("BNB") is True  # recorded again: a new doubt is news
    await outside.remeasure("BNB", 0.4, 0.47)
    assert await outside.get() == {"USDT": 100.0, "BNB": 0.07}
    assert await outside.doubt("BNB") is True


async def test_accept_records_again_an_asset_the_books_no_longer_trade(db: Database) -> None:
    """The doubt alert says "record it with /holdings accept"; once BNB/USDT is stopped and
    flat, BNB is no longer in the books /holdings accept passes: its figure is recorded
    again all the same (pairpilot holds none of it) and its doubt cleared. (It was kept,
    and the doubt stayed silent for good.)"""
    outside = OutsideHoldings(SqliteStateRepository(db), FakeClock(NOW))
    await outside.accept({"USDT": 500.0, "BNB": 0.4}, {"USDT": 600.0, "BNB": 0.4})
    assert await outside.doubt("BNB") is True
    await outside.accept({"USDT": 500.0}, {"USDT": 600.0, "BNB": 0.3})  # BNB/USDT stopped
    assert await outside.get() == {"USDT": 100.0, "BNB": 0.3}
    assert await outside.doubt("BNB") is True  # recorded again: a new doubt is news
