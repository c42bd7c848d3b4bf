"""Backtest edge cases on small synthetic candles, where real data rarely shows them plainly
(issue 19 items 3-7, 10; issue 15 item 11). The parity suite holds the same rules to the
live engine on real windows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from bot.app.config import load_settings
from bot.core.domain import RiskLimits, from_ms
from bot.market.candle_files import read_candle_file
from bot.research.account_terms import PER_CANDLE, RESTING, Overrides, research_terms
from bot.research.backtest import BacktestResult, BacktestSetup, run_backtest, setup_for
from bot.research.report import metric_rows
from strategies import build_strategy
from strategies.base import ENTER, EXIT, HOLD, Strategy
from tests.integration.test_cli import SAMPLE, pairpilot

HOUR_MS = 3_600_000
DAY0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC
OPEN_LIMITS = RiskLimits(max_position_fraction=1.0, daily_loss_limit=0.0, max_drawdown=0.0)


class Scripted(Strategy):
    """Signals read from a script: {candle index: ENTER or EXIT}."""

    name = "scripted"
    description = "test signals"
    param_specs = ()
    script: ClassVar[dict[int, int]] = {}

    @property
    def warmup(self) -> int:
        return 1

    def compute_signals(self, candles: pd.DataFrame) -> pd.Series:
        codes = np.full(len(candles), HOLD, dtype=np.int8)
        for index, code in self.script.items():
            codes[index] = code
        return pd.Series(codes, index=candles.index)


def scripted(script: dict[int, int], **exits: float) -> Strategy:
    return type("Script", (Scripted,), {"script": script})(exits)


def candles(
    closes: list[float], *, step_ms: int = HOUR_MS, skip: tuple[int, ...] = ()
) -> pd.DataFrame:
    """Flat candles opening at the previous close; ``skip``: candle slots left out (gaps)."""
    slots = [k for k in range(len(closes) + len(skip)) if k not in skip]
    opens = [closes[0], *closes[:-1]]
    return pd.DataFrame(
        {
            "timestamp": [DAY0 + slot * step_ms for slot in slots[: len(closes)]],
            "open": opens,
            "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
            "low": [min(o, c) for o, c in zip(opens, closes, strict=True)],
            "close": closes,
            "volume": 1.0,
        }
    )


def backtest(
    frame: pd.DataFrame,
    strategy: Strategy,
    limits: RiskLimits = OPEN_LIMITS,
    timeframe: str = "1h",
    slippage: float = 0.0,
) -> BacktestResult:
    setup = BacktestSetup(
        pair="T/USDT", timeframe=timeframe, fee_rate=0.001, slippage=slippage, limits=limits
    )
    return run_backtest(frame, strategy, setup)


def test_a_cooldown_lasts_a_span_of_time_so_a_gap_passes_it() -> None:
    """Two losses start a 3-candle cooldown at candle 4's close; the data then skips 4 hours,
    so the entry signalled at the next candle (5 hours later) is taken, as live takes it."""
    closes = [100.0, 100, 99, 100, 99, 100, 100, 100, 100]
    script = {0: ENTER, 1: EXIT, 3: ENTER, 4: EXIT, 5: ENTER, 6: EXIT}
    limits = RiskLimits(
        max_position_fraction=1.0,
        daily_loss_limit=0.0,
        max_drawdown=0.0,
        cooldown_losses=2,
        cooldown_candles=3,
    )
    plain = backtest(candles(closes), scripted(script), limits)  # no gap: still cooling down
    assert (len(plain.table), plain.vetoes) == (2, 1)
    gapped = backtest(candles(closes, skip=(5, 6, 7, 8)), scripted(script), limits)
    assert (len(gapped.table), gapped.vetoes) == (3, 0)


def test_a_fill_after_a_gap_is_stamped_when_trading_resumed() -> None:
    """An entry signalled on the last candle before a 3-hour gap fills at the first open after
    it, and is stamped then, not at the pre-gap close."""
    frame = candles([100.0, 101, 102, 103, 104], skip=(2, 3, 4))
    result = backtest(frame, scripted({1: ENTER, 3: EXIT}))
    (trade,) = result.table.trades()
    assert int(trade.entry_time.timestamp() * 1000) == frame["timestamp"].iloc[2]
    assert trade.entry_price == pytest.approx(frame["open"].iloc[2])


@pytest.mark.parametrize(
    ("timeframe", "step_ms", "day_candles"), [("1d", 24 * HOUR_MS, 2), ("1h", HOUR_MS, 23)]
)
def test_every_candle_counts_against_its_days_loss_budget(
    timeframe: str, step_ms: int, day_candles: int
) -> None:
    """A stop sells at a 10% loss in the candle that closes at midnight; the 5% daily limit
    then refuses the entry signalled at that close. On 1d candles (every candle is a day) and
    on the midnight candle of 1h ones, the day's budget used to start from that very close."""
    closes = [100.0] * day_candles + [90.0, 90.0, 90.0]
    frame = candles(closes, step_ms=step_ms)
    frame.loc[day_candles, "low"] = 89.0
    limits = RiskLimits(max_position_fraction=1.0, daily_loss_limit=0.05, max_drawdown=0.0)
    strategy = scripted({0: ENTER, day_candles: ENTER}, stop_loss=0.05)
    result = backtest(frame, strategy, limits, timeframe=timeframe)
    assert result.table.trades()[0].exit_reason == "stop_loss"
    assert result.vetoes == 1
    assert len(result.table) == 1


def test_a_take_profit_sells_at_the_next_open_as_live_does() -> None:
    """The target is reached inside candle 2; the engine sees it at the close and sells at
    market: the next candle's open, with slippage, not the target."""
    frame = candles([100.0, 100, 104, 105, 105])
    frame.loc[2, "high"] = 120.0  # spikes through a 10% target and falls back
    result = backtest(frame, scripted({0: ENTER}, take_profit=0.1), slippage=0.001)
    (trade,) = result.table.trades()
    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == pytest.approx(104.0 * 0.999)
    assert int(trade.exit_time.timestamp() * 1000) == frame["timestamp"].iloc[3]


def test_a_limit_entry_is_protected_in_its_fill_candle() -> None:
    """The limit fills at 99 in candle 1, whose low (90) is through the 5% stop: the stop
    fires in that candle (sold at the next open), it does not wait for candle 2."""
    frame = candles([100.0, 95, 96, 97, 98])
    frame.loc[1, "low"] = 90.0
    result = backtest(frame, scripted({0: ENTER}, stop_loss=0.05, entry_offset=0.01))
    trade = result.table.trades()[0]
    assert trade.entry_price == pytest.approx(99.0)
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(95.0)  # candle 2's open
    assert result.stop_line[1] == pytest.approx(99.0 * 0.95)


def test_a_position_open_at_the_end_is_an_open_trade_with_its_exit_costs() -> None:
    frame = candles([100.0, 100, 110, 120, 130])
    result = backtest(frame, scripted({0: ENTER}), slippage=0.001)
    (trade,) = result.table.trades()
    assert result.table.still_open
    assert result.table.closed == 0
    assert trade.exit_reason == "open"
    assert trade.exit_price == pytest.approx(130 * 0.999)
    m = result.metrics
    assert m.trades == 1
    assert m.wins == 1
    assert m.pnl == pytest.approx(trade.pnl)  # the return and the trades tell one story
    assert m.end_equity == pytest.approx(result.equity[-1])


def test_buy_and_hold_starts_where_the_strategy_could_and_pays_the_same_costs() -> None:
    """The warm-up's candles and the costs are the strategy's handicap; buy and hold used to
    be measured from the first close without costs."""
    frame = candles([50.0, 100, 100, 100, 150])
    strategy = type("Slow", (Scripted,), {"script": {}, "warmup": 3})({})
    result = backtest(frame, strategy, slippage=0.001)
    bought = frame["open"].iloc[3] * 1.001 * 1.001  # bought at candle 3's open, with costs
    assert result.metrics.buy_and_hold_return == pytest.approx(150 * 0.999 * 0.999 / bought - 1)
    rows = dict(metric_rows(result))
    assert "same fee and slippage" in rows["buy and hold"]
    assert "in the market 0% of the time" in rows["strategy exposure"]


def test_a_short_span_is_not_annualised_in_the_report() -> None:
    """A week down 2.8% is not a CAGR of -78%: the report says the span is too short."""
    frame = candles([100.0] * 84 + [97.2] * 84, step_ms=HOUR_MS)  # one week
    result = backtest(frame, scripted({0: ENTER}))
    rows = dict(metric_rows(result))
    assert "CAGR" not in rows
    assert rows["CAGR / Calmar"].startswith("not annualised: 7.0 days of data")


def test_no_losing_trade_is_said_not_printed_as_inf() -> None:
    result = backtest(candles([100.0, 100, 110, 110]), scripted({0: ENTER, 2: EXIT}))
    assert dict(metric_rows(result))["profit factor"] == "no losing trade"


def test_no_trade_at_all_is_said_as_such_in_the_profit_factor() -> None:
    result = backtest(candles([100.0, 100, 110, 110]), scripted({}))
    assert dict(metric_rows(result))["profit factor"] == "no trades"


def test_an_open_trade_at_the_end_is_said_in_the_report() -> None:
    result = backtest(candles([100.0, 100, 110, 120]), scripted({0: ENTER}))
    assert "the last still open" in dict(metric_rows(result))["trades"]


def test_the_cli_backtest_runs_the_daily_limit_on_the_configs_days(tmp_path: Path) -> None:
    """A New York config: the daily loss limit's days start at New York midnight, as live
    (review F1), and the costs are the account's. On the sample, New York days give another
    result than UTC days."""
    config = tmp_path / "ny.toml"
    config.write_text(
        'timezone = "America/New_York"\n[paper]\nfee = 0.002\nslippage = 0.001\nbalance = 5000\n'
    )
    rules = [
        "--risk",
        "daily_loss_limit=0.002",
        "--risk",
        "max_drawdown=0",
        "--risk",
        "max_position_fraction=1",
    ]
    done = pairpilot(
        "backtest", "--data", str(SAMPLE), "--config", str(config), *rules, "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["backtest"]["timezone"] == "America/New_York"
    assert (document["backtest"]["fee"], document["backtest"]["slippage"]) == (0.002, 0.001)
    assert document["metrics"]["start_equity"] == 5000
    risk = {"max_position_fraction": "1", "daily_loss_limit": "0.002", "max_drawdown": "0"}
    terms = research_terms(load_settings(config, None), "BTC/USDT", Overrides(risk=risk))
    candles = read_candle_file(SAMPLE)
    by_zone = {
        zone: run_backtest(
            candles,
            build_strategy("ema_cross"),
            setup_for("BTC/USDT", "1h", replace(terms, timezone=zone)),
        )
        for zone in ("UTC", "America/New_York")
    }
    assert by_zone["UTC"].metrics.total_return != by_zone["America/New_York"].metrics.total_return
    assert document["backtest"]["vetoes"] == by_zone["America/New_York"].vetoes
    assert len(document["trades"]) == len(by_zone["America/New_York"].table)
    assert document["metrics"]["total_return"] == by_zone["America/New_York"].metrics.total_return


@pytest.mark.parametrize(
    ("exchange", "flag", "resting"),
    [
        ("binance", None, True),
        ("coinbase", None, False),
        ("binance", "--no-resting-stops", False),
    ],
)
def test_the_cli_backtest_of_a_live_config_rests_stops_where_its_venue_does(
    tmp_path: Path, exchange: str, flag: str | None, resting: bool
) -> None:
    """Binance holds stop orders live, Coinbase does not (review F2): the backtest of a live
    config models the venue's stops unless told otherwise, and says which it modelled. No
    keys are needed for a backtest."""
    config = tmp_path / "live.toml"
    config.write_text(f'mode = "live"\n[exchange]\nname = "{exchange}"\n')
    done = pairpilot(
        "backtest",
        "--data",
        str(SAMPLE),
        "--config",
        str(config),
        "--param",
        "stop_loss=0.01",
        *([flag] if flag else []),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (RESTING if resting else PER_CANDLE) in done.stdout


def test_the_json_of_a_short_span_has_no_extrapolated_cagr_or_calmar(tmp_path: Path) -> None:
    """One week of real candles: the JSON says it is not annualised, as the table does."""
    week = tmp_path / "BTC_USDT-1h.csv"
    read_candle_file(SAMPLE).iloc[:168].to_csv(week, index=False)
    done = pairpilot("backtest", "--data", str(week), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)["metrics"]
    assert metrics["annualised"] is False
    assert metrics["cagr"] is None
    assert metrics["calmar"] is None
    assert metrics["span_days"] == pytest.approx(7.0)  # 168 candles: 7 days of data


def test_a_stop_resting_on_the_venue_fills_at_its_level_a_target_at_the_next_open() -> None:
    """Where the venue holds stop orders (review F2), a wick through the stop fills there in
    the candle; the take-profit is still seen at the close and sold at the next open."""
    frame = candles([100.0, 100, 98, 92, 92])
    frame.loc[2, "low"] = 90.0  # through a 5% stop at 95; candle 3 opens at 98
    resting = BacktestSetup(
        pair="T/USDT", timeframe="1h", slippage=0.001, limits=OPEN_LIMITS, resting_stops=True
    )
    (trade,) = run_backtest(frame, scripted({0: ENTER}, stop_loss=0.05), resting).table.trades()
    entry = 100 * 1.001
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(entry * 0.95 * 0.999)
    (per_candle,) = backtest(
        frame, scripted({0: ENTER}, stop_loss=0.05), slippage=0.001
    ).table.trades()
    assert per_candle.exit_price == pytest.approx(98 * 0.999)
    target = candles([100.0, 100, 104, 105, 105])
    target.loc[2, "high"] = 120.0
    (took,) = run_backtest(target, scripted({0: ENTER}, take_profit=0.1), resting).table.trades()
    assert took.exit_price == pytest.approx(104 * 0.999)


def test_the_cli_takes_resting_stops(tmp_path: Path) -> None:
    done = pairpilot(
        "backtest",
        "--data",
        str(SAMPLE),
        "--param",
        "stop_loss=0.01",
        "--resting-stops",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["backtest"]["resting_stops"] is True
    stops = [t for t in document["trades"] if t["exit_reason"] == "stop_loss"]
    assert stops
    entries = {t["entry_time"]: t["entry_price"] for t in document["trades"]}
    assert all(t["exit_price"] <= entries[t["entry_time"]] * 0.99 + 1e-6 for t in stops)


def test_nothing_fills_in_a_candle_with_no_volume() -> None:
    """Zero-volume placeholders (what exchanges return around an outage; review F11): an
    entry into one is lost, an exit signal's sale goes out again at the next close, a stop
    seen before one is checked again on it."""
    frame = candles([100.0, 100, 101, 102, 103, 104, 105, 106])
    frame.loc[[2, 5], "volume"] = 0.0
    entries = backtest(frame, scripted({1: ENTER, 3: ENTER, 6: EXIT}))
    (trade,) = entries.table.trades()
    assert (trade.entry_price, trade.exit_price) == (102.0, 105.0)  # entered in 4, not in 2
    assert trade.entry_time == from_ms(DAY0 + 4 * HOUR_MS)
    late = backtest(frame, scripted({0: ENTER, 4: EXIT}))
    (sold,) = late.table.trades()
    assert sold.exit_price == 104.0  # the sale into candle 5 found nothing; sent again at its close
    assert sold.exit_time == from_ms(DAY0 + 6 * HOUR_MS)
    falling = candles([100.0, 100, 99, 90, 90, 85, 85])
    falling.loc[4, "volume"] = 0.0
    (stopped,) = backtest(falling, scripted({0: ENTER}, stop_loss=0.05)).table.trades()
    assert stopped.exit_price == 90.0  # seen at 3's close, unsold in 4, seen again: sold in 5
    assert stopped.exit_time == from_ms(DAY0 + 5 * HOUR_MS)
    assert stopped.exit_reason == "stop_loss"


@pytest.mark.parametrize(("low", "sold_at"), [(97.0, 98.5), (96.0, 96.9)])
def test_a_resting_trailing_stop_lags_the_exact_level_by_the_engines_trail_step(
    low: float, sold_at: float
) -> None:
    """Live raises a trailing stop resting on the venue only once it has risen TRAIL_STEP
    (0.5%; review F2): at 102.3 the exact 5% trail is 97.185 but 96.9 rests. A low of 97 is
    seen at the close and sold at the next open; a low of 96 fills the resting stop at 96.9."""
    frame = candles([100.0, 100, 102, 102.3, 99, 98.5, 98.5])
    frame.loc[5, "low"] = low
    setup = BacktestSetup(pair="T/USDT", timeframe="1h", limits=OPEN_LIMITS, resting_stops=True)
    (trade,) = run_backtest(frame, scripted({0: ENTER}, trailing_stop=0.05), setup).table.trades()
    assert trade.exit_price == pytest.approx(sold_at)
    assert trade.exit_reason == "trailing_stop"


def test_a_sale_over_the_volume_cap_sells_its_rest_at_the_next_closes() -> None:
    """With the paper account's cap (0.1), a sale larger than a tenth of its candle's volume
    sells that tenth; the rest stays held (marked at each close) and is sold at the next close,
    capped again, whatever the signals say (an entry signal meanwhile buys nothing). The trade
    closes at its last sale: its exit averaged over the sales by amount, every fee in it. A
    rest still held when the data ends is the open trade, its rest sold at the last close."""
    frame = candles([100.0, 100, 100, 110, 120, 130, 140, 150])  # opens 100 100 100 100 110 ...
    frame["volume"] = 1e9
    setup = BacktestSetup(
        pair="T/USDT", timeframe="1h", fee_rate=0.001, limits=OPEN_LIMITS, volume_share=0.1
    )
    bought = run_backtest(frame, scripted({0: ENTER}), setup).table.amount[0]
    thin = frame.copy()
    thin.loc[[4, 5], "volume"] = bought * 4  # a sale into 4 or 5 sells at most 0.4 of it
    result = run_backtest(thin, scripted({0: ENTER, 3: EXIT, 4: ENTER}), setup)
    (trade,) = result.table.trades()
    assert trade.exit_reason == "signal"
    assert trade.amount == bought
    assert trade.exit_price == pytest.approx(0.4 * 110 + 0.4 * 120 + 0.2 * 130)
    assert trade.exit_time == from_ms(DAY0 + 6 * HOUR_MS)  # the last part, at 6's open
    notional = bought * (100 + trade.exit_price)
    assert trade.fee == pytest.approx(0.001 * notional)
    cash = 1000 - bought * 100 * 1.001 + bought * (0.4 * 110 + 0.4 * 120) * 0.999
    assert result.equity[4] == pytest.approx(cash + 0.2 * bought * 120)  # the rest, marked
    late = frame.copy()
    late.loc[[6, 7], "volume"] = bought * 4
    ended = run_backtest(late, scripted({0: ENTER, 5: EXIT}), setup)
    (held,) = ended.table.trades()
    assert ended.table.still_open
    assert held.exit_reason == "open"
    assert held.exit_price == pytest.approx(0.4 * 130 + 0.4 * 140 + 0.2 * 150)
    assert ended.equity[-1] == pytest.approx(1000 + held.pnl)
