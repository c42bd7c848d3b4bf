"""Chat's /backtest and /sweep simulate the account the bot trades, as `pairpilot backtest
--config` does: its fee, slippage, timezone (the daily loss limit's days), risk limits and
stop handling (review F1, F2)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.app.bootstrap import paper_account
from bot.app.config import Settings
from bot.app.startup import load_replay
from bot.market.history import ReplayHistory
from bot.research.account_terms import RESTING, account_terms, research_terms
from bot.research.backtest import run_backtest, setup_for
from bot.research.report import metric_rows
from bot.research.sweep import SweepSpec
from bot.research.sweep_tasks import evaluate, segments
from storage.sweeps import SqliteSweepRepository
from strategies import build_strategy
from tests.rigs.builders import replay_settings
from tests.rigs.chat_rig import ADMIN, TRADER, chat_stack

DAYS = 7


def new_york_account(tmp_path: Path) -> Settings:
    """The bundled replay, on an account with its own costs, days and a tight daily limit."""
    base = replay_settings(tmp_path).model_dump()
    return Settings.model_validate(
        {
            **base,
            "timezone": "America/New_York",
            "paper": {"balance": 5000.0, "fee": 0.002, "slippage": 0.001},
            "risk": {**base["risk"], "daily_loss_limit": 0.002, "max_drawdown": 0.0},
        }
    )


async def test_chat_backtest_and_sweep_simulate_the_configured_account(tmp_path: Path) -> None:
    config = new_york_account(tmp_path)
    async with chat_stack(tmp_path, config) as chat:
        for _ in range(DAYS * 24):
            await chat.trading.driver.step()
        history = ReplayHistory(load_replay(config).source)
        candles = await history.candles("BTC/USDT", "1h", DAYS, chat.trading.clock.now())
        assert len(candles) == DAYS * 24
        terms = research_terms(config, "BTC/USDT", limits=chat.trading.engine.guard.limits)
        account = (terms.balance, terms.fee_rate, terms.slippage, terms.timezone)
        assert account == (5000.0, 0.002, 0.001, "America/New_York")
        assert not terms.resting_stops
        strategy = build_strategy("ema_cross", {"fast": 5, "slow": 20})
        expected = run_backtest(candles, strategy, setup_for("BTC/USDT", "1h", terms))
        cheaper = replace(terms, fee_rate=0.001, slippage=0.0)
        default = run_backtest(candles, strategy, setup_for("BTC/USDT", "1h", cheaper))
        returns = [dict(metric_rows(r))["total return"] for r in (expected, default)]
        assert returns[0] != returns[1]  # the account's costs change the result

        before = len(chat.emulator.to(TRADER))
        chat.emulator.say(TRADER, f"/backtest BTC/USDT ema_cross 1h {DAYS} fast=5 slow=20")
        await chat.emulator.reply(TRADER, after=before)  # the progress message
        photo = await chat.emulator.reply(TRADER, after=before + 1, within=120)
        assert photo.photo is not None
        assert "days in America/New_York" in photo.text
        assert "stops checked per candle" in photo.text
        assert f"total return: {returns[0]}" in photo.text

        before = len(chat.emulator.to(ADMIN))
        chat.emulator.say(ADMIN, f"/sweep BTC/USDT ema_cross 1h {DAYS} fast=5 slow=20")
        await chat.emulator.reply(ADMIN, after=before)
        await chat.emulator.reply(ADMIN, after=before + 1, within=120)
        (row,) = await SqliteSweepRepository(chat.db).rows(1)
        spec = SweepSpec("ema_cross", {"fast": [5], "slow": [20]}, terms={"k": terms})
        (reference,) = evaluate(
            {"k|1h": segments(candles, 0)}, "k|1h", spec, [{"fast": 5, "slow": 20}]
        )
        assert row.metrics["total_return"] == reference.metrics["total_return"]
        assert row.metrics["total_return"] == expected.metrics.total_return


def test_an_account_on_a_venue_that_holds_stops_is_simulated_with_resting_stops(
    tmp_path: Path,
) -> None:
    """Binance rests stop orders, Coinbase does not (bot/exchange/venues.py): live, or paper on
    the venue's market, the account (the paper one too) and its backtests rest stops as the
    venue does; a replay stands for no venue and checks them per candle."""

    def settings(mode: str, exchange: str, source: str = "exchange") -> Settings:
        replay = replay_settings(tmp_path).market_data.model_dump() if source == "replay" else {}
        return Settings.model_validate(
            {
                "data_dir": tmp_path,
                "mode": mode,
                "exchange": {"name": exchange},
                "market_data": replay,
            }
        )

    assert research_terms(settings("live", "binance"), None).stops == RESTING
    assert account_terms(settings("paper", "binance")).resting_stops
    assert paper_account(settings("paper", "binance")).rests_stops
    assert not account_terms(settings("live", "coinbase")).resting_stops
    assert not paper_account(settings("paper", "coinbase")).rests_stops
    assert not account_terms(settings("paper", "binance", "replay")).resting_stops
    assert not paper_account(settings("paper", "binance", "replay")).rests_stops


def test_a_live_accounts_backtest_pays_its_venues_fee_not_the_paper_accounts(
    tmp_path: Path,
) -> None:
    """Live, the engine pays the venue's taker fee (its markets'), so `backtest --config` of a
    live account must too: a live Kraken account backtested at the paper 0.10% looks better
    than it trades at Kraken's 0.26% (review F1 of the final #19 review)."""

    def settings(mode: str, exchange: str) -> Settings:
        return Settings.model_validate(
            {
                "data_dir": tmp_path,
                "mode": mode,
                "exchange": {"name": exchange},
                "paper": {"fee": 0.001},
            }
        )

    assert account_terms(settings("live", "kraken")).fee_rate == 0.0026
    assert account_terms(settings("live", "coinbase")).fee_rate == 0.012
    assert account_terms(settings("paper", "kraken")).fee_rate == 0.001  # the paper account's
