"""Sweeps on a real 2-worker LocalCluster, against a plain loop; a worker killed mid-sweep;
bad input through the real command."""

from __future__ import annotations

import collections
import os
import re
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from distributed.comm.core import CommClosedError

from bot.core.domain import SweepRow
from bot.core.errors import UserInputError
from bot.research.backtest import BacktestSetup, run_backtest, setup_for
from bot.research.sweep import Series, SweepSpec, combinations, parse_space, score, unscored
from bot.research.sweep_dask import run_on_dask
from bot.research.sweep_report import report as sweep_report
from bot.research.sweep_tasks import run_plain, segments, tasks
from bot.research.walk_forward import chained
from bot.research.walk_forward import walk_forward as folds_of
from strategies import build_strategy
from tests.integration.test_cli import pairpilot
from tests.rigs.builders import plain_terms

SPACE = {"fast": [5, 8, 12, 20], "slow": [26, 40, 60]}
TERMS = plain_terms("BTC/USDT")
BOTH = plain_terms("BTC/USDT", "ETH/USDT")


@pytest.fixture(scope="module")
def client() -> Client:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


def by_key(rows: list[SweepRow]) -> dict[tuple, SweepRow]:
    keyed = {row.key: row for row in rows}
    assert len(keyed) == len(rows)  # nothing twice
    return keyed


def test_dask_results_equal_a_plain_loop_with_walk_forward(
    client: Client, btc_candles: pd.DataFrame, eth_candles: pd.DataFrame
) -> None:
    spec = SweepSpec("ema_cross", SPACE, objective="calmar", folds=2, terms=BOTH)
    series = [Series("BTC/USDT", "1h", btc_candles), Series("ETH/USDT", "1h", eth_candles)]
    received: list[SweepRow] = []
    assert run_on_dask(client, spec, series, received.extend, chunk=5) == 2 * 3  # 12 combos / 5
    plain = by_key(run_plain(spec, series))
    assert by_key(received).keys() == plain.keys()
    assert len(plain) == 2 * 4 * 12  # series x (2 in-sample + 2 out-of-sample windows) x combos
    for key, row in by_key(received).items():
        assert row.score == plain[key].score
        assert row.metrics == plain[key].metrics
    report = folds_of(received, 2)
    assert len(report) == 4  # per series and fold: the best in sample, judged out of sample


def test_a_worker_killed_mid_sweep_loses_and_duplicates_nothing(
    client: Client, btc_candles: pd.DataFrame
) -> None:
    spec = SweepSpec("sma_cross", SPACE, objective="return", max_drawdown=0.05, terms=TERMS)
    series = [Series("BTC/USDT", "1h", btc_candles)]
    received: list[SweepRow] = []
    killed = []
    client.wait_for_workers(2, timeout=120)

    def store(rows: list[SweepRow]) -> None:
        received.extend(rows)
        if not killed:  # after the first result: one worker dies with tasks in hand
            victim = sorted(client.scheduler_info()["workers"])[0]
            killed.append(victim)
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)

    run_on_dask(client, spec, series, store, chunk=1)
    assert killed
    counts = collections.Counter(row.key for row in received)
    assert max(counts.values()) == 1
    assert set(counts) == set(by_key(run_plain(spec, series)))
    assert any(row.score is None for row in received)  # the drawdown constraint bit somewhere


def test_a_sweep_whose_scattered_candles_are_lost_scatters_them_again(
    client: Client, btc_candles: pd.DataFrame
) -> None:
    """Every worker dies after the first result: the scattered candles are gone for good
    (the scheduler cannot recompute scattered data), so the rest must be sent again."""
    spec = SweepSpec("sma_cross", SPACE, objective="return", terms=TERMS)
    series = [Series("BTC/USDT", "1h", btc_candles)]
    received: list[SweepRow] = []
    killed = []

    def store(rows: list[SweepRow]) -> None:
        received.extend(rows)
        if not killed:
            client.wait_for_workers(2, timeout=120)  # the worker an earlier test killed is back
            pids = client.run(os.getpid)
            killed.extend(pids)
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)

    run_on_dask(client, spec, series, store, chunk=1)
    assert len(killed) == 2
    counts = collections.Counter(row.key for row in received)
    assert max(counts.values()) == 1
    assert set(counts) == set(by_key(run_plain(spec, series)))


def test_a_scatter_that_meets_a_worker_dying_is_sent_again(
    client: Client, btc_candles: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after its workers die the scheduler may still list one of them: scattering the
    candles anew then fails with CommClosedError (seen under load). The sweep scatters again
    rather than dying with every row it had not stored yet."""
    spec = SweepSpec("sma_cross", SPACE, objective="return", terms=TERMS)
    series = [Series("BTC/USDT", "1h", btc_candles)]
    received: list[SweepRow] = []
    killed = []
    scatters = []
    real_scatter = client.scatter

    def scatter(*args: object, **kwargs: object) -> object:
        scatters.append(len(killed))
        if killed and scatters.count(len(killed)) == 1:  # the first scatter after the kill
            raise CommClosedError("in <TCP (closed) Scheduler->Worker>: Stream is closed")
        return real_scatter(*args, **kwargs)

    def store(rows: list[SweepRow]) -> None:
        received.extend(rows)
        if not killed:
            client.wait_for_workers(2, timeout=120)  # the worker an earlier test killed is back
            pids = client.run(os.getpid)
            killed.extend(pids)
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)

    monkeypatch.setattr(client, "scatter", scatter)
    run_on_dask(client, spec, series, store, chunk=1)
    assert scatters.count(2) >= 2  # the failed scatter and the one sent again
    counts = collections.Counter(row.key for row in received)
    assert max(counts.values()) == 1
    assert set(counts) == set(by_key(run_plain(spec, series)))


def test_two_sweeps_of_the_same_pair_on_one_scheduler_keep_their_own_candles(
    client: Client, btc_candles: pd.DataFrame
) -> None:
    """Another sweep (the chat's /sweep, a second CLI run) holds BTC/USDT 1h candles of a
    different window on the same scheduler: this sweep must run on its own candles."""
    spec = SweepSpec("sma_cross", SPACE, objective="return", terms=TERMS)
    other = SweepSpec("sma_cross", SPACE, objective="return", folds=2, terms=TERMS)
    mine = [Series("BTC/USDT", "1h", btc_candles)]
    theirs = [Series("BTC/USDT", "1h", btc_candles.iloc[:900])]
    with Client(client.scheduler.address) as second:
        held = second.scatter(tasks(other, theirs)[0], broadcast=True)
        received: list[SweepRow] = []
        run_on_dask(client, spec, mine, received.extend, chunk=4)
        del held
    plain = by_key(run_plain(spec, mine))
    assert by_key(received).keys() == plain.keys()
    for key, row in by_key(received).items():
        assert row.metrics == plain[key].metrics


def test_the_space_is_checked_against_the_strategys_bounds() -> None:
    assert parse_space("ema_cross", ["fast=5:15:5", "slow=30,20"]) == {
        "fast": [5, 10, 15],
        "slow": [20, 30],
    }
    for items, words in [
        ([], "empty"),
        (["fast=1:10:1"], "outside the strategy's bounds"),
        (["speed=5"], "has no parameter 'speed'"),
        (["fast=10:5:1"], "LOW <= HIGH"),
        (["fast=a,b"], "not int values"),
        (["fast=999", "fast=5"], "outside the strategy's bounds"),  # each item is checked
        (["fast="], r"--param 'fast=': expected NAME=LOW:HIGH:STEP"),
    ]:
        with pytest.raises(UserInputError, match=words):
            parse_space("ema_cross", items)
    with pytest.raises(UserInputError, match="accepts none"):
        combinations(SweepSpec("ema_cross", {"fast": [50], "slow": [20]}, terms=TERMS))
    drawn = combinations(SweepSpec("ema_cross", SPACE, random_samples=5, seed=9, terms=TERMS))
    assert len({tuple(c.items()) for c in drawn}) == 5
    assert drawn == combinations(
        SweepSpec("ema_cross", SPACE, random_samples=5, seed=9, terms=TERMS)
    )


def test_the_command_stores_results_and_refuses_bad_input_storing_nothing(
    tmp_path: Path, btc_path: Path, client: Client
) -> None:
    data = tmp_path / "BTC_USDT-1h.csv.gz"
    data.write_bytes(btc_path.read_bytes())
    database = tmp_path / "data" / "pairpilot.sqlite"
    for args, words in [
        ([], "the parameter space is empty"),
        (["--param", "fast=1:3:1"], "outside the strategy's bounds"),
        (["--param", "fast=5,8", "--scheduler", "tcp://127.0.0.1:9"], "no Dask scheduler"),
    ]:
        result = pairpilot("sweep", "--data", str(data), *args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr
        assert not database.exists() or _sweeps(database) == 0
    good = pairpilot(
        "sweep",
        "--data",
        str(data),
        "--param",
        "fast=5,8,12",
        "--param",
        "slow=26,40",
        "--scheduler",
        client.scheduler.address,  # a running cluster
        "--heatmap",
        str(tmp_path / "h.png"),
        cwd=tmp_path,
    )
    assert good.returncode == 0, good.stderr
    assert "rank    sharpe" in good.stdout
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM sweep_results").fetchone() == (6,)
        assert db.execute("SELECT finished IS NOT NULL FROM sweeps").fetchall() == [(1,)]


def _sweeps(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM sweeps").fetchone()[0])


def test_the_command_sweeps_stored_candles_of_several_pairs(
    tmp_path: Path, btc_path: Path, client: Client
) -> None:
    eth = btc_path.parent / "ETH_USDT-1h.csv.gz"
    for path in (btc_path, eth):
        imported = pairpilot("data", "import", str(path), cwd=tmp_path)
        assert imported.returncode == 0, imported.stderr
    both = pairpilot(
        "sweep", "--data", str(eth), "--pair", "ETH/USDT", "--param", "fast=5", cwd=tmp_path
    )
    assert both.returncode == 2
    assert "not both" in both.stderr
    result = pairpilot(
        "sweep",
        "--pair",
        "BTC/USDT",
        "--pair",
        "ETH/USDT",
        "--timeframe",
        "1h",
        "--since",
        "2025-07-01",
        "--param",
        "fast=5,8",
        "--param",
        "slow=26",
        "--scheduler",
        client.scheduler.address,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "BTC/USDT 1h, by sharpe" in result.stdout
    assert "ETH/USDT 1h, by sharpe" in result.stdout


def test_a_combination_too_long_for_a_window_is_skipped_with_its_reason_and_the_sweep_finishes(
    tmp_path: Path, btc_path: Path, client: Client
) -> None:
    """11 folds of 2,184 candles: in-sample windows of 468 candles; slow=500 needs 502, so it
    is skipped there (out of sample, the candles before each window make up for it). It used
    to abort the sweep and leave it unfinished."""
    data = tmp_path / "BTC_USDT-1h.csv.gz"
    data.write_bytes(btc_path.read_bytes())
    result = pairpilot(
        "sweep",
        "--data",
        str(data),
        "--param",
        "fast=5",
        "--param",
        "slow=26,500",
        "--walk-forward",
        "11",
        "--scheduler",
        client.scheduler.address,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "out of sample, chained (" in result.stdout
    with sqlite3.connect(tmp_path / "data" / "pairpilot.sqlite") as db:
        assert db.execute("SELECT finished IS NOT NULL FROM sweeps").fetchall() == [(1,)]
        assert db.execute("SELECT count(*) FROM sweep_results").fetchone() == (2 * 22,)
        skipped = db.execute(
            "SELECT segment FROM sweep_results WHERE metrics LIKE '%needs at least 502 candles%'"
        ).fetchall()
    assert {segment for (segment,) in skipped} == {f"is-{k}" for k in range(11)}


def test_an_out_of_sample_window_warms_up_on_all_it_needs(btc_candles: pd.DataFrame) -> None:
    """10 folds (blocks of 168 candles): slow=400 needs 401 candles before it decides. Warmed
    on only the block before, it lost most of each window or was skipped (review F9); warmed
    on what precedes, it runs in every fold from the second on."""
    spec = SweepSpec("ema_cross", {"fast": [5], "slow": [400]}, folds=10, terms=TERMS)
    rows = run_plain(spec, [Series("BTC/USDT", "1h", btc_candles)])
    outside = {r.segment: r for r in rows if r.segment.startswith("oos")}
    assert all("skipped" not in outside[f"oos-{k}"].metrics for k in range(10))
    assert all(outside[f"oos-{k}"].metrics["span_days"] == pytest.approx(7.0) for k in range(10))
    assert sum(outside[f"oos-{k}"].metrics["trades"] for k in range(10)) >= 5


def _metrics(**values: float) -> dict[str, float]:
    return {
        "max_drawdown": 0.1,
        "trades": 3,
        "total_return": 0.1,
        "sharpe": 1.0,
        "calmar": 1.0,
        "span_days": 30.0,
        **values,
    }


def test_a_combination_that_never_traded_scores_nothing_and_says_why() -> None:
    """Objective "return": a flat 0% used to outrank every losing combination."""
    assert score(_metrics(trades=0, total_return=0.0), "return", 1.0) is None
    assert unscored(_metrics(trades=0), 1.0) == "no trades"
    assert score(_metrics(total_return=-0.05), "return", 1.0) == pytest.approx(-0.05)
    assert unscored(_metrics(max_drawdown=0.3), 0.2) == "broke the drawdown cap (30.0%)"


def test_return_is_scored_per_30_days_so_in_and_out_of_sample_compare() -> None:
    """In sample spans three blocks, out of sample one: the same pace scores the same."""
    in_sample = score(_metrics(total_return=1.1**3 - 1, span_days=90.0), "return", 1.0)
    out_of_sample = score(_metrics(total_return=0.1, span_days=30.0), "return", 1.0)
    assert in_sample == pytest.approx(out_of_sample) == pytest.approx(0.1)


def test_out_of_sample_windows_start_warm_and_the_report_says_why_a_score_is_missing(
    btc_candles: pd.DataFrame,
) -> None:
    spec = SweepSpec(
        "ema_cross",
        {"fast": [5, 12], "slow": [60]},
        objective="calmar",
        max_drawdown=0.05,
        folds=3,
        terms=TERMS,
    )
    windows = segments(btc_candles, 3)
    block = len(btc_candles) // 6
    frame, trade_from = windows["oos-0"]
    assert trade_from == 3 * block  # every candle before it warms it up
    assert frame["timestamp"].iloc[trade_from] == btc_candles["timestamp"].iloc[3 * block]
    trimmed, lead = segments(btc_candles, 3, 100)["oos-1"]  # no more than the longest history
    assert (len(trimmed), lead) == (100 + block, 100)
    assert trimmed["timestamp"].iloc[lead] == btc_candles["timestamp"].iloc[4 * block]
    rows = run_plain(spec, [Series("BTC/USDT", "1h", btc_candles)])
    outside = [r for r in rows if r.segment.startswith("oos")]
    assert all(r.metrics["span_days"] == pytest.approx(block / 24) for r in outside)
    text = sweep_report(spec, rows, [Series("BTC/USDT", "1h", btc_candles)])
    assert not re.search(r"-> -$", text, re.MULTILINE)  # every missing score has its reason
    assert "out of sample, chained (" in text or "nothing ran" in text
    folds = folds_of(rows, 3, spec.max_drawdown)
    for fold in folds:
        assert fold.params is not None or fold.why.startswith("no combination qualified")


def test_a_fold_where_nothing_qualifies_in_sample_picks_no_best(btc_candles: pd.DataFrame) -> None:
    spec = SweepSpec(
        "ema_cross", {"fast": [5, 12], "slow": [26]}, max_drawdown=0.0001, folds=1, terms=TERMS
    )
    rows = run_plain(spec, [Series("BTC/USDT", "1h", btc_candles)])
    (fold,) = folds_of(rows, 1, spec.max_drawdown)
    assert fold.params is None
    assert fold.why.startswith("no combination qualified in sample: broke the drawdown cap")
    assert "no combination qualified" in sweep_report(spec, rows)


def test_an_out_of_sample_window_never_trades_its_warm_up_block(btc_candles: pd.DataFrame) -> None:
    """The block before an out-of-sample window only warms the indicators up: trading it would
    count in-sample trades out of sample (review F7)."""
    frame, trade_from = segments(btc_candles, 3)["oos-1"]
    strategy = build_strategy("ema_cross", {"fast": 5, "slow": 26})
    setup = BacktestSetup("BTC/USDT", "1h", trade_from=trade_from)
    assert (strategy.signals(frame).iloc[:trade_from] == 1).sum() >= 3  # it would have traded
    result = run_backtest(frame, strategy, setup)
    first_close = int(frame["timestamp"].iloc[trade_from]) + 3_600_000
    assert (result.table.entry_ms > first_close).all()
    assert len(result.table) >= 1
    assert (result.equity[:trade_from] == setup.balance).all()
    assert result.metrics.pnl == pytest.approx(float(result.table.pnl.sum()))


def test_calmar_is_not_scored_on_windows_too_short_to_annualise() -> None:
    """A 15-day window's Calmar stands on a CAGR extrapolated 24 times (review F6)."""
    short = _metrics(span_days=15.0)
    assert score(short, "calmar", 1.0) is None
    assert unscored(short, 1.0, "calmar") == "calmar not annualised: 15 days, under 90"
    assert score(_metrics(span_days=120.0), "calmar", 1.0) == 1.0
    assert score(short, "sharpe", 1.0) == 1.0


def test_the_chained_out_of_sample_result_is_one_accounts_curve(
    btc_candles: pd.DataFrame,
) -> None:
    """Review F10: the out-of-sample windows traded one after another, each starting with what
    the last ended with: the drawdown of that whole curve (not only the deepest window's),
    and the trades, win rate and profit factor of all the windows."""
    spec = SweepSpec("ema_cross", {"fast": [5, 12], "slow": [26, 60]}, folds=4, terms=TERMS)
    series = Series("BTC/USDT", "1h", btc_candles)
    rows = run_plain(spec, [series])
    folds = folds_of(rows, 4)
    whole = chained(spec, series, folds)
    assert whole is not None
    windows = segments(btc_candles, 4)
    curve, pnl = [1.0], []
    assert all(fold.params is not None for fold in folds)
    for fold in folds:  # an independent chaining of the chosen combinations' windows
        frame, trade_from = windows[f"oos-{fold.fold}"]
        strategy = build_strategy("ema_cross", dict(fold.params))
        lead = min(trade_from, strategy.history)  # as live hands it history
        setup = setup_for("BTC/USDT", "1h", TERMS["BTC/USDT"], trade_from=lead)
        result = run_backtest(
            frame.iloc[trade_from - lead :].reset_index(drop=True), strategy, setup
        )
        pnl += list(result.table.pnl * curve[-1])
        curve += list(result.equity[lead:] / setup.balance * curve[-1])
    values = np.array(curve)
    drawdown = float(np.max(1 - values / np.maximum.accumulate(values)))
    assert whole.total_return == pytest.approx(values[-1] - 1)
    assert whole.max_drawdown == pytest.approx(drawdown)
    assert whole.max_drawdown >= max(f.out_metrics["max_drawdown"] for f in folds)
    assert whole.trades == len(pnl) == sum(f.out_metrics["trades"] for f in folds)
    assert whole.wins == sum(p > 0 for p in pnl)
    text = sweep_report(spec, rows, [series])
    assert f"max drawdown {drawdown:.2%}" in text
    assert f"{len(pnl)} trades, won" in text
    assert "profit factor" in text
