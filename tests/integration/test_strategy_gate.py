"""The live gate (issue 18): in live mode a strategy trades only when its check passed at its
current source hash. The real live stack (ccxt on the fake exchange, SQLite) with user strategies
loaded from a folder: start-up holds the runs refused and trades the rest, /startpair refuses
before anything is stored, a held run's position stays until /stoppair closes it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from bot.core.domain import from_ms
from bot.core.errors import UserInputError
from storage.db import open_database
from storage.pair_runs import SqlitePairRunRepository
from tests.rigs.checked import CHECKED_MS, record_check
from tests.rigs.gated import (
    START,
    counted,
    edited,
    fake_with_pairs,
    held,
    persisted_runs,
    user_strategies,
)
from tests.rigs.live_rig import HOUR, PAIR, funded_fake, live_stack


@pytest.fixture
def user_folder(tmp_path: Path) -> Iterator[Path]:
    with user_strategies(tmp_path / "user_strategies") as folder:
        yield folder


async def test_live_start_up_holds_unchecked_and_changed_strategies_and_trades_the_rest(
    tmp_path: Path, user_folder: Path, btc_candles: pd.DataFrame
) -> None:
    await persisted_runs(
        tmp_path, {"ETH/USDT": "mine", "SOL/USDT": "edited", "XRP/USDT": "checked"}
    )
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await record_check(db, "edited", "SOL/USDT")
        await record_check(db, "checked", "XRP/USDT")
    edited(user_folder, "edited", "edited after its check")  # then started again
    fake = fake_with_pairs(btc_candles)
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        service = trading.service
        assert held(service) == {
            "ETH/USDT": "mine may not trade real money: not checked; run "
            "`pairpilot strategy check mine --pair ETH/USDT --timeframe 1h`",
            "SOL/USDT": "edited may not trade real money: changed since its check (source "
            "edited); run `pairpilot strategy check edited --pair SOL/USDT --timeframe 1h`",
        }
        asked = {run.pair: counted(service, run) for run in service.runs()}
        moment = START.replace(minute=0, second=5) + HOUR
        for _ in range(3):
            market.at(moment)
            await service.tick("1h")
            moment += HOUR
        # the checked user strategy and the configured built-in (its check recorded by the
        # rig) trade; the held pairs are ticked (their stops checked) but never asked
        assert set(service.last_ticks) == {"BTC/USDT", "XRP/USDT", "ETH/USDT", "SOL/USDT"}
        assert {pair: len(calls) > 0 for pair, calls in asked.items()} == {
            "BTC/USDT": True,
            "XRP/USDT": True,
            "ETH/USDT": False,
            "SOL/USDT": False,
        }
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        rows = await db.fetch_all("SELECT kind, text FROM alerts WHERE kind = 'strategy_gate'")
    assert len(rows) == 1
    text = rows[0]["text"]
    assert text.startswith(
        "Held: their strategies are not asked, no new trades (their stops are still checked):"
    )
    assert "ETH/USDT (mine): mine may not trade real money: not checked" in text
    assert "SOL/USDT (edited): edited may not trade real money: changed since its check" in text
    assert text.endswith(
        "Run the check, then /allow STRATEGY starts it; without a passed check, an admin's "
        "/allow lets it trade unchecked."
    )


async def test_startpair_in_live_mode_refuses_what_has_not_passed_and_stores_nothing(
    tmp_path: Path, user_folder: Path, btc_candles: pd.DataFrame
) -> None:
    fake = fake_with_pairs(btc_candles)
    async with (
        live_stack(tmp_path, fake, START) as (trading, _, _),
        open_database(tmp_path / "pairpilot.sqlite") as db,
    ):
        control = trading.control
        with pytest.raises(UserInputError) as unchecked:
            await control.start_pair("ETH/USDT", "mine", "1h", {}, 0.2)
        assert str(unchecked.value) == (
            "mine may not trade real money: not checked; run "
            "`pairpilot strategy check mine --pair ETH/USDT --timeframe 1h`"
        )
        await record_check(db, "mine", "ETH/USDT", failed=["look-ahead"])
        with pytest.raises(UserInputError) as failed:
            await control.start_pair("ETH/USDT", "mine", "1h", {}, 0.2)
        day = f"{from_ms(CHECKED_MS):%Y-%m-%d}"
        assert str(failed.value) == (
            f"mine may not trade real money: its check FAILED (look-ahead) on {day}, which "
            "sticks until the source changes; `pairpilot strategy check mine` shows why"
        )
        with pytest.raises(UserInputError, match="^rsi may not trade real money: not checked"):
            await control.start_pair("SOL/USDT", "rsi", "1h", {}, 0.2)  # no built-in privilege
        assert [run.pair for run in trading.service.runs()] == [PAIR]
        assert [run.pair for run in await SqlitePairRunRepository(db).active()] == [PAIR]
        await record_check(db, "checked", "XRP/USDT")
        run = await control.start_pair("XRP/USDT", "checked", "1h", {}, 0.2)
        assert run.strategy == "checked"
        assert run.id not in trading.service.held


async def test_a_pass_clears_only_the_parameters_it_was_checked_with(
    tmp_path: Path, user_folder: Path, btc_candles: pd.DataFrame
) -> None:
    """A check's warm-up and look-ahead verdicts hold for its parameters: a run with other ones
    is refused, naming the command with its --param words; a failure at them sticks."""
    fake = fake_with_pairs(btc_candles)
    async with (
        live_stack(tmp_path, fake, START) as (trading, _, _),
        open_database(tmp_path / "pairpilot.sqlite") as db,
    ):
        control = trading.control
        await record_check(db, "checked", "XRP/USDT")  # at the defaults
        with pytest.raises(UserInputError) as tuned:
            await control.start_pair("XRP/USDT", "checked", "1h", {"fast": 9}, 0.2)
        assert str(tuned.value) == (
            "checked may not trade real money: not checked with these parameters; run "
            "`pairpilot strategy check checked --pair XRP/USDT --timeframe 1h --param fast=9`"
        )
        await record_check(db, "checked", "XRP/USDT", params={"fast": 9}, failed=["warm-up"])
        await record_check(db, "checked", "ETH/USDT", params={"fast": 9})  # other data
        with pytest.raises(UserInputError, match="FAILED \\(warm-up\\) .* sticks until"):
            await control.start_pair("XRP/USDT", "checked", "1h", {"fast": 9}, 0.2)
        run = await control.start_pair("XRP/USDT", "checked", "1h", {}, 0.2)
        assert run.id not in trading.service.held


async def test_a_held_run_keeps_its_position_and_stop_until_stoppair_closes_it(
    tmp_path: Path, user_folder: Path, btc_candles: pd.DataFrame
) -> None:
    await persisted_runs(tmp_path, {PAIR: "mine"})
    async with open_database(tmp_path / "pairpilot.sqlite") as db:
        await record_check(db, "mine")
    fake = funded_fake(btc_candles)
    moment = START.replace(minute=0, second=5) + HOUR
    async with live_stack(tmp_path, fake, START) as (trading, market, _):
        while trading.engine.portfolio.position(PAIR) is None:
            assert moment < datetime(2025, 7, 10, tzinfo=UTC), "mine never entered"
            market.at(moment)
            await trading.service.tick("1h")
            moment += HOUR
    edited(user_folder, "mine", "edited while it holds a position")  # then started again
    orders = {key: order.status for key, order in fake.orders.items()}
    posts, coins = fake.order_posts, fake.balances["BTC"]
    async with live_stack(tmp_path, fake, moment) as (trading, market, _):
        assert "changed since its check" in held(trading.service)[PAIR]
        position = trading.engine.portfolio.position(PAIR)
        assert position is not None
        assert position.amount == pytest.approx(coins)
        for _ in range(48):
            moment += HOUR
            market.at(moment)
            await trading.service.tick("1h")
        assert fake.order_posts == posts  # nothing placed, nothing cancelled: held as it was
        assert {key: order.status for key, order in fake.orders.items()} == orders
        assert fake.balances["BTC"] == coins
        stopped = await trading.control.stop(PAIR)  # /stoppair still closes it
        assert stopped.state.value == "stopped"
        assert trading.engine.portfolio.position(PAIR) is None
        assert fake.balances["BTC"] == pytest.approx(0.0, abs=1e-6)
        assert not trading.service.held
