"""/drift's reply on a phone: one pair with its trades, several in a few lines each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.chat.drift_desk import DriftRow, DriftView, PairDrift
from bot.chat.venue import Venue
from bot.core.domain import Trade
from handlers.drift_commands import drift_text

T0 = datetime(2025, 6, 27, 5, tzinfo=UTC)
VENUE = Venue("live", "binance", "USDT")


def trade(pair: str, entry: float, exit_: float) -> Trade:
    pnl = (exit_ - entry) * 0.01
    return Trade(pair, T0, T0 + timedelta(hours=3), entry, exit_, 0.01, pnl, 0.0)


def pair_drift(pair: str, trades: int) -> PairDrift:
    rows = tuple(
        DriftRow(T0, trade(pair, 101.0, 99.0), trade(pair, 100.0, 100.0), None)
        for _ in range(trades)
    )
    return PairDrift(pair, T0, rows, -0.02, 0.0, -0.02, -0.0198, 0.01, T0, 0, False, None)


def test_one_pair_shows_its_trades_and_several_only_their_gaps() -> None:
    one = drift_text(DriftView("USDT", (pair_drift("BTC/USDT", 7),)), VENUE)
    assert "gap at the live size -0.02 (-1.98% of cost; threshold 1.00%)" in one
    assert "The last 5 of 7 trades, times UTC:" in one
    assert one.count(" live 101") == 5
    assert " slippage vs twin: in +1.00%, out +1.00%" in one
    several = drift_text(
        DriftView("USDT", tuple(pair_drift(f"C{i}/USDT", 7) for i in range(10))), VENUE
    )
    assert " live 101" not in several
    assert several.count("They part at the trade of 06-27 05:00.") == 10
    assert several.endswith("/drift PAIR shows a pair's trades.")
    assert len(several) < 4096  # one Telegram message
