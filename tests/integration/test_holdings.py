"""/holdings: the user's own holdings recorded anew after a deposit or withdrawal of their own.
The live stack (ccxt, SQLite) on the fake exchange, and the chat command on the Bot API
emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from bot.core.errors import ExchangeUnavailable
from bot.portfolio.outside import OUTSIDE_KEY
from storage.alerts import SqliteAlertRepository
from storage.db import open_database
from storage.state import SqliteStateRepository
from tests.integration.test_position_lifecycle import lose_the_next_answer
from tests.rigs.chat_rig import ADMIN, VIEWER, chat_stack
from tests.rigs.live_rig import HOUR, PAIR, funded_fake, hourly, live_stack

START = datetime(2025, 6, 27, 4, 30, tzinfo=UTC)
ENTRY_TICK = datetime(2025, 6, 27, 5, 0, 5, tzinfo=UTC)


async def drift_alerts(tmp_path: Path) -> list[str]:
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        alerts = await SqliteAlertRepository(db).pending(10_000)
    return [a.text for a in alerts if a.kind == "reconciliation_drift"]


async def test_the_users_own_deposit_is_drift_until_accepted_as_theirs(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START, {"stop_loss": 0.05}) as (trading, market, _):
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)  # a position is held
    fake.balances["USDT"] += 500.0  # the user pays in money of their own
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR) as (trading, _, _):
        assert "USDT" in (await drift_alerts(tmp_path))[-1]  # drift, on every start so far
        before = {line.asset: line for line in await trading.control.holdings()}
        assert before["USDT"].gap == pytest.approx(500.0)
        assert before["BTC"].gap == 0.0
        held = trading.engine.portfolio.position(PAIR).amount
        accepted = {line.asset: line for line in await trading.control.accept_holdings()}
        assert accepted["USDT"].own == pytest.approx(500.0)
        assert accepted["USDT"].gap == 0.0
        assert accepted["BTC"].books == pytest.approx(held)  # pairpilot's coins stay its own
        assert accepted["BTC"].own == 0.0
    seen = len(await drift_alerts(tmp_path))
    fake.balances["USDT"] -= 200.0  # and takes some of their own out again
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR) as (trading, _, _):
        assert len(await drift_alerts(tmp_path)) == seen + 1  # the withdrawal, said once
        accepted = {line.asset: line for line in await trading.control.accept_holdings()}
        assert accepted["USDT"].own == pytest.approx(300.0)
    async with live_stack(tmp_path, fake, ENTRY_TICK + HOUR):
        assert len(await drift_alerts(tmp_path)) == seen + 1  # no drift once accepted


async def test_holdings_are_not_accepted_while_an_orders_outcome_is_unknown(
    tmp_path: Path, btc_candles: pd.DataFrame
) -> None:
    fake = funded_fake(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        lose_the_next_answer(fake, lookups=9)  # the entry: placed, its answer lost
        await hourly(trading, market, ENTRY_TICK, ENTRY_TICK + HOUR)
        assert trading.engine.portfolio.position(PAIR) is None  # bought, not known yet
        with pytest.raises(ExchangeUnavailable):
            await trading.control.accept_holdings()
        async with open_database(tmp_path / "pairpilot.sqlite") as db:
            own = await SqliteStateRepository(db).get(OUTSIDE_KEY)
        assert own.get("BTC", 0.0) == 0.0  # pairpilot's coins were not called the user's


async def test_holdings_accept_is_an_admins_and_runs_only_after_a_confirm(
    tmp_path: Path,
) -> None:
    async with chat_stack(tmp_path) as chat:
        shown = await chat.ask(VIEWER, "/holdings")
        assert shown.startswith("Holdings: books + your own = exchange")
        assert "USDT: books" in shown
        assert "needs the admin role" in await chat.ask(VIEWER, "/holdings accept")
        refused = await chat.ask(ADMIN, "/holdings everything")
        assert "nothing: usage: /holdings [accept]" in refused
        question = await chat.sent_back(ADMIN, "/holdings accept")
        assert "/holdings accept: nothing: your own holdings stay as they are" in question.text
        before = len(chat.emulator.to(ADMIN))
        button = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        chat.emulator.press(ADMIN, question, button)
        result = await chat.emulator.reply(ADMIN, after=before)
        assert result.text.startswith("Your own holdings were set to what the exchange holds")
