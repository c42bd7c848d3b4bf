"""`pairpilot sweep --config FILE --portfolio` (issue 17: sweeps score a parameter set on the
whole portfolio), through the real command on the bundled candles, against the portfolio
kernel run directly."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app.config import load_settings
from bot.core.clock import FakeClock
from bot.core.domain import SweepRow
from bot.market.candle_files import read_candle_file
from bot.research.account_terms import NONE
from bot.research.portfolio import run_portfolio
from bot.research.portfolio_sweep import portfolio_sweep, store_portfolio_sweep
from bot.research.sweep import SweepSpec, score
from storage.db import open_database
from storage.sweeps import SqliteSweepRepository
from tests.integration.test_cli import pairpilot
from tests.integration.test_cli_portfolio import BOTH, shifted, write_config

PAIRS = (
    '\n[[pairs]]\npair = "BTC/USDT"\nstrategy = "ema_cross"\ntimeframe = "1h"\n'
    "capital_share = 0.5\nparams = { slow = 40, stop_loss = 0.05 }\n"
    '\n[[pairs]]\npair = "ETH/USDT"\nstrategy = "rsi"\ntimeframe = "1h"\n'
    "capital_share = 0.5\nparams = { length = 10, oversold = 35.0 }\n"
)
SETS = ("--param", "fast=5,8", "--param", "slow=30,50")


def _stored(database: Path) -> tuple[list[tuple[str, str, str]], list[dict[str, object]]]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT pair, params, metrics FROM sweep_results").fetchall()
        specs = [json.loads(spec) for (spec,) in db.execute("SELECT spec FROM sweeps")]
    return rows, specs


def test_each_set_is_scored_on_the_portfolio_and_the_other_pairs_keep_their_params(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, PAIRS, BOTH)
    result = pairpilot(
        "sweep", "--config", str(config), "--portfolio", "--strategy", "ema_cross", *SETS,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "portfolio 1h, by sharpe" in result.stdout
    assert "ema_cross swept on BTC/USDT; ETH/USDT keep their configured parameters" in result.stdout
    assert "capital shares BTC/USDT 50%, ETH/USDT 50%; entries fill" in result.stdout
    rows, specs = _stored(tmp_path / "data" / "pairpilot.sqlite")
    assert len(rows) == 4
    assert specs[0]["swept_pairs"] == ["BTC/USDT"]
    settings = load_settings(config, None)
    candles = {pair: read_candle_file(path) for pair, path in BOTH.items()}
    btc, eth = settings.pairs
    scores = []
    for pair, params, metrics in rows:
        assert pair == "portfolio"
        combo = json.loads(params)
        # Directly: the config with BTC's params replaced by the set on top of its own (its
        # stop loss kept), ETH's rsi as configured.
        swept = settings.model_copy(
            update={"pairs": [btc.model_copy(update={"params": {**btc.params, **combo}}), eth]}
        )
        direct = run_portfolio(swept, candles).metrics.as_dict()
        assert json.loads(metrics) == pytest.approx(direct, nan_ok=True)
        scores.append((score(direct, "sharpe", 1.0), combo))
    best = max((s for s in scores if s[0] is not None), key=lambda s: s[0])
    params = " ".join(f"{k}={v:g}" for k, v in sorted(best[1].items()))
    first = next(line for line in result.stdout.splitlines() if line.strip().startswith("1 "))
    assert f"{best[0]:.3f}" in first
    assert first.endswith(params)
    # A kernel that ignored the set (or swept ETH too) would not give these: the sets differ.
    assert len({json.loads(m)["pnl"] for _, _, m in rows}) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "macd", "--param", "fast=5,8"], "no configured pair runs macd"),
        (["--param", "fast=1:3:1"], "outside the strategy's bounds"),
        (["--param", "fast=5,8", "--data", str(BOTH["BTC/USDT"])], "--data does not go with it"),
        (["--param", "fast=5,8", "--pair", "BTC/USDT"], "--pair does not go with it"),
        (["--param", "fast=5,8", "--walk-forward", "2"], "--walk-forward does not go"),
        (["--param", "fast=5,8", "no-config"], "give --config FILE"),
        (["--param", "fast=5,8", "late"], "ETH/USDT has no candles in the window"),
    ],
)
def test_bad_input_is_refused_with_nothing_stored(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    files = dict(BOTH)
    if "late" in extra:
        files["ETH/USDT"] = shifted(tmp_path, BOTH["ETH/USDT"], 24 * 365)
    config = write_config(tmp_path, PAIRS, files)
    where = [] if "no-config" in extra else ["--config", str(config)]
    options = [option for option in extra if option not in ("late", "no-config")]
    before = sorted(tmp_path.rglob("*"))
    result = pairpilot("sweep", *where, "--portfolio", *options, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before


def test_a_set_a_pairs_configured_params_refuse_is_not_run_and_is_said(
    tmp_path: Path,
) -> None:
    pairs = PAIRS.replace("slow = 40", "fast = 5, slow = 10")  # a set's fast=12 is slower
    settings = load_settings(write_config(tmp_path, pairs, BOTH), None)
    candles = {pair: read_candle_file(path) for pair, path in BOTH.items()}
    spec = SweepSpec(strategy="ema_cross", space={"fast": [5, 12]}, terms={})
    sweep = portfolio_sweep(spec, settings, candles, overrides=NONE, limits=None)
    assert [row.params for row in sweep.rows] == [(("fast", 5),)]
    assert sweep.total == 1
    assert sweep.skipped == (
        "1 of 2 sets skipped, such as fast=12 (fast=12 must be below slow=10 for BTC/USDT)"
    )


def test_the_sets_are_those_the_configured_pairs_take_not_the_strategys_defaults(
    tmp_path: Path,
) -> None:
    """BTC runs slow=40: fast=30 and 35 are sets it takes (the default slow, 26, would refuse
    them), fast=40 and 45 are not, and the command says so."""
    config = write_config(tmp_path, PAIRS, BOTH)
    result = pairpilot(
        "sweep", "--config", str(config), "--portfolio", "--strategy", "ema_cross",
        "--param", "fast=20:45:5", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 of 6 sets skipped, such as fast=40 (fast=40 must be below slow=40" in result.stdout
    rows, _ = _stored(tmp_path / "data" / "pairpilot.sqlite")
    assert sorted(json.loads(params)["fast"] for _, params, _ in rows) == [20, 25, 30, 35]


async def test_each_set_runs_in_a_worker_thread_so_the_loop_goes_on(tmp_path: Path) -> None:
    """A chat's /sweep portfolio stores on the chat's loop: the sets run beside it."""
    settings = load_settings(write_config(tmp_path, PAIRS, BOTH), None)
    candles = {pair: read_candle_file(path) for pair, path in BOTH.items()}
    spec = SweepSpec(strategy="ema_cross", space={"fast": [5, 8, 12]}, terms={})
    sweep = portfolio_sweep(spec, settings, candles, overrides=NONE, limits=None)
    ran_on: list[int] = []

    def watched(rows: Iterator[SweepRow]) -> Iterator[SweepRow]:
        for row in rows:
            ran_on.append(threading.get_ident())
            yield row

    heard: list[tuple[int, int]] = []

    async def on_set(done: int, total: int) -> None:
        heard.append((done, total))

    async with open_database(tmp_path / "sweeps.sqlite") as db:
        store = SqliteSweepRepository(db)
        sweep_id, rows = await store_portfolio_sweep(
            store,
            dataclasses.replace(sweep, rows=watched(sweep.rows)),
            clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)),
            on_set=on_set,
        )
    assert sorted(row.params for row in rows) == [(("fast", v),) for v in (5, 8, 12)]
    assert heard == [(1, 3), (2, 3), (3, 3)]
    assert len(ran_on) == 3
    assert threading.get_ident() not in ran_on  # the loop's thread ran none of them
